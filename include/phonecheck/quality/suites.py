"""Expectation suites for the typed ``telco`` tables, generated from :mod:`phonecheck.enums`.

Plain data, no Great Expectations import: a suite is a list of :class:`Check` (GX expectation
type + arguments + why), so tests and the data dictionary can read the suites without paying
GX's 7 s import. :mod:`phonecheck.quality.gx` turns them into GX expectations.

What is checked, per table (see each builder for the exact list):

* the grain: key columns not null and unique over the validated rows. The primary key already
  makes a duplicate impossible *in the table*, so the duplicate that can really happen is checked
  too: the same number under two spellings in one batch / voice message (``(batch_no, e164)``,
  ``(message_id, e164)``), i.e. a number checked and paid for twice. For call records the second
  vendor key ``call_id`` must be unique as well.
* every enum column in its :class:`~phonecheck.enums.CodeSet` (NULL allowed where the set is
  ``nullable``): taken from ``CodeSet.columns``, so a new code set column is checked without
  touching this file;
* money: >= 0, and at most 4 decimals (the vendor's precision; ``numeric(12,4)`` columns round on
  load, so on table rows this check guards the column type; on parsed rows validated before a
  load, see :func:`phonecheck.quality.validate_frame`, it catches a vendor sending more);
* ISO 4217 currencies and ISO 3166-1 regions;
* timestamps: within a sane window (not before 2015, not more than a day in the future) and in
  order (voice end >= start; PNS answer >= start, hang-up >= answer when answered, hang-up >= start);
* formats: ``e164`` (derived by us) strictly ``+`` and 7-15 digits, the first not 0, where not null. ``phone`` /
  ``phone_number`` / ``caller`` / ``callee`` are stored **as received** and get no format check:
  the vendors' own examples mask them (``234800001xxxxx``, ``0062********``), and a number that is
  not a number shows up as a NULL ``e164``. The vendor's normalised ``standNumber`` and
  ``nationalNumber`` must be digits, a trailing mask (``x``/``*``, as in the vendor examples)
  tolerated; calling codes 1-4 digits; ``mcc`` 3 digits, ``mnc`` 2-3 digits.

  A format with a length range is two expectations, a length check and a plain pattern
  (:class:`TextFormat`), not one regex with a look-ahead or a counted repetition: the message says
  which part failed, and PostgreSQL, which evaluates every row (:mod:`phonecheck.quality.scan`),
  runs ``char_length`` + ``^[1-9][0-9]*$`` four times faster than ``^(?=[0-9]{5,15}$)...``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from phonecheck import enums


@dataclass(frozen=True)
class TextFormat:
    """A text format: a pattern (GX's ``re.search``) and a length range, checked as two
    expectations (``expect_column_value_lengths_to_be_between`` + ``..._to_match_regex``)."""

    regex: str
    min_length: int
    max_length: int

    def matches(self, value: str) -> bool:
        """What the two expectations accept together (used by tests and docs)."""
        return self.min_length <= len(value) <= self.max_length and re.search(self.regex, value) is not None


#: Our own E.164 form: "+" and 7-15 digits, the first not 0.
E164 = TextFormat(r"^\+[1-9][0-9]*$", 8, 16)
#: Vendor standard format: digits with the calling code, 5-15 long; a trailing mask is tolerated.
STAND_NUMBER = TextFormat(r"^[1-9][0-9]*[x*]*$", 5, 15)
#: Vendor national (local) format: digits, 2-15 long; a trailing mask is tolerated.
NATIONAL_NUMBER = TextFormat(r"^[0-9]+[x*]*$", 2, 15)
#: A calling code: 1-4 digits, the first not 0.
CALLING_CODE = TextFormat(r"^[1-9][0-9]*$", 1, 4)
MCC_REGEX = r"^[0-9]{3}$"
MNC_REGEX = r"^[0-9]{2,3}$"
#: ``numeric(12,4)`` rendered as text: at most 8 integer digits and 4 decimals, no sign.
MONEY_INTEGER_DIGITS = 8
MONEY_DECIMALS = 4
MONEY_TEXT_REGEX = rf"^[0-9]{{1,{MONEY_INTEGER_DIGITS}}}(?:\.[0-9]{{1,{MONEY_DECIMALS}}})?$"
#: Suffix of the text rendering of a money column the runner adds to the validated frame.
TEXT_SUFFIX = "__as_text"
#: Earliest plausible vendor timestamp (both APIs are younger).
EARLIEST = datetime(2015, 1, 1, tzinfo=UTC)
#: Clock-skew allowance for "not in the future".
FUTURE_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class Check:
    """One expectation: GX snake_case type, its arguments, and why we expect it."""

    expectation_type: str
    kwargs: Mapping[str, Any]
    why: str
    code_set: str | None = None

    @property
    def column_name(self) -> str | None:
        """The column(s) the check is about, as stored in ``dq.validation_result.column_name``."""
        kw = self.kwargs
        if "column" in kw:
            column = kw["column"]
            return column.removesuffix(TEXT_SUFFIX)
        if "column_A" in kw:
            return f"{kw['column_A']},{kw['column_B']}"
        if "column_list" in kw:
            return ",".join(kw["column_list"])
        return None

    @property
    def columns(self) -> tuple[str, ...]:
        """Table columns the check reads."""
        kw = self.kwargs
        if "column" in kw:
            return (kw["column"].removesuffix(TEXT_SUFFIX),)
        if "column_A" in kw:
            return (kw["column_A"], kw["column_B"])
        return tuple(kw.get("column_list", ()))


@dataclass(frozen=True)
class TableSuite:
    table: str  # schema-qualified
    key: tuple[str, ...]  # the grain (primary key)
    checks: tuple[Check, ...]
    money_columns: tuple[str, ...] = field(default=())
    #: timestamptz columns (the runner hands them to GX as naive UTC datetimes).
    timestamp_columns: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.table.split(".", 1)[1]

    @property
    def columns(self) -> tuple[str, ...]:
        """Every table column the suite reads, key first, in a stable order."""
        seen: dict[str, None] = dict.fromkeys(self.key)
        for check in self.checks:
            seen.update(dict.fromkeys(check.columns))
        return tuple(seen)

    def checks_for(self, column: str) -> list[Check]:
        return [c for c in self.checks if column in c.columns]


# --- building blocks ---------------------------------------------------------------------------


def _not_null(*columns: str, why: str) -> list[Check]:
    return [Check("expect_column_values_to_not_be_null", {"column": c}, why) for c in columns]


def _grain(table: str, key: tuple[str, ...]) -> list[Check]:
    why = f"the grain of {table}: one row per ({', '.join(key)})"
    checks = _not_null(*key, why=f"key column of {table}")
    if len(key) == 1:
        checks.append(Check("expect_column_values_to_be_unique", {"column": key[0]}, why))
    else:
        checks.append(Check("expect_compound_columns_to_be_unique", {"column_list": list(key)}, why))
    return checks


def _code_sets(table: str) -> list[Check]:
    """An in-set check for every column a CodeSet governs in ``table`` (enums.py is the source)."""
    checks = []
    for code_set in enums.ALL_CODE_SETS:
        for set_table, column in code_set.columns:
            if set_table != table:
                continue
            checks.append(
                Check(
                    "expect_column_values_to_be_in_set",
                    {"column": column, "value_set": list(code_set.values)},
                    f"documented values of {code_set.name} ({code_set.source})",
                    code_set=code_set.name,
                )
            )
            if not code_set.nullable:
                checks.append(
                    Check(
                        "expect_column_values_to_not_be_null",
                        {"column": column},
                        f"{code_set.name} is always present",
                        code_set=code_set.name,
                    )
                )
    return checks


def _money(*columns: str) -> list[Check]:
    checks = []
    for column in columns:
        checks.append(
            Check(
                "expect_column_values_to_be_between",
                # no float max_value: GX compares Decimal prices with the float exactly, and the
                # float nearest 99999999.9999 is below it (the largest numeric(12,4) would fail)
                {"column": column, "min_value": 0},
                "a price is never negative",
            )
        )
        checks.append(
            Check(
                "expect_column_values_to_match_regex",
                {"column": column + TEXT_SUFFIX, "regex": MONEY_TEXT_REGEX},
                "prices are accurate to four decimal places (NXCLOUD result-push doc cost.price) and fit numeric(12,4)",
            )
        )
    return checks


def _currency(column: str) -> Check:
    return Check(
        "expect_column_values_to_be_in_set",
        {"column": column, "value_set": sorted(enums.iso_currency_codes())},
        "ISO 4217 currency code",
        code_set="iso_4217",
    )


def _region(column: str) -> Check:
    return Check(
        "expect_column_values_to_be_in_set",
        {"column": column, "value_set": sorted(enums.iso_region_codes())},
        "ISO 3166-1 alpha-2 region code (as known to libphonenumber)",
        code_set="iso_3166_1",
    )


def _regex(column: str, regex: str, why: str) -> Check:
    return Check("expect_column_values_to_match_regex", {"column": column, "regex": regex}, why)


def _format(column: str, text_format: TextFormat, why: str) -> list[Check]:
    return [
        Check(
            "expect_column_value_lengths_to_be_between",
            {"column": column, "min_value": text_format.min_length, "max_value": text_format.max_length},
            why,
        ),
        _regex(column, text_format.regex, why),
    ]


def _non_negative(*columns: str) -> list[Check]:
    return [
        Check("expect_column_values_to_be_between", {"column": c, "min_value": 0}, "a count or duration")
        for c in columns
    ]


def _sane_time(now: datetime, *columns: str) -> list[Check]:
    # naive UTC, like the validated frame's timestamp columns
    earliest = EARLIEST.replace(tzinfo=None).isoformat()
    latest = (now.astimezone(UTC) + FUTURE_SLACK).replace(tzinfo=None).isoformat(timespec="seconds")
    return [
        Check(
            "expect_column_values_to_be_between",
            {"column": c, "min_value": earliest, "max_value": latest},
            "a plausible time: not before 2015, not more than a day in the future",
        )
        for c in columns
    ]


def _in_order(later: str, earlier: str, why: str) -> Check:
    return Check(
        "expect_column_pair_values_a_to_be_greater_than_b",
        {
            "column_A": later,
            "column_B": earlier,
            "or_equal": True,
            "ignore_row_if": "either_value_is_missing",
        },
        why,
    )


def _same_number_once(scope: str, why: str) -> Check:
    return Check(
        "expect_compound_columns_to_be_unique",
        {"column_list": [scope, "e164"], "ignore_row_if": "any_value_is_missing"},
        why,
    )


def _e164() -> list[Check]:
    return _format("e164", E164, "E.164 with + (derived by us); NULL when the received number is not one")


# --- the suites --------------------------------------------------------------------------------


def _number_check(now: datetime) -> TableSuite:
    table = enums.NUMBER_CHECK
    key = ("batch_no", "phone")
    checks = [
        *_grain(table, key),
        _same_number_once("batch_no", "one number once per batch: two spellings of a number = paid twice"),
        *_code_sets(table),
        *_money("price"),
        _currency("currency"),
        _region("region_code"),
        *_format("stand_number", STAND_NUMBER, "basic.standNumber: digits with calling code"),
        *_format("national_number", NATIONAL_NUMBER, "basic.nationalNumber: digits"),
        *_format("country_code", CALLING_CODE, "basic.countryCode: a calling code"),
        _regex("mcc", MCC_REGEX, "mobile country code"),
        _regex("mnc", MNC_REGEX, "mobile network code"),
        *_e164(),
        *_sane_time(now, "pushed_at", "queried_at"),
    ]
    return TableSuite(table, key, tuple(checks), ("price",), ("pushed_at", "queried_at"))


def _accuauth(now: datetime) -> TableSuite:
    table = enums.ACCUAUTH
    key = ("task_id",)
    checks = [
        *_grain(table, key),
        *_not_null("phone_number", why="the number checked"),
        *_code_sets(table),
        *_e164(),
        *_non_negative("poll_count"),
        *_sane_time(now, "submitted_at", "completed_at"),
        _in_order("completed_at", "submitted_at", "a check completes after it was submitted"),
        _in_order("expires_at", "submitted_at", "a task expires after it was submitted"),
    ]
    return TableSuite(table, key, tuple(checks), (), ("submitted_at", "completed_at", "expires_at"))


def _voice(now: datetime) -> TableSuite:
    table = enums.VOICE
    key = ("message_id", "phone")
    checks = [
        *_grain(table, key),
        _same_number_once("message_id", "one number once per voice message"),
        *_code_sets(table),
        *_money("basic_price", "customer_price"),
        *_non_negative("duration", "second", "cycle", "size"),
        *_format("country_code", CALLING_CODE, "countryCode: a calling code"),
        *_e164(),
        *_sane_time(now, "start_time", "end_time"),
        _in_order("end_time", "start_time", "a call ends after it starts"),
    ]
    return TableSuite(
        table, key, tuple(checks), ("basic_price", "customer_price"), ("start_time", "end_time")
    )


def _call(now: datetime) -> TableSuite:
    table = enums.CALL
    key = ("record_id",)
    checks = [
        *_grain(table, key),
        *_not_null("call_id", why="callId is unique per call"),
        Check("expect_column_values_to_be_unique", {"column": "call_id"}, "callId is unique per call"),
        *_code_sets(table),
        *_non_negative("duration", "start_at_epoch", "answer_at_epoch", "hangup_at_epoch"),
        *_sane_time(now, "start_at", "answer_at", "hangup_at"),
        _in_order("answer_at", "start_at", "a call is answered after it starts"),
        _in_order("hangup_at", "answer_at", "an answered call hangs up after it was answered"),
        _in_order("hangup_at", "start_at", "a call hangs up after it starts"),
    ]
    return TableSuite(table, key, tuple(checks), (), ("start_at", "answer_at", "hangup_at"))


_BUILDERS = {
    enums.NUMBER_CHECK: _number_check,
    enums.ACCUAUTH: _accuauth,
    enums.VOICE: _voice,
    enums.CALL: _call,
}

#: Tables that have a suite.
SUITE_TABLES: tuple[str, ...] = tuple(_BUILDERS)

#: The key column each pipeline typically selects its loaded rows by (any column works).
DEFAULT_KEY_COLUMN = {
    enums.NUMBER_CHECK: "batch_no",  # submit/query pipelines: the batches they loaded
    enums.ACCUAUTH: "task_id",  # AccuAuth pipeline: the tasks it loaded
    enums.VOICE: "raw_event_id",  # push processing: the inbox rows it parsed
    enums.CALL: "raw_event_id",
}


def suite_for(table: str, now: datetime | None = None) -> TableSuite:
    """The suite of a ``telco`` table (``now`` bounds "not in the future")."""
    try:
        builder = _BUILDERS[table]
    except KeyError:
        raise ValueError(f"no quality suite for {table!r}; known: {', '.join(SUITE_TABLES)}") from None
    return builder(now or datetime.now(UTC))


def all_suites(now: datetime | None = None) -> Iterable[TableSuite]:
    return [suite_for(t, now) for t in SUITE_TABLES]
