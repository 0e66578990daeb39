"""The fast path answers exactly as ``phonenumbers`` does, or not at all.

Every region's example numbers of every type, written internationally, nationally and as bare
digits, and variants of them (a digit changed, added or dropped), go through
:func:`phonecheck.numbers.normalise` twice: as usual (fast path first) and with the fast path
turned off. The answers must be equal, field by field.
"""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from phonecheck import numbers
from phonecheck.numbers_fast import fast_normalise

SAMPLE = 5000
_TYPES = [v for k, v in vars(PhoneNumberType).items() if not k.startswith("_") and isinstance(v, int)]


def _corpus() -> list[tuple[str, str | None]]:
    rng = random.Random(7)
    out: list[tuple[str, str | None]] = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in _TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)
            variants = {e164, e164[:-1], e164 + str(rng.randrange(10))}
            i = rng.randrange(3, len(e164))
            variants.add(e164[:i] + str(rng.randrange(10)) + e164[i + 1 :])
            for text in variants:
                out.append((text, None))
                out.append((text, region))
                out.append((text[1:], region))  # bare digits with calling code
            out.append((phonenumbers.format_number(example, PhoneNumberFormat.INTERNATIONAL), None))
            national = phonenumbers.format_number(example, PhoneNumberFormat.NATIONAL)
            out.append((national, region))
            out.append((national.replace(" ", ""), region))
    out = rng.sample(out, SAMPLE)  # every region is still there, in a few seconds
    out += [("+52 1 55 1234 5678", None), ("044 55 1234 5678", "MX"), ("(55) 1234-5678", "MX")]
    return out


@pytest.fixture
def slow(monkeypatch):
    def answer(text: str, region: str | None):
        with monkeypatch.context() as m:
            m.setattr(numbers, "fast_normalise", lambda *_: None)
            return numbers.normalise(text, region)

    return answer


def test_fast_path_gives_the_librarys_answer_for_every_regions_examples(slow):
    corpus = _corpus()
    taken = 0
    for text, region in corpus:
        fast = numbers.normalise(text, region)
        assert fast == slow(text, region), (text, region)
        taken += fast_normalise(text.strip(), region) is not None
    assert taken > len(corpus) // 4  # the fast path is exercised, not just skipped
