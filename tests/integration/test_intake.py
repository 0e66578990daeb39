"""Offline rejection and the freshness skip, against a real warehouse."""

from __future__ import annotations

import pytest

from phonecheck import loader
from phonecheck.intake import ACCUAUTH, NXCLOUD, RunContext, prepare_numbers

pytestmark = pytest.mark.integration


def test_rejected_numbers_are_recorded_once_per_run(wh):
    ctx = RunContext(dag_id="d", run_id="r1")
    for _ in range(2):  # a retried task records nothing twice
        result = prepare_numbers(
            wh, vendor=NXCLOUD, entries=["junk", "+525512345678", "12"], default_region="MX",
            freshness_days=30, check_level=1, ctx=ctx,
        )  # fmt: skip
    assert [n.e164 for n in result.to_check] == ["+525512345678"]
    rows = wh.execute("SELECT raw_input, reason FROM ops.rejected_number ORDER BY raw_input").fetchall()
    assert [r[0] for r in rows] == ["12", "junk"]
    assert all(r[1] for r in rows)
    assert result.summary() == {
        "received": 3,
        "rejected_offline": 2,
        "duplicates": 0,
        "skipped_fresh": 0,
        "to_check": 1,
    }


def test_fresh_results_and_checks_in_flight_are_skipped_per_level(wh):
    loader.upsert(
        wh,
        "telco.nxcloud_number_check",
        [{"batch_no": "b1", "phone": "525512345678", "e164": "+525512345678", "code": 0, "check_level": 1,
          "source": "query"}],
    )  # fmt: skip
    wh.execute(
        "INSERT INTO ops.number_check_submission (vendor, batch_no, check_level, phones, phone_count) "
        "VALUES ('nxcloud', 'b2', 1, ARRAY['8613800138000'], 1)"
    )
    numbers = ["+525512345678", "+8613800138000", "+12025550143"]
    basic = prepare_numbers(
        wh, vendor=NXCLOUD, entries=numbers, default_region=None, freshness_days=30, check_level=1
    )
    assert sorted(n.e164 for n in basic.fresh) == ["+525512345678", "+8613800138000"]
    assert [n.e164 for n in basic.to_check] == ["+12025550143"]
    hlr = prepare_numbers(
        wh, vendor=NXCLOUD, entries=numbers, default_region=None, freshness_days=30, check_level=5
    )
    assert hlr.fresh == []  # a basic check does not make an HLR check fresh
    never = prepare_numbers(
        wh, vendor=NXCLOUD, entries=numbers, default_region=None, freshness_days=0, check_level=1
    )
    assert len(never.to_check) == 3


@pytest.mark.parametrize(
    ("code", "fresh"), [(114, True), (120, True), (122, True), (103, False), (112, False)]
)
def test_definitive_failures_are_fresh_and_transient_ones_are_checked_again(wh, code, fresh):
    loader.upsert(
        wh,
        "telco.nxcloud_number_check",
        [{"batch_no": "b1", "phone": "525512345678", "e164": "+525512345678", "code": code, "check_level": 1,
          "source": "push"}],
    )  # fmt: skip
    result = prepare_numbers(
        wh, vendor=NXCLOUD, entries=["+525512345678"], default_region=None, freshness_days=30, check_level=1
    )
    assert (len(result.fresh), len(result.to_check)) == ((1, 0) if fresh else (0, 1))


def test_accuauth_freshness(wh):
    def row(task, phone, status, phone_status=None):
        return {"task_id": task, "phone_number": phone[1:], "e164": phone, "status": status,
                "phone_status": phone_status, "source": "poll"}  # fmt: skip

    loader.upsert(
        wh,
        "telco.accuauth_phone_check",
        [
            row("t1", "+525512345678", "OK", "busy"),
            row("t2", "+525587654321", "EXPIRED"),
            row("t3", "+525511112222", "OK", "temp_unavailable"),  # a paid "try later" answer: still fresh
            row("t4", "+525533334444", "PENDING"),  # in flight
        ],
    )
    numbers = ["+525512345678", "+525587654321", "+525511112222", "+525533334444"]
    result = prepare_numbers(wh, vendor=ACCUAUTH, entries=numbers, default_region="MX", freshness_days=30)
    assert sorted(n.e164 for n in result.fresh) == ["+525511112222", "+525512345678", "+525533334444"]
    assert [n.e164 for n in result.to_check] == ["+525587654321"]
