"""Spend-ledger tasks of the on-demand DAGs (docs/operations.md).

* :func:`reserve_spend`: reserves the estimate in the spend ledger before any paid call (fails
  the task, saying by how much, when the month's budget would be exceeded).
* :func:`settle_nxcloud` / :func:`settle_accuauth`: replace the reservation by the charges.

The approval that may come before them is :class:`phonecheck_airflow.operators.spend.SpendApprovalOperator`.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from phonecheck_airflow.warehouse import WAREHOUSE_CONN_ID

log = logging.getLogger(__name__)


def _connect():
    from phonecheck.warehouse import connect
    from phonecheck_airflow.warehouse import warehouse_dsn

    return connect(warehouse_dsn(WAREHOUSE_CONN_ID), autocommit=True)


def reserve_spend(vendor: str, estimate: dict[str, Any], params: dict[str, Any], context: Any) -> dict:
    """Reserve the estimate in the spend ledger before any paid call; over the month's budget
    the task fails here (nothing spent) saying by how much. A dry run reserves nothing."""
    from phonecheck.spend.approval import estimate_lines, totals
    from phonecheck.spend.ledger import BudgetRefused, reserve

    total = totals(estimate_lines(estimate or {}))
    if params.get("dry_run"):
        log.info("dry run: nothing reserved (estimate %s)", {c: str(a) for c, a in total.items()})
        return {"reserved": {}}
    dag_id, run_id = context["dag"].dag_id, context["run_id"]
    detail = {"lines": (estimate or {}).get("lines"), "check_level": (estimate or {}).get("check_level")}
    with _connect() as conn:
        try:
            held = reserve(conn, vendor=vendor, dag_id=dag_id, run_id=run_id, estimate=total, detail=detail)
        except BudgetRefused as exc:
            raise AirflowFailException(str(exc)) from None
    for r in held:
        log.info("SUMMARY reserve: %s", r.describe())
    return {"reserved": {r.currency: str(r.estimated) for r in held}}


def _settle(vendor: str, context: Any, charges_of) -> dict:
    """Replace the run's reservation by ``charges_of(conn, dag_id, run_id)`` in the ledger."""
    from phonecheck.spend.ledger import settle

    dag_id, run_id = context["dag"].dag_id, context["run_id"]
    with _connect() as conn:
        charges = charges_of(conn, dag_id, run_id)
        settle(
            conn, vendor=vendor, dag_id=dag_id, run_id=run_id, charged=charges.charged,
            outstanding=charges.outstanding, detail=charges.detail,
        )  # fmt: skip
    log.info("SUMMARY settle: %s", charges.describe())
    return charges.as_dict()


def settle_nxcloud(context: Any) -> dict:
    """Settle an NXCLOUD run: charged = prices of its results, outstanding = the estimate of its
    submitted numbers still without a result."""
    from phonecheck.spend.settlement import nxcloud_run_charges

    return _settle("nxcloud", context, nxcloud_run_charges)


def settle_accuauth(context: Any) -> dict:
    """Settle an AccuAuth run: checks the vendor accepted x the contract unit price; numbers whose
    submit outcome is unknown stay held at the unit price."""
    from phonecheck.spend.settlement import accuauth_run_charges

    params = context["params"]
    unit_price = Decimal(str(params.get("unit_price") or 0))
    currency = params.get("currency") or "USD"
    return _settle(
        "accuauth", context,
        lambda conn, dag_id, run_id: accuauth_run_charges(
            conn, dag_id, run_id, unit_price=unit_price, currency=currency
        ),
    )  # fmt: skip
