"""A form field may tighten a spend control, never loosen it (``accuauth_phone_check`` through
``dag.test()``, sandbox over real HTTP, real PostgreSQL).

AccuAuth's API has no price, so the run states its cost at the form's ``unit_price``: a requester
could enter 0 and every run would look free to the approval threshold and the monthly budget.
With a contract price configured (here the Airflow Variable ``phonecheck_accuauth_unit_price``),
the run states, reserves and settles at that price however low the form's is. (The threshold rule
is in tests/unit/test_spend.py and, through the REST API, tests/integration/test_fab_auth.py.)
"""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from tests.integration.test_accuauth_pipeline import accuauth_env, conf, mx_numbers, state_of, task_states

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["accuauth_env"]


def test_a_form_price_below_the_contract_price_is_not_used(accuauth_env, run_dag, monkeypatch, caplog):
    sandbox, dsn = accuauth_env
    monkeypatch.setenv("AIRFLOW_VAR_PHONECHECK_ACCUAUTH_UNIT_PRICE", "0.05")
    numbers = mx_numbers(4, start=4100, prefix="525513")  # answered at once (second-to-last digit 0)
    with caplog.at_level("INFO"):
        run = run_dag("accuauth_phone_check", conf=conf(numbers, unit_price=0, currency="USD"))
    assert state_of(run) == "success", task_states(run)
    assert "the run's unit_price 0 is lower and was not used" in caplog.text
    with psycopg.connect(dsn) as db:
        approval = db.execute(
            "SELECT decision, estimated FROM ops.spend_approval WHERE run_id = %s", (run.run_id,)
        ).fetchone()
        ledger = db.execute(
            "SELECT status, estimated, charged FROM ops.spend_ledger WHERE run_id = %s", (run.run_id,)
        ).fetchone()
    charged = len(sandbox.control.charges(vendor="accuauth"))  # a fresh sandbox per test
    assert charged == 4
    assert approval == ("auto_approved", {"USD": "0.2000"})  # 4 x 0.05, not 4 x 0
    assert ledger == ("settled", Decimal("0.2000"), Decimal("0.05") * charged)
