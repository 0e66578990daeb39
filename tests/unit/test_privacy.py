"""Masking, redaction and erasure targets: pure functions."""

from __future__ import annotations

import json

import pytest

from phonecheck.privacy.erasure import _pattern, erasure_target, parse_numbers, redact_value
from phonecheck.privacy.masking import mask_number, mask_numbers_in_text


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("+525512345678", "+52******5678"),
        ("5215512345678", "52******5678"),
        ("+52 55 1234 5678", "+52******5678"),
        ("12345", "******45"),
        ("", "******"),
        (None, "******"),
    ],
)
def test_mask_number_keeps_at_most_six_digits(value, masked):
    assert mask_number(value) == masked


def test_mask_numbers_in_text_masks_every_number_like_run_and_nothing_short():
    text = "rejected '+52 55 1234 5678' (too long) and 8613800138000; batch 42 of 3, code 114"
    assert (
        mask_numbers_in_text(text)
        == "rejected '+52******5678' (too long) and 86******8000; batch 42 of 3, code 114"
    )


def test_erasure_target_accepts_any_spelling_and_knows_the_national_digits():
    target = erasure_target("+52 (55) 1234-5678")
    assert target.e164 == "+525512345678"
    assert target.needles == ("525512345678", "5512345678")
    assert erasure_target("525512345678") == target
    assert erasure_target("99912345").needles == ("99912345",)  # not a valid number: its digits
    with pytest.raises(ValueError, match="fewer than"):
        erasure_target("12345")


def test_redact_value_reaches_into_bytes_json_lists_and_numbers():
    target = erasure_target("+525512345678")
    pattern, token = _pattern(target), "[erased:abcd1234]"
    body = json.dumps({"phone": "525512345678", "n": 525512345678, "basic": {"nationalNumber": "5512345678"}})
    redacted = redact_value(body.encode(), pattern, token)
    assert b"5512345678" not in redacted and redacted.count(token.encode()) == 3
    assert redact_value("phone=%2B525512345678&x=1", pattern, token) == "phone=[erased:abcd1234]&x=1"
    assert redact_value({"a": [525512345678, "+525512345678", 7], "b": True}, pattern, token) == {
        "a": [token, token, 7],
        "b": True,
    }
    assert redact_value("b1|525512345678|m1", pattern, token) == "b1|[erased:abcd1234]|m1"


def test_parse_numbers_splits_lines_commas_and_skips_comments():
    assert parse_numbers("+525512345678\n# request 42\n 5215512345679 ,+573001234567;") == [
        "+525512345678",
        "5215512345679",
        "+573001234567",
    ]
