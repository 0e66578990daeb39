from __future__ import annotations

import pytest

from phonecheck.numbers import Normalised, Rejected, normalise, normalise_many, split_input, to_e164


@pytest.mark.parametrize(
    ("raw", "region", "e164", "region_out"),
    [
        ("+52 55 1234 5678", None, "+525512345678", "MX"),
        ("55 1234 5678", "MX", "+525512345678", "MX"),
        ("525512345678", "GB", "+525512345678", "MX"),  # vendor style digits with calling code
        ("020 7946 0018", "gb", "+442079460018", "GB"),
        ("0086 138 0013 8000", "GB", "+8613800138000", "CN"),
    ],
)
def test_valid_numbers_normalise_to_e164(raw, region, e164, region_out):
    result = normalise(raw, region)
    assert isinstance(result, Normalised)
    assert (result.e164, result.region_code, result.digits) == (e164, region_out, e164[1:])


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("", "GB", "empty"),
        ("not a number", "GB", "contains letters"),
        ("-- / --", "GB", "not a phone number"),
        ("5512345678", None, "no country code"),
        ("07700 900123", "GB", "not a valid number"),  # Ofcom drama range: never assigned
        ("+44 20 79", None, "too short"),
        ("+52 55 1234 56789012", None, "too long"),
        ("12345", "XX", "unknown default region"),
    ],
)
def test_invalid_numbers_are_rejected_with_a_reason(raw, region, reason):
    result = normalise(raw, region)
    assert isinstance(result, Rejected)
    assert reason in result.reason


def test_normalise_many_keeps_order_and_drops_duplicates():
    batch = normalise_many(split_input("+525512345678\n55 1234 5678, junk\n+8613800138000"), "MX")
    assert [n.e164 for n in batch.numbers] == ["+525512345678", "+8613800138000"]
    assert batch.duplicates == 1
    assert [r.raw for r in batch.rejected] == ["junk"]
    assert set(batch.by_region) == {"MX", "CN"}


def test_to_e164_for_vendor_echoes():
    assert to_e164("8613800138000") == "+8613800138000"
    assert to_e164("8498****") is None
    assert to_e164(None) is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("+52 55 1234\x005678", "control character (U+0000)"),
        ("+52 55 1234\x1b[31m5678", "control character (U+001B)"),
        ("+52 55 1234 5678\ud800", "lone surrogate U+D800"),
        ("+52 55 \udcff1234 5678", "not valid UTF-8 (byte 0xFF)"),  # an undecodable byte of a file
        ("+52\u200b55 1234 5678", "invisible or unassigned character (U+200B)"),
        ("+52 55 FAKE NUMB", "contains letters"),
        ("+1 800 FLOWERS", "contains letters"),
        ("+52 55 1234 5678" + "0" * 80, "too long to be a phone number"),
    ],
)
def test_odd_input_is_rejected_with_a_reason_never_an_exception(raw, reason):
    result = normalise(raw, "MX")
    assert isinstance(result, Rejected)
    assert reason in result.reason
    stored = result.storable_raw
    stored.encode("utf-8")  # PostgreSQL text takes it: no lone surrogate ...
    assert "\x00" not in stored and "\x1b" not in stored  # ... no NUL, no terminal escape
    assert len(stored) <= 130


def test_vanity_numbers_only_when_allowed():
    assert isinstance(normalise("+1 800 FLOWERS", None), Rejected)
    allowed = normalise("+1 800 FLOWERS", None, allow_vanity=True)
    assert isinstance(allowed, Normalised) and allowed.e164 == "+18003569377"


def test_storable_escapes_and_cuts():
    from phonecheck.numbers import storable

    assert storable("12\x003") == "12\\x003"
    assert storable("\udcff") == "\\udcff"
    assert storable("x" * 150).endswith("... (150 characters)")


@pytest.mark.parametrize(
    ("raw", "region", "dropped"),
    [
        ("+52 1 55 1234 5678", None, "marker 1 after +52"),
        ("0052 1 55 1234 5678", "MX", "marker 1 after +52"),
        ("5215512345678", "GB", "marker 1 after +52"),  # vendor style digits
        ("044 55 1234 5678", "MX", "prefix 044"),
        ("045 55 1234 5678", "MX", "prefix 045"),
        ("01 55 1234 5678", "MX", "prefix 01"),
    ],
)
def test_mexican_legacy_forms_become_todays_number_and_say_so(raw, region, dropped):
    result = normalise(raw, region)
    assert isinstance(result, Normalised)
    assert (result.e164, result.region_code) == ("+525512345678", "MX")
    assert dropped in result.rewritten


def test_todays_numbers_and_legacy_lookalikes_are_not_rewritten():
    assert normalise("+52 55 1234 5678").rewritten is None
    assert normalise("020 7946 0018", "GB").rewritten is None
    assert normalise("0 21 11 91234 5678", "BR").rewritten is None  # carrier code 21: only dialled
    assert isinstance(normalise("044 55 1234 5678", "GB"), Rejected)  # national forms of MX only
    assert isinstance(normalise("+52 1 55 1234 567"), Rejected)  # 9 digits after the marker


def test_argentine_15_mobile_marker_is_rewritten_by_phonenumbers_and_flagged():
    result = normalise("011 15 1234 5678", "AR")
    assert isinstance(result, Normalised) and result.e164 == "+5491112345678"
    assert "15 after the area code" in result.rewritten
    assert normalise("+54 9 11 1234 5678").rewritten is None
    assert normalise_many(["+54 9 11 1234 5678", "011 15 1234 5678"], "AR").duplicates == 1
