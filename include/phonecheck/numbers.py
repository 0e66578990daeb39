"""Offline phone-number normalisation with ``phonenumbers``: the free check before any paid one.

Numbers that cannot be valid never reach a vendor: each input line either becomes a
:class:`Normalised` number (E.164, region, calling code, line type by number range) or a
:class:`Rejected` one with a reason a user can act on. Odd input is a reason, never an
exception: control characters (NUL included), invalid Unicode (lone surrogates, which is also
how undecodable bytes of a file arrive), invisible formatting characters and letters are
rejected before ``phonenumbers`` sees the text. Letters are read as phone-keypad digits
(``1-800-FLOWERS``) only when the caller allows vanity numbers: otherwise ``+52 55 FAKE NUMB``
would become a paid check of a number nobody wrote. Only ``phonenumbers`` itself is imported
(30 ms); never its ``geocoder`` (3.5 s).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, ValidationResult

from phonecheck.numbers_fast import LINE_TYPE_NAMES, fast_normalise

_SPLIT_RE = re.compile(r"[\n,;\t]+")

_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "no country code, and no (valid) default region given",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}

_POSSIBLE_ERRORS = {
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country calling code",
    ValidationResult.TOO_SHORT: "too short for its country",
    ValidationResult.TOO_LONG: "too long for its country",
    ValidationResult.INVALID_LENGTH: "invalid length for its country",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "too short: a local number without its area code",
}

_UNASSIGNED = "not a valid number for its region (unassigned range)"


@dataclass(frozen=True)
class Normalised:
    raw: str
    e164: str  # "+5215512345678"
    region_code: str  # ISO 3166-1 alpha-2, "001" for non-geographic
    country_code: str  # calling code, "52"
    line_type: str  # phonenumbers' PhoneNumberType name, e.g. MOBILE, FIXED_LINE_OR_MOBILE
    #: How the input was rewritten into today's number (a legacy form, see :func:`legacy_rewrite`),
    #: None when it was taken as written.
    rewritten: str | None = None

    @property
    def digits(self) -> str:
        """E.164 without the '+', the form both vendors take (``phone`` / ``phone_number``)."""
        return self.e164[1:]


@dataclass(frozen=True)
class Rejected:
    raw: str
    reason: str

    @property
    def storable_raw(self) -> str:
        """The input as text PostgreSQL and log files can hold (see :func:`storable`)."""
        return storable(self.raw)


#: Longer input is not parsed at all (E.164 numbers have at most 15 digits; room for spacing,
#: punctuation and an extension-free national prefix).
MAX_INPUT_CHARS = 64
#: How much of a rejected input is kept for inspection.
MAX_STORED_CHARS = 100


def storable(raw: str) -> str:
    """``raw`` with control, format and surrogate characters escaped (``\\x00``, ``\\udcff``)
    and cut to :data:`MAX_STORED_CHARS`: PostgreSQL text cannot hold NUL, UTF-8 cannot encode a
    lone surrogate, and a log line must not carry a terminal escape."""
    out = []
    for char in raw[:MAX_STORED_CHARS]:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    if len(raw) > MAX_STORED_CHARS:
        out.append(f"... ({len(raw)} characters)")
    return "".join(out)


def screen(text: str, allow_vanity: bool = False) -> str | None:
    """Why ``text`` cannot be a phone number before any parsing, or None when it may be one."""
    if len(text) > MAX_INPUT_CHARS:
        return f"too long to be a phone number ({len(text)} characters)"
    for char in text:
        category = unicodedata.category(char)
        if category == "Cs":
            code = ord(char)
            if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file (surrogateescape)
                return f"not valid UTF-8 (byte 0x{code - 0xDC00:02X}): save the file as UTF-8"
            return f"invalid Unicode (lone surrogate U+{code:04X})"
        if category == "Cc":
            return f"contains a control character (U+{ord(char):04X})"
        if category in ("Cf", "Co", "Cn"):
            return f"contains an invisible or unassigned character (U+{ord(char):04X})"
        if category.startswith("L") and not allow_vanity:
            return "contains letters (vanity numbers are off: allow_vanity reads letters as keypad digits)"
    return None


def split_input(text: str) -> list[str]:
    """Split a multi-line / comma-separated box of numbers into stripped, non-empty entries."""
    return [part.strip() for part in _SPLIT_RE.split(text or "") if part.strip()]


def _line_type_name(number: phonenumbers.PhoneNumber) -> str:
    return LINE_TYPE_NAMES.get(phonenumbers.number_type(number), "UNKNOWN")


def normalise(
    raw: str, default_region: str | None = None, allow_vanity: bool = False
) -> Normalised | Rejected:
    """Parse one number; ``default_region`` (ISO alpha-2) applies to numbers without ``+``/``00``.

    Never raises on odd text: see :func:`screen`. ``allow_vanity`` reads letters as keypad
    digits (``+1 800 FLOWERS``); off by default.

    A number written as bare digits that starts with a calling code (``5215512345678``, the form
    vendors echo back) is accepted too when it is valid that way and not valid as a national
    number of ``default_region``.
    """
    text = (raw or "").strip()
    region = (default_region or "").upper() or None
    if text and len(text) <= MAX_INPUT_CHARS and (region is None or region in phonenumbers.SUPPORTED_REGIONS):
        fast = fast_normalise(text, region)  # plainly written valid numbers: same answer, faster
        if fast is not None:
            return Normalised(raw, *fast)
        if text[0] == "+" or region in (None, "MX"):  # where a legacy form is never valid as written
            legacy = legacy_rewrite(text, re.sub(r"\D", "", text), region)
            if legacy is not None and (fast := fast_normalise(legacy[0], None)) is not None:
                return Normalised(raw, *fast, rewritten=legacy[1])
    if not text:
        return Rejected(raw, "empty")
    why = screen(text, allow_vanity)
    if why is not None:
        return Rejected(raw, why)
    if region and region not in phonenumbers.SUPPORTED_REGIONS:
        return Rejected(raw, f"unknown default region {default_region!r}")

    candidates: list[str] = [text]
    digits_only = re.sub(r"\D", "", text)
    if (
        not text.startswith("+")
        and digits_only
        and not text.startswith("00")
        and not re.search(r"[^\W\d_]", text)
    ):
        candidates.append("+" + digits_only)  # vendor style: digits with calling code

    first_error: str | None = None
    for i, candidate in enumerate(candidates):
        parsed = _parse_valid(candidate, region)
        if isinstance(parsed, phonenumbers.PhoneNumber):
            return _normalised(raw, parsed, _rewritten_by_library(parsed, digits_only))
        if i == 0 or parsed != _UNASSIGNED:
            first_error = first_error or parsed
    legacy = legacy_rewrite(text, digits_only, region)
    if legacy is not None:
        parsed = _parse_valid(legacy[0], None)
        if isinstance(parsed, phonenumbers.PhoneNumber):
            return _normalised(raw, parsed, legacy[1])
    return Rejected(raw, first_error or "not a valid number")


def _parse_valid(candidate: str, region: str | None) -> phonenumbers.PhoneNumber | str:
    """The parsed number when it is valid, else why not."""
    try:
        number = phonenumbers.parse(candidate, None if candidate.startswith("+") else region)
    except NumberParseException as exc:
        return _PARSE_ERRORS.get(exc.error_type, str(exc))
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != ValidationResult.IS_POSSIBLE:
        return _POSSIBLE_ERRORS.get(possible, "not a possible number")
    if not phonenumbers.is_valid_number(number):
        return _UNASSIGNED
    return number


def _normalised(raw: str, number: phonenumbers.PhoneNumber, rewritten: str | None) -> Normalised:
    return Normalised(
        raw=raw,
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        region_code=phonenumbers.region_code_for_number(number) or "001",
        country_code=str(number.country_code),
        line_type=_line_type_name(number),
        rewritten=rewritten,
    )


#: Mexico's numbering plan of August 2019 dropped these; customer files still hold them.
#: ``+52 1`` + 10 digits: the mobile marker dialled after the country code from abroad;
#: ``044`` / ``045`` + 10 digits: local / long-distance calls to a mobile; ``01`` + 10 digits:
#: national long distance. Today every Mexican number is the 10 digits alone.
_MX_INTERNATIONAL_MOBILE = re.compile(r"521(\d{10})")
_MX_NATIONAL_PREFIX = re.compile(r"(044|045|01)(\d{10})")
_MX_REASONS = {
    "1": "Mexican mobile marker 1 after +52 dropped (not dialled since 2019)",
    "044": "Mexican prefix 044 (local call to a mobile) dropped (not dialled since 2019)",
    "045": "Mexican prefix 045 (long-distance call to a mobile) dropped (not dialled since 2019)",
    "01": "Mexican long-distance prefix 01 dropped (not dialled since 2019)",
}


def legacy_rewrite(text: str, digits: str, region: str | None) -> tuple[str, str] | None:
    """Today's form (``+52`` + 10 digits) of a Mexican number written the pre-2019 way, with what
    was dropped, or None. ``+52 1 …``, ``00 52 1 …`` and bare ``521…`` (13 digits, the vendors'
    style) from any default region; ``044`` / ``045`` / ``01`` + 10 digits only as national
    numbers of MX. Tried only after the number failed as written, so a number valid today is
    never rewritten; the result is validated like any input."""
    if text.startswith("00"):
        digits = digits[2:]
    if match := _MX_INTERNATIONAL_MOBILE.fullmatch(digits):
        return "+52" + match[1], _MX_REASONS["1"]
    if region == "MX" and not text.startswith(("+", "00")):
        if match := _MX_NATIONAL_PREFIX.fullmatch(digits):
            return "+52" + match[2], _MX_REASONS[match[1]]
    return None


def _rewritten_by_library(number: phonenumbers.PhoneNumber, digits: str) -> str | None:
    """What ``phonenumbers`` itself changed beyond dropping dialling prefixes: a national number
    that is not in the input's digits was rewritten by the region's parsing rules (Argentina's
    ``15`` mobile marker after the area code becomes ``9`` before it)."""
    national = phonenumbers.national_significant_number(number)
    if national in digits:
        return None
    region = phonenumbers.region_code_for_number(number) or "001"
    if region == "AR":
        return "Argentine mobile written with 15 after the area code: rewritten as 9 + area code + number"
    return f"rewritten by the national parsing rules of {region}"


@dataclass
class NormalisedBatch:
    numbers: list[Normalised]
    rejected: list[Rejected]
    duplicates: int  # inputs that normalised to a number already in the batch

    @property
    def by_region(self) -> dict[str, list[Normalised]]:
        out: dict[str, list[Normalised]] = {}
        for n in self.numbers:
            out.setdefault(n.region_code, []).append(n)
        return out


def normalise_many(
    entries: Iterable[str], default_region: str | None = None, allow_vanity: bool = False
) -> NormalisedBatch:
    """Normalise many inputs, keeping input order and dropping duplicates (same E.164)."""
    seen: set[str] = set()
    numbers: list[Normalised] = []
    rejected: list[Rejected] = []
    duplicates = 0
    for raw in entries:
        result = normalise(raw, default_region, allow_vanity)
        if isinstance(result, Rejected):
            rejected.append(result)
        elif result.e164 in seen:
            duplicates += 1
        else:
            seen.add(result.e164)
            numbers.append(result)
    return NormalisedBatch(numbers, rejected, duplicates)


def to_e164(vendor_phone: str | None) -> str | None:
    """Best-effort E.164 for a number a vendor echoed back (digits with calling code).

    Returns None when the value cannot be a number (masked examples like ``8498****``).
    """
    if not vendor_phone:
        return None
    result = normalise(
        vendor_phone if vendor_phone.startswith("+") else "+" + re.sub(r"\D", "", vendor_phone)
    )
    return result.e164 if isinstance(result, Normalised) else None
