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


def test_failed_checks_are_not_fresh(wh):
    loader.upsert(
        wh,
        "telco.nxcloud_number_check",
        [{"batch_no": "b1", "phone": "525512345678", "e164": "+525512345678", "code": 114, "check_level": 1,
          "source": "push"}],
    )  # fmt: skip
    result = prepare_numbers(
        wh, vendor=NXCLOUD, entries=["+525512345678"], default_region=None, freshness_days=30, check_level=1
    )
    assert len(result.to_check) == 1


def test_accuauth_freshness(wh):
    loader.upsert(
        wh,
        "telco.accuauth_phone_check",
        [
            {"task_id": "t1", "phone_number": "525512345678", "e164": "+525512345678", "status": "OK", "source": "poll"},
            {"task_id": "t2", "phone_number": "525587654321", "e164": "+525587654321", "status": "EXPIRED",
             "source": "expiry"},
        ],
    )  # fmt: skip
    result = prepare_numbers(
        wh,
        vendor=ACCUAUTH,
        entries=["+525512345678", "+525587654321"],
        default_region="MX",
        freshness_days=30,
    )
    assert [n.e164 for n in result.fresh] == ["+525512345678"]
    assert [n.e164 for n in result.to_check] == ["+525587654321"]
