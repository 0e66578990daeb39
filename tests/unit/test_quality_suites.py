"""The quality suites are generated from enums.py and cover every enumerated vendor field.

No warehouse and no Great Expectations import here: suites are plain data.
"""

from __future__ import annotations

import re

import pytest

from phonecheck import enums, loader
from phonecheck.quality import suites
from phonecheck.quality.suites import SUITE_TABLES, suite_for
from tests import seed_payloads as seed

NC, AA, VOICE, CALL = enums.NUMBER_CHECK, enums.ACCUAUTH, enums.VOICE, enums.CALL

#: Every enumerated field the vendor documents (the vendor documents (docs/vendors/)) name, the column it lands in, its
#: code set, and the value the seed example shows (stored form). Written out by hand from the
#: documents on purpose: a new field in a vendor document must be added here consciously.
SEED_ENUM_FIELDS = [
    # NXCLOUD result-push doc: number check result push
    ("NXCLOUD result-push doc", "code", NC, "code", enums.NXCLOUD_RECEIPT_CODE, 114),
    ("NXCLOUD result-push doc", "data.basic.preCheck", NC, "pre_check", enums.NXCLOUD_YES_NO, "YES"),
    ("NXCLOUD result-push doc", "data.basic.numberType", NC, "number_type", enums.NXCLOUD_NUMBER_TYPE, "2"),
    ("NXCLOUD result-push doc", "data.live.validity", NC, "validity", enums.NXCLOUD_TRISTATE, "YES"),
    ("NXCLOUD result-push doc", "data.live.reachable", NC, "reachable", enums.NXCLOUD_TRISTATE, "UNKNOWN"),
    ("NXCLOUD result-push doc", "data.live.roaming", NC, "roaming", enums.NXCLOUD_TRISTATE, "UNKNOWN"),
    ("NXCLOUD result-push doc", "data.dial.early", NC, "early", enums.NXCLOUD_TRISTATE, "NO"),
    ("NXCLOUD result-push doc", "data.dial.answered", NC, "answered", enums.NXCLOUD_TRISTATE, "NO"),
    (
        "NXCLOUD result-push doc",
        "data.dial.response",
        NC,
        "response",
        enums.NXCLOUD_DIAL_RESPONSE,
        "invalid_number",
    ),
    # NXCLOUD query-API doc: query API rows
    ("NXCLOUD query-API doc", "result[].checkLevel", NC, "check_level", enums.NXCLOUD_CHECK_LEVEL, 2),
    ("NXCLOUD query-API doc", "result[].numberType", NC, "number_type", enums.NXCLOUD_NUMBER_TYPE, "2"),
    ("NXCLOUD query-API doc", "result[].preCheck", NC, "pre_check", enums.NXCLOUD_YES_NO, "YES"),
    ("NXCLOUD query-API doc", "result[].validity", NC, "validity", enums.NXCLOUD_TRISTATE, ""),
    ("NXCLOUD query-API doc", "result[].reachable", NC, "reachable", enums.NXCLOUD_TRISTATE, ""),
    ("NXCLOUD query-API doc", "result[].roaming", NC, "roaming", enums.NXCLOUD_TRISTATE, ""),
    # AccuAuth task-result doc: AccuAuth task result
    ("AccuAuth task-result doc", "status", AA, "status", enums.ACCUAUTH_STATUS, "PENDING"),
    (
        "AccuAuth task-result doc",
        "result.phone_status",
        AA,
        "phone_status",
        enums.ACCUAUTH_PHONE_STATUS,
        "ring",
    ),
    # NXCLOUD voice-receipt doc: voice receipt
    ("NXCLOUD voice-receipt doc", "voice_type", VOICE, "voice_type", enums.VOICE_TYPE, "0"),
    ("NXCLOUD voice-receipt doc", "result", VOICE, "result", enums.VOICE_RESULT, "Successful connection"),
    (
        "NXCLOUD voice-receipt doc",
        "hangup_cause",
        VOICE,
        "hangup_cause",
        enums.HANGUP_CAUSE,
        "NORMAL_CLEARING",
    ),
    (
        "NXCLOUD voice-receipt doc",
        "hangup_disposition",
        VOICE,
        "hangup_disposition",
        enums.VOICE_HANGUP_DISPOSITION,
        "send_bye",
    ),
    # NXCLOUD call-record doc: PNS call record
    ("NXCLOUD call-record doc", "callStatus", CALL, "call_status", enums.PNS_CALL_STATUS, "1"),
    ("NXCLOUD call-record doc", "hangupCause", CALL, "hangup_cause", enums.HANGUP_CAUSE, ""),
    ("NXCLOUD call-record doc", "hangupCode", CALL, "hangup_code", enums.HANGUP_CODE, 0),
    ("NXCLOUD call-record doc", "hangup", CALL, "hangup", enums.PNS_HANGUP_PARTY, 0),
]

#: Enumerated fields of the vendor answers that never land in a typed column (the hooks read them).
SEED_ANSWER_CODES = [
    ("NXCLOUD query-API doc", "code (query answer)", enums.NXCLOUD_QUERY_CODE, {0, 88, 202, 210}),
    (
        "NXCLOUD result-push doc",
        "code (receipt error codes)",
        enums.NXCLOUD_RECEIPT_CODE,
        {0, 103, 108, 112, 114, 120, 121, 122},
    ),
    (
        "AccuAuth task-result doc",
        "status (error codes)",
        enums.ACCUAUTH_STATUS,
        {
            "PENDING",
            "INVALID_ARGUMENT",
            "UNAUTHORIZED",
            "KEY_EXPIRED",
            "NO_PERMISSION",
            "OUT_OF_QUOTA",
            "RATE_LIMIT_EXCEEDED",
            "NOT_FOUND",
            "INTERNAL_ERROR",
        },
    ),  # fmt: skip
]


def _in_set_check(table: str, column: str):
    found = [
        c
        for c in suite_for(table).checks
        if c.expectation_type == "expect_column_values_to_be_in_set" and c.kwargs["column"] == column
    ]
    assert len(found) == 1, f"{table}.{column}: expected exactly one in-set check, got {found}"
    return found[0]


@pytest.mark.parametrize(("seed_doc", "field", "table", "column", "code_set", "example"), SEED_ENUM_FIELDS)
def test_every_seed_enum_field_has_a_code_set_and_an_in_set_check(
    seed_doc, field, table, column, code_set, example
):
    assert (table, column) in code_set.columns, (
        f"{seed_doc} {field}: enums.py does not map it to {table}.{column}"
    )
    assert code_set in enums.ALL_CODE_SETS
    assert example in code_set, f"{seed_doc} {field}: the vendor's own example {example!r} is not in the set"
    check = _in_set_check(table, column)
    assert check.kwargs["value_set"] == list(code_set.values)
    assert check.code_set == code_set.name


@pytest.mark.parametrize(("seed_doc", "field", "code_set", "documented"), SEED_ANSWER_CODES)
def test_vendor_answer_codes_are_in_the_enum_module(seed_doc, field, code_set, documented):
    assert documented <= set(code_set.values), (
        f"{seed_doc} {field}: missing {documented - set(code_set.values)}"
    )


def test_every_code_set_column_is_a_real_column_and_checked():
    for code_set in enums.ALL_CODE_SETS:
        for table, column in code_set.columns:
            assert column in loader.TABLES[table].columns, (
                f"{code_set.name}: {table}.{column} is not a column"
            )
            check = _in_set_check(table, column)
            assert check.kwargs["value_set"] == list(code_set.values)
            not_null = [
                c
                for c in suite_for(table).checks_for(column)
                if c.expectation_type == "expect_column_values_to_not_be_null"
            ]
            assert bool(not_null) == (not code_set.nullable), f"{table}.{column} nullability"


def test_suites_read_only_existing_columns_and_check_the_grain():
    for table in SUITE_TABLES:
        suite = suite_for(table)
        assert suite.key == loader.TABLES[table].key
        assert set(suite.columns) <= set(loader.TABLES[table].columns)
        for key in suite.key:
            types = {c.expectation_type for c in suite.checks_for(key)}
            assert "expect_column_values_to_not_be_null" in types
            assert types & {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}


@pytest.mark.parametrize(
    ("column", "code_set", "seen_in_seeds", "not_a_code"),
    [
        ("currency", "iso_4217", {"USD", "VND"}, "XXY"),
        ("region_code", "iso_3166_1", {"CN", "VN", "MX"}, "ZZ"),
    ],
)
def test_currency_and_region_codes_are_iso(column, code_set, seen_in_seeds, not_a_code):
    check = _in_set_check(NC, column)
    assert check.code_set == code_set
    assert seen_in_seeds <= set(check.kwargs["value_set"])
    assert not_a_code not in check.kwargs["value_set"]


def test_timestamp_order_checks():
    pairs = {
        (c.kwargs["column_A"], c.kwargs["column_B"])
        for t in SUITE_TABLES
        for c in suite_for(t).checks
        if c.expectation_type == "expect_column_pair_values_a_to_be_greater_than_b"
    }
    assert {("end_time", "start_time"), ("answer_at", "start_at"), ("hangup_at", "answer_at")} <= pairs


@pytest.mark.parametrize("good", ["+8613800138000", "+525512345678", "+12025550123"])
def test_e164_format_accepts(good):
    assert suites.E164.matches(good)


@pytest.mark.parametrize(
    "bad", ["8613800138000", "+0123456789", "+86 138 0013 8000", "+86138", "+1234567890123456"]
)
def test_e164_format_rejects(bad):
    assert not suites.E164.matches(bad)


def test_stand_number_format_tolerates_the_vendor_masks_only_at_the_end():
    examples = [
        seed.NUMBER_CHECK_PUSH_BASIC["data"]["basic"]["standNumber"],
        *(row["standNumber"] for row in seed.NUMBER_CHECK_QUERY_RESPONSE["data"]["result"]),
        "8613800138000",
    ]
    for value in examples:
        assert suites.STAND_NUMBER.matches(value), value
    for value in ["+8613800138000", "86-138-0013", "0086138001380", "86x138", "1234", "8613800138000123456"]:
        assert not suites.STAND_NUMBER.matches(value), value


@pytest.mark.parametrize(("text", "ok"), [("0.1912", True), ("0", True), ("12.5", True), ("0.12345", False),
                                          ("-1.0000", False), ("123456789.0", False)])  # fmt: skip
def test_money_text_regex(text, ok):
    assert bool(re.search(suites.MONEY_TEXT_REGEX, text)) is ok


def test_unknown_table_is_refused():
    with pytest.raises(ValueError, match="no quality suite"):
        suite_for("raw.webhook_event")


def test_national_number_format():
    for value in ["13800138000", "0800123", "138001xxxxx", "55****"]:
        assert suites.NATIONAL_NUMBER.matches(value), value
    for value in ["1", "+13800138000", "138-0013", "x138", "1234567890123456"]:
        assert not suites.NATIONAL_NUMBER.matches(value), value


def test_each_text_format_is_a_length_check_and_a_pattern():
    checks = suite_for(enums.NUMBER_CHECK).checks_for("stand_number")
    assert [(c.expectation_type, dict(c.kwargs)) for c in checks] == [
        (
            "expect_column_value_lengths_to_be_between",
            {"column": "stand_number", "min_value": 5, "max_value": 15},
        ),
        (
            "expect_column_values_to_match_regex",
            {"column": "stand_number", "regex": suites.STAND_NUMBER.regex},
        ),
    ]
