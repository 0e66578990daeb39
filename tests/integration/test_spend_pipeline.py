"""Spend control wired into ``nxcloud_number_check`` (``dag.test()``, sandbox over real HTTP).

Under the auto-approve threshold the run does not wait; it reserves its estimate in the spend
ledger, submits, and settles to the prices of its results. Over the month's budget it stops at
``reserve_budget`` before any paid call and says by how much. (Waiting for a person needs a
running api-server: tests/integration/test_spend_approval_airflow.py.)
"""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from phonecheck.spend.ledger import set_budget
from tests.integration.test_nxcloud_pipeline import FAST, mx, state_of, task_states

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG_ID = "nxcloud_number_check"


def conf(numbers: list[str], **extra) -> dict:
    return {"numbers": "\n".join(numbers), "default_region": "MX", "check_level": "basic",
            "batch_label": "sp", "budget": 100, **FAST, **extra}  # fmt: skip


def test_a_run_under_the_threshold_reserves_submits_and_settles_to_the_charged_prices(nxcloud_wired, run_dag):
    sandbox, receiver = nxcloud_wired
    numbers = ["+" + n for n in mx(30, start=8100)]
    run = run_dag(DAG_ID, conf=conf(numbers))
    assert state_of(run) == "success", task_states(run)
    states = task_states(run)
    assert states["approve_spend"] == states["reserve_budget"] == states["settle_spend"] == "success"
    with psycopg.connect(receiver.dsn) as db:
        ledger = db.execute(
            "SELECT status, currency, estimated, charged, outstanding, amount FROM ops.spend_ledger WHERE run_id = %s",
            (run.run_id,),
        ).fetchall()
        charged = db.execute(
            "SELECT sum(price) FROM telco.nxcloud_number_check t JOIN ops.number_check_submission s "
            "USING (batch_no) WHERE s.run_id = %s",
            (run.run_id,),
        ).fetchone()[0]
        approval = db.execute(
            "SELECT decision, decided_by, estimated FROM ops.spend_approval WHERE run_id = %s", (run.run_id,)
        ).fetchone()
    # 30 MX numbers at the test contract price 0.0040 = 0.12 USD estimated (every number counted)
    assert charged is not None and charged > 0
    assert ledger == [("settled", "USD", Decimal("0.1200"), charged, Decimal(0), charged)]
    assert approval == ("auto_approved", None, {"USD": "0.1200"})


def test_a_run_over_the_monthly_budget_stops_before_spending_and_says_by_how_much(
    nxcloud_wired, run_dag, caplog, capfd
):
    sandbox, receiver = nxcloud_wired
    with psycopg.connect(receiver.dsn, autocommit=True) as db:
        set_budget(db, vendor="nxcloud", currency="USD", amount="1.00")
        # other runs already hold most of this month and of the next: the run reserves in the
        # month its reserve step runs in, which may be the next one if 00:00 UTC on the 1st
        # falls during the test
        db.execute(
            "INSERT INTO ops.spend_ledger (vendor, currency, month, dag_id, run_id, status, estimated, amount) "
            "SELECT 'nxcloud', 'USD', (date_trunc('month', now() AT TIME ZONE 'UTC') + m * interval '1 month')::date, "
            "%s, 'other-' || m, 'reserved', 0.95, 0.95 FROM generate_series(0, 1) AS m",
            (DAG_ID,),
        )
    numbers = ["+" + n for n in mx(30, start=8200)]
    with caplog.at_level("INFO"):
        run = run_dag(DAG_ID, conf=conf(numbers))
    out, err = capfd.readouterr()
    states = task_states(run)
    assert state_of(run) == "failed"
    assert states["reserve_budget"] == "failed" and states["submit"] == "upstream_failed", states
    assert "would exceed it by 0.0700 USD" in caplog.text + out + err
    assert sandbox.control.calls(event="nxcloud.check") == []
    with psycopg.connect(receiver.dsn) as db:
        refused = db.execute(
            "SELECT status, amount, message FROM ops.spend_ledger WHERE run_id = %s", (run.run_id,)
        ).fetchone()
    assert refused[0] == "refused" and refused[1] == 0 and "exceed it by 0.0700 USD" in refused[2]
