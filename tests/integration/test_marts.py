"""The mart views answer with the numbers predicted from rows loaded through the real parsers
and loader (vendor example payloads with chosen numbers and times); the analyst role reads
only pseudonymised views (tests/integration/test_privacy.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg
import pytest

from phonecheck import loader
from phonecheck.parsers import accuauth as aa
from phonecheck.parsers import nxcloud as nx
from tests import seed_payloads as seed

pytestmark = pytest.mark.integration

A, B, C, D, E = "+8613800138000", "+8613800138001", "+8613800138002", "+525512345678", "+525587654321"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def _push(template: dict, phone: str, batch: str, pushed_at: datetime, submission_id=None, **changes) -> dict:
    payload = {**template, "phone": phone.lstrip("+"), "batchNo": batch}
    for path, value in changes.items():  # e.g. live={"validity": "NO", ...}
        payload["data"] = {**payload["data"], path: value}
    row = nx.parse_number_check_push(payload)
    return row | {"pushed_at": pushed_at, "submission_id": submission_id}


def _submission(wh, vendor: str, region_code: str, batch_no=None, task_id=None, check_level=None) -> int:
    return wh.execute(
        """INSERT INTO ops.number_check_submission
               (vendor, phones, phone_count, batch_no, task_id, check_level, region_code)
           VALUES (%s, %s, 1, %s, %s, %s, %s) RETURNING submission_id""",
        (vendor, ["x"], batch_no, task_id, check_level, region_code),
    ).fetchone()[0]


@pytest.fixture
def loaded(wh):
    """A: basic, HLR, call, later HLR (no submissions: levels inferred from the fields).
    B: HLR and C: a failure, in batch b2 submitted as HLR (level from the submission).
    D: a Mexican number checked by NXCLOUD (basic) and AccuAuth (OK, then a re-check still
    pending). E: AccuAuth only (submission in MX). Plus NXCLOUD query-API doc's two masked query rows
    (no E.164, level 2, VND) and voice receipts / call records."""
    b2 = _submission(wh, vendor="nxcloud", batch_no="b2", check_level=5, region_code="CN")
    t3 = _submission(wh, vendor="accuauth", task_id="T3", region_code="MX")
    mx_basic = {**seed.NUMBER_CHECK_PUSH_BASIC["data"]["basic"], "regionCode": "MX", "countryCode": "52",
                "carrier": "Telcel"}  # fmt: skip
    number_checks = [
        _push(seed.NUMBER_CHECK_PUSH_BASIC, A, "b1", at(1, 10)),
        _push(seed.NUMBER_CHECK_PUSH_HLR, A, "b2", at(1, 11), b2),
        _push(seed.NUMBER_CHECK_PUSH_CALL, A, "b3", at(2, 9)),
        _push(seed.NUMBER_CHECK_PUSH_HLR, A, "b4", at(3, 8), live={"validity": "NO", "reachable": "NO", "roaming": "NO"}),
        _push(seed.NUMBER_CHECK_PUSH_HLR, B, "b2", at(1, 12), b2, live={"validity": "YES", "reachable": "YES", "roaming": "NO"}),
        _push(seed.NUMBER_CHECK_PUSH_FAILURE, C, "b2", at(1, 12, 30), b2),
        _push({**seed.NUMBER_CHECK_PUSH_BASIC, "cost": {"price": 0.05, "currency": "USD"}}, D, "b5", at(1, 9), basic=mx_basic),
    ]  # fmt: skip
    number_checks += [
        nx.parse_query_row(r) | {"queried_at": at(1, 13)}
        for r in seed.NUMBER_CHECK_QUERY_RESPONSE["data"]["result"]
    ]
    loader.upsert(wh, "telco.nxcloud_number_check", number_checks)

    t1 = aa.parse_callback(
        {"request_id": "R1", "phone_number": D.lstrip("+"), "phone_status": "connected", "task_id": "T1"},
        at(2, 15),
    )
    t2 = aa.parse_submit_response(
        {"request_id": "R2", "status": "OK", "task_id": "T2"}, D.lstrip("+"), at(3, 10)
    )
    t3_row = aa.parse_task_result(
        {
            "status": "OK",
            "result": {"phone_number": E.lstrip("+"), "phone_status": "empty"},
            "request_id": "R3",
        },
        "T3",
        E.lstrip("+"),
        at(2, 16),
    ) | {"submission_id": t3, "submitted_at": at(2, 14)}
    loader.upsert(wh, "telco.accuauth_phone_check", [t1, t2, t3_row])

    missed = {**seed.VOICE_RECEIPT_FIELDS, "phone": "8615088888889", "duration": "0", "result": "Unsuccessful connection",
              "hangup_cause": "NO_ANSWER", "hangup_disposition": "send_cancel"}  # fmt: skip
    loader.upsert(
        wh,
        "telco.nxcloud_voice_receipt",
        [nx.parse_voice_receipt(seed.VOICE_RECEIPT_FIELDS), nx.parse_voice_receipt(missed)],
    )
    legs = {"callId": "c-2", "legList": [{"callStartAt": 1700000000, "callAnswerAt": 1700000003,
                                          "callFinishAt": 1700000030, "hangupCause": "NORMAL_CLEARING",
                                          "hangupCode": 16, "hangupType": 1}]}  # fmt: skip
    loader.upsert(
        wh,
        "telco.nxcloud_call_record",
        [nx.parse_call_record(seed.CALL_RECORD_PUSH), nx.parse_call_record(legs)],
    )
    return wh


def _dicts(wh, query: str) -> list[dict]:
    with wh.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(query).fetchall()


def test_latest_phone_status_one_row_per_number_across_vendors(loaded):
    rows = {r["e164"]: r for r in _dicts(loaded, "SELECT * FROM mart.latest_phone_status")}
    assert set(rows) == {A, B, C, D, E}  # masked query rows have no E.164

    a = rows[A]
    assert (a["region_code"], a["carrier"], a["number_type"]) == ("CN", "China Telecom", "2")
    assert (a["latest_vendor"], a["latest_check_kind"], a["latest_checked_at"]) == (
        "nxcloud",
        "hlr",
        at(3, 8),
    )
    assert (a["basic_code"], a["basic_pre_check"], a["basic_batch_no"], a["basic_checked_at"]) == (
        0,
        "YES",
        "b1",
        at(1, 10),
    )
    assert (a["hlr_validity"], a["hlr_reachable"], a["hlr_roaming"], a["hlr_batch_no"]) == (
        "NO",
        "NO",
        "NO",
        "b4",
    )
    assert (a["call_early"], a["call_answered"], a["call_response"], a["call_checked_at"]) == (
        "NO", "NO", "invalid_number", at(2, 9),
    )  # fmt: skip
    assert a["accuauth_status"] is None

    b = rows[B]
    assert (b["hlr_validity"], b["hlr_reachable"], b["hlr_batch_no"], b["basic_code"]) == (
        "YES",
        "YES",
        "b2",
        None,
    )

    c = rows[C]  # a failed HLR check (level from our submission) is the latest word on C
    assert (c["hlr_code"], c["hlr_validity"], c["latest_check_kind"], c["region_code"]) == (
        114,
        None,
        "hlr",
        None,
    )

    d = rows[D]  # the pending re-check (T2) does not hide T1's answer
    assert (d["region_code"], d["carrier"], d["basic_code"]) == ("MX", "Telcel", 0)
    assert (d["accuauth_status"], d["accuauth_phone_status"], d["accuauth_task_id"]) == (
        "OK",
        "connected",
        "T1",
    )
    assert (d["latest_vendor"], d["latest_check_kind"], d["latest_checked_at"]) == (
        "accuauth",
        "phone_status",
        at(2, 15),
    )

    e = rows[E]
    assert (e["accuauth_phone_status"], e["region_code"], e["hlr_code"]) == ("empty", None, None)


def test_daily_spend(loaded):
    rows = {
        (r["day"], r["vendor"], r["region_code"], r["check_level"], r["currency"]): (
            r["check_kind"], r["checks"], r["priced_checks"], r["spend"],
        )
        for r in _dicts(loaded, "SELECT * FROM mart.daily_spend")
    }  # fmt: skip
    d1, d2, d3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)
    assert rows == {
        (d1, "nxcloud", "CN", 1, "USD"): ("basic", 1, 1, Decimal("0.1912")),
        (d1, "nxcloud", "CN", 5, "USD"): ("hlr", 2, 2, Decimal("1.8460")),
        (d1, "nxcloud", None, 5, None): ("hlr", 1, 0, None),  # C's failure: no region, no price
        (d1, "nxcloud", "MX", 1, "USD"): ("basic", 1, 1, Decimal("0.0500")),
        (d1, "nxcloud", "VN", 2, "VND"): ("level_2", 2, 2, Decimal("0.0000")),
        (d2, "nxcloud", "CN", 4, "USD"): ("call", 1, 1, Decimal("1.0231")),
        (d2, "accuauth", None, None, None): ("phone_status", 1, 0, None),  # T1 (T2 still pending)
        (d2, "accuauth", "MX", None, None): ("phone_status", 1, 0, None),  # T3, region from its submission
        (d3, "nxcloud", "CN", 5, "USD"): ("hlr", 1, 1, Decimal("0.9230")),
    }


def test_daily_outcome_rates(loaded):
    rows = {
        (r["day"], r["vendor"], r["region_code"], r["carrier"]): (
            r["checks"], r["valid_pct"], r["reachable_pct"], r["answered_pct"],
        )
        for r in _dicts(loaded, "SELECT * FROM mart.daily_outcome_rates")
    }  # fmt: skip
    d1, d2, d3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)
    pct = Decimal
    assert rows == {
        # A basic + A HLR (YES, UNKNOWN) + B HLR (YES, YES); C failed and is not counted
        (d1, "nxcloud", "CN", "China Telecom"): (3, pct("100.00"), pct("50.00"), None),
        (d1, "nxcloud", "MX", "Telcel"): (1, None, None, None),
        (d1, "nxcloud", "VN", "Viettel"): (2, None, None, None),  # "" is unknown: neither valid nor invalid
        (d2, "nxcloud", "CN", "China Telecom"): (1, None, None, pct("0.00")),  # call check: not answered
        (d2, "accuauth", None, None): (1, pct("100.00"), pct("100.00"), pct("100.00")),  # connected
        (d2, "accuauth", "MX", None): (1, pct("0.00"), pct("0.00"), pct("0.00")),  # empty number
        (d3, "nxcloud", "CN", "China Telecom"): (1, pct("0.00"), pct("0.00"), None),
    }


def test_voice_call_outcomes(loaded):
    rows = {
        (r["day"], r["record_kind"], r["hangup_cause"]): (
            r["hangup_code"], r["hangup_disposition"], r["outcome"], r["calls"], r["connected_calls"],
            r["total_duration_s"], r["avg_duration_s"],
        )
        for r in _dicts(loaded, "SELECT * FROM mart.voice_call_outcomes")
    }  # fmt: skip
    assert rows == {
        # 2020-12-01 00:00:00 vendor local time (Asia/Shanghai) is 2020-11-30 16:00 UTC
        (date(2020, 11, 30), "voice_receipt", "NORMAL_CLEARING"): (
            None, "send_bye", "Successful connection", 1, 1, 10, Decimal("10.0"),
        ),
        (date(2020, 11, 30), "voice_receipt", "NO_ANSWER"): (
            None, "send_cancel", "Unsuccessful connection", 1, 0, 0, Decimal("0.0"),
        ),
        # startAt 1671440452 = 2022-12-19 09:00:52 UTC; empty cause = normal call; hangup 0 = caller
        (date(2022, 12, 19), "pns_call", ""): (0, "caller", "1", 1, 1, 6, Decimal("6.0")),
        # legList shape: no duration and no callStatus given
        (date(2023, 11, 14), "pns_call", "NORMAL_CLEARING"): (16, "callee", None, 1, 1, 0, None),
    }  # fmt: skip


def test_every_mart_view_and_column_is_documented(loaded):
    undocumented = loaded.execute(
        """SELECT c.relname, a.attname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
           WHERE n.nspname = 'mart' AND (obj_description(c.oid, 'pg_class') IS NULL
                 OR col_description(c.oid, a.attnum) IS NULL)"""
    ).fetchall()
    assert undocumented == []


# The analyst role's tier (pseudonymised views only) and its documented queries are tested in
# tests/integration/test_privacy.py.
