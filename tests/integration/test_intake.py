"""Offline rejection and the freshness skip, against a real warehouse."""

from __future__ import annotations

import pytest

from phonecheck import loader
from phonecheck.intake import ACCUAUTH, NXCLOUD, RunContext, prepare_numbers, prepared_numbers

pytestmark = pytest.mark.integration


def _split(wh, result) -> tuple[list[str], list[str]]:
    """(to check, fresh) E.164 numbers of the run, in input order."""
    to_check = [n.e164 for n in prepared_numbers(wh, result.run_key)]
    fresh = [r[0] for r in wh.execute(
        "SELECT e164 FROM ops.run_number WHERE run_key = %s AND fresh ORDER BY position", (result.run_key,)
    )]  # fmt: skip
    return to_check, fresh


_RUN = RunContext(dag_id="d", run_id="r")


def test_rejected_numbers_are_recorded_once_per_run(wh):
    ctx = RunContext(dag_id="d", run_id="r1")
    for _ in range(2):  # a retried task records nothing twice
        result = prepare_numbers(
            wh, vendor=NXCLOUD, entries=["junk", "+525512345678", "12"], default_region="MX",
            freshness_days=30, check_level=1, ctx=ctx,
        )  # fmt: skip
    assert _split(wh, result) == (["+525512345678"], [])
    rows = wh.execute("SELECT raw_input, reason FROM ops.rejected_number ORDER BY raw_input").fetchall()
    assert [r[0] for r in rows] == ["12", "junk"]
    assert all(r[1] for r in rows)
    assert result.summary() == {
        "received": 3,
        "rejected_offline": 2,
        "duplicates": 0,
        "rewritten": 0,
        "skipped_fresh": 0,
        "to_check": 1,
    }


def test_the_rejected_count_is_what_the_table_says_for_the_run(wh, monkeypatch):
    """One row per distinct rejected input, with how many lines carried it, across blocks and
    retries: the run's count (logged, ops.run_intake) is sum(lines)."""
    monkeypatch.setattr("phonecheck.intake.BLOCK_SIZE", 4)  # the same bad inputs in several blocks
    ctx = RunContext(dag_id="d", run_id="counted")
    entries = ["junk", "12", "+525512345678", "junk"] * 5 + ["12"]
    for _ in range(2):  # a retried prepare counts from zero again
        result = prepare_numbers(
            wh,
            vendor=NXCLOUD,
            entries=entries,
            default_region="MX",
            freshness_days=30,
            check_level=1,
            ctx=ctx,
        )
    rows = wh.execute(
        "SELECT raw_input, lines FROM ops.rejected_number WHERE run_id = 'counted' ORDER BY raw_input"
    ).fetchall()
    assert rows == [("12", 6), ("junk", 10)]
    stored = wh.execute("SELECT rejected FROM ops.run_intake WHERE run_key = 'd/counted'").fetchone()[0]
    assert result.rejected == stored == 16


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
        wh, vendor=NXCLOUD, entries=numbers, default_region=None, freshness_days=30, check_level=1, ctx=_RUN
    )
    assert _split(wh, basic) == (["+12025550143"], ["+525512345678", "+8613800138000"])
    hlr = prepare_numbers(
        wh, vendor=NXCLOUD, entries=numbers, default_region=None, freshness_days=30, check_level=5, ctx=_RUN
    )
    assert _split(wh, hlr)[1] == []  # a basic check does not make an HLR check fresh
    never = prepare_numbers(
        wh, vendor=NXCLOUD, entries=numbers, default_region=None, freshness_days=0, check_level=1, ctx=_RUN
    )
    assert never.to_check == 3 and len(_split(wh, never)[0]) == 3


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
        wh, vendor=NXCLOUD, entries=["+525512345678"], default_region=None, freshness_days=30, check_level=1,
        ctx=_RUN,
    )  # fmt: skip
    assert (result.skipped_fresh, result.to_check) == ((1, 0) if fresh else (0, 1))


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
    result = prepare_numbers(
        wh, vendor=ACCUAUTH, entries=numbers, default_region="MX", freshness_days=30, ctx=_RUN
    )
    to_check, fresh = _split(wh, result)
    assert sorted(fresh) == ["+525511112222", "+525512345678", "+525533334444"]
    assert to_check == ["+525587654321"]


def test_odd_lines_are_rejected_and_kept_and_the_rest_goes_on(wh):
    """NUL, lone surrogates, undecodable bytes, escapes and letters: each a reason, none a crash."""
    odd = ["+52 55 1234\x005678", "+52 55 1234 5678\ud800", "+52 55 \udcff12345678", "+52 55 FAKE NUMB",
           "\x1b[2J+525512345670"]  # fmt: skip
    result = prepare_numbers(
        wh, vendor=NXCLOUD, entries=odd + ["+525512345678"], default_region="MX", freshness_days=0,
        check_level=1, ctx=RunContext(dag_id="d", run_id="odd"),
    )  # fmt: skip
    assert (result.received, result.rejected, result.to_check) == (6, 5, 1)
    rows = wh.execute("SELECT raw_input, reason FROM ops.rejected_number WHERE run_id = 'odd'").fetchall()
    reasons = {raw: why for raw, why in rows}
    assert len(reasons) == 5
    assert reasons["+52 55 1234\\x005678"] == "contains a control character (U+0000)"
    assert "lone surrogate" in reasons["+52 55 1234 5678\\ud800"]
    assert "not valid UTF-8" in reasons["+52 55 \\udcff12345678"]
    assert "contains letters" in reasons["+52 55 FAKE NUMB"]
    assert _split(wh, result)[0] == ["+525512345678"]


def test_a_retried_prepare_replaces_the_run_and_duplicates_across_blocks_count_once(wh, monkeypatch):
    from phonecheck import intake

    monkeypatch.setattr(intake, "BLOCK_SIZE", 3)  # duplicates across blocks, not only inside one
    entries = ["+525512345678", "+525512345679", "junk", "55 1234 5678", "+525512345670", "+525512345679"]
    ctx = RunContext(dag_id="d", run_id="retry")
    for _ in range(2):
        result = prepare_numbers(
            wh, vendor=NXCLOUD, entries=iter(entries), default_region="MX", freshness_days=0, check_level=1,
            ctx=ctx,
        )  # fmt: skip
    assert result.summary() == {"received": 6, "rejected_offline": 1, "duplicates": 2, "rewritten": 0, "skipped_fresh": 0,
                                "to_check": 3}  # fmt: skip
    assert _split(wh, result)[0] == ["+525512345678", "+525512345679", "+525512345670"]
    intake_row = wh.execute(
        "SELECT received, rejected, duplicates, to_check FROM ops.run_intake WHERE run_key = 'd/retry'"
    ).fetchall()
    assert intake_row == [(6, 1, 2, 3)]


@pytest.mark.parametrize("status", ["pending", "in_doubt", "submitted"])
def test_a_batch_in_doubt_is_in_flight_and_not_bought_again(wh, status):
    """A submit whose answer was lost may have been charged: its numbers are not bought by another run."""
    wh.execute(
        "INSERT INTO ops.number_check_submission (vendor, batch_no, check_level, phones, phone_count, status) "
        "VALUES ('nxcloud', 'lost', 1, ARRAY['8613800138000'], 1, %s)",
        (status,),
    )
    result = prepare_numbers(
        wh, vendor=NXCLOUD, entries=["+8613800138000"], default_region=None, freshness_days=30, check_level=1,
        ctx=RunContext(dag_id="d", run_id=f"doubt-{status}"),
    )  # fmt: skip
    to_check, fresh = _split(wh, result)
    assert fresh == ["+8613800138000"] and to_check == []
