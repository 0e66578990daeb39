"""The spend ledger on a real PostgreSQL: concurrent runs share one monthly budget.

Each "run" here is its own database session in its own thread; a barrier releases them at the
same moment so their reservations race for real.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest

from phonecheck.spend.ledger import (
    BudgetRefused,
    month_of,
    month_position,
    release,
    reserve,
    set_budget,
    settle,
)

pytestmark = pytest.mark.integration

VENDOR = "nxcloud"
DAG_ID = "nxcloud_number_check"
# a fixed clock for "this month": the last second of a month, so that no test depends on when it runs
WHEN = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
MONTH = month_of(WHEN)


def _race(dsn: str, estimates: dict[str, Decimal]) -> dict[str, str]:
    """Reserve every run's estimate at once, one session each; return run -> outcome."""
    barrier = threading.Barrier(len(estimates))
    outcome: dict[str, str] = {}

    def run(run_id: str, amount: Decimal) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            barrier.wait()
            try:
                reserve(
                    conn, vendor=VENDOR, dag_id=DAG_ID, run_id=run_id, estimate={"USD": amount}, when=WHEN
                )
                outcome[run_id] = "reserved"
            except BudgetRefused as exc:
                outcome[run_id] = f"refused: {exc}"

    threads = [threading.Thread(target=run, args=item) for item in estimates.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcome


def test_two_concurrent_runs_that_together_exceed_the_budget_exactly_one_reserves(wh, fresh_warehouse_dsn):
    set_budget(wh, vendor=VENDOR, currency="USD", amount="100")
    for attempt in range(20):
        runs = {f"race{attempt}-a": Decimal("60"), f"race{attempt}-b": Decimal("60")}
        outcome = _race(fresh_warehouse_dsn, runs)
        reserved = [r for r, o in outcome.items() if o == "reserved"]
        assert len(reserved) == 1, (attempt, outcome)
        (refused,) = [o for o in outcome.values() if o != "reserved"]
        assert "would exceed it by 20.0000 USD" in refused, refused
        position = month_position(wh, VENDOR, "USD", MONTH)
        assert position.committed == Decimal("60"), (attempt, position)
        # the winner spent nothing in the end: free the month for the next attempt
        assert release(wh, vendor=VENDOR, dag_id=DAG_ID, run_id=reserved[0], why="test") == 1
    rows = wh.execute("SELECT status, count(*) FROM ops.spend_ledger GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [("refused", 20), ("released", 20)]


def test_runs_that_fit_together_all_reserve(wh, fresh_warehouse_dsn):
    set_budget(wh, vendor=VENDOR, currency="USD", amount="100")
    outcome = _race(fresh_warehouse_dsn, {"a": Decimal("30"), "b": Decimal("30"), "c": Decimal("40")})
    assert set(outcome.values()) == {"reserved"}, outcome
    assert month_position(wh, VENDOR, "USD", MONTH).remaining == Decimal("0")


def test_settlement_replaces_the_reservation_with_the_charged_amount(wh):
    set_budget(wh, vendor=VENDOR, currency="USD", amount="100")
    reserve(wh, vendor=VENDOR, dag_id=DAG_ID, run_id="r1", estimate={"USD": "80"}, when=WHEN)
    # a second run of 30 does not fit while the first holds its estimate
    with pytest.raises(BudgetRefused, match="would exceed it by 10.0000 USD"):
        reserve(wh, vendor=VENDOR, dag_id=DAG_ID, run_id="r2", estimate={"USD": "30"}, when=WHEN)
    settle(wh, vendor=VENDOR, dag_id=DAG_ID, run_id="r1", charged={"USD": "12.5"}, outstanding={"USD": "2"})
    row = wh.execute(
        "SELECT status, estimated, charged, outstanding, amount FROM ops.spend_ledger WHERE run_id = 'r1'"
    ).fetchone()
    assert row == ("settled", Decimal("80"), Decimal("12.5"), Decimal("2"), Decimal("14.5"))
    # the freed estimate is available again: the refused run, retried, now fits
    (held,) = reserve(wh, vendor=VENDOR, dag_id=DAG_ID, run_id="r2", estimate={"USD": "30"}, when=WHEN)
    assert held.committed_before == Decimal("14.5")
    # settling again when the last results arrived: outstanding goes, charged is the final figure
    settle(wh, vendor=VENDOR, dag_id=DAG_ID, run_id="r1", charged={"USD": "13.1"})
    view = wh.execute(
        "SELECT budget, charged, outstanding, reserved, committed, remaining, runs, refused_runs "
        "FROM mart.monthly_spend_vs_budget WHERE vendor = 'nxcloud' AND currency = 'USD'"
    ).fetchone()
    assert view == (
        Decimal("100"), Decimal("13.1"), Decimal("0"), Decimal("30"), Decimal("43.1"), Decimal("56.9"), 2, 0,
    )  # fmt: skip


def test_a_retried_reservation_is_not_counted_twice(wh):
    set_budget(wh, vendor=VENDOR, currency="USD", amount="100")
    first = reserve(wh, vendor=VENDOR, dag_id=DAG_ID, run_id="r1", estimate={"USD": "70"}, when=WHEN)
    again = reserve(wh, vendor=VENDOR, dag_id=DAG_ID, run_id="r1", estimate={"USD": "70"}, when=WHEN)
    assert first[0].estimated == again[0].estimated == Decimal("70")
    assert month_position(wh, VENDOR, "USD", MONTH).reserved == Decimal("70")


def test_a_month_budget_overrides_the_standing_one_and_other_currencies_are_not_mixed(wh):
    set_budget(wh, vendor=VENDOR, currency="USD", amount="1000")
    set_budget(wh, vendor=VENDOR, currency="USD", amount="5", month=MONTH)
    with pytest.raises(BudgetRefused, match="budget for .* is 5.0000 USD"):
        reserve(
            wh, vendor=VENDOR, dag_id=DAG_ID, run_id="r1", estimate={"USD": "6", "VND": "90000"}, when=WHEN
        )
    # all or nothing: the VND part was not reserved either
    assert month_position(wh, VENDOR, "VND", MONTH).reserved == 0
    # no VND budget: VND alone is not limited
    reserve(wh, vendor=VENDOR, dag_id=DAG_ID, run_id="r2", estimate={"VND": "90000"}, when=WHEN)
    assert month_position(wh, VENDOR, "VND", MONTH).budget is None


def test_the_phone_checks_page_reads_its_figures_from_the_warehouse(wh, tmp_path):
    from phonecheck.spend.page import load_page_data, render_page

    set_budget(wh, vendor=VENDOR, currency="USD", amount="100")
    reserve(wh, vendor=VENDOR, dag_id=DAG_ID, run_id="r1", estimate={"USD": "30"}, when=WHEN)
    settle(wh, vendor=VENDOR, dag_id=DAG_ID, run_id="r1", charged={"USD": "12.25"})
    wh.execute(
        "INSERT INTO ops.number_check_submission (vendor, batch_no, phones, phone_count, status, dag_id, run_id, "
        "submitted_at) VALUES ('nxcloud', 'b-1', ARRAY['525512000001', '525512000002'], 2, 'submitted', %s, 'r2', "
        "now() - interval '3 hours')",
        (DAG_ID,),
    )
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "voice-1.jsonl").write_text("{}")
    assert "No query call: every result came from its push." in render_page(load_page_data(wh, now=WHEN))
    for page in (1, 2):  # two query pages read by run r2 (numbers whose push never came)
        wh.execute(
            "INSERT INTO raw.vendor_answer (vendor, api, request_ref, body, dag_id, run_id) "
            "VALUES ('nxcloud', 'number_check_query', %s, '{}', %s, 'r2')",
            (f"b-1|2026-12-01|page {page}", DAG_ID),
        )
    data = load_page_data(wh, tmp_path / "spool", now=WHEN)
    assert [(q["run_id"], q["pages"]) for q in data.query_pages] == [("r2", 2)]
    assert [(b["vendor"], b["committed"], b["budget"]) for b in data.budgets] == [
        ("nxcloud", Decimal("12.25"), Decimal("100"))
    ]
    assert [(w["run_id"], w["numbers"]) for w in data.waiting] == [("r2", 2)]
    assert data.spool_files == 1
    page = render_page(data)
    assert "12.25 USD</b> of 100.00 USD" in page and '<span id="pending-count">2</span>' in page
    assert "3 h 0 min" in page
