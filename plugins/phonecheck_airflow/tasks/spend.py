"""Spend-ledger tasks of the on-demand DAGs (docs/operations.md).

* :func:`reserve_spend`: reserves the estimate in the spend ledger before any paid call (fails
  the task, saying by how much, when the month's budget would be exceeded).
* :func:`settle_nxcloud` / :func:`settle_accuauth`: replace the reservation by the charges.
* :func:`accuauth_unit_price`: the AccuAuth price a run states and settles at (the form's
  ``unit_price``, never below the configured contract price).

The approval that may come before them is :class:`phonecheck_airflow.operators.spend.SpendApprovalOperator`.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from phonecheck_airflow.conn_ids import ACCUAUTH_CONN_ID
from phonecheck_airflow.tasks.common import CONNS, ConnIds, connect, run_ids

log = logging.getLogger(__name__)

ACCUAUTH_PRICE_VARIABLE = "phonecheck_accuauth_unit_price"


def accuauth_unit_price(
    params: dict[str, Any], *, accuauth_conn_id: str = ACCUAUTH_CONN_ID
) -> tuple[Decimal, str]:
    """AccuAuth's API has no price: the run states its cost at the form's ``unit_price``. The
    deployment may configure its contract price (Airflow Variable ``phonecheck_accuauth_unit_price``,
    else the extra ``unit_price`` of ``accuauth_default``, with ``currency``): then a run may state a
    higher price, never a lower one, and must use that currency (docs/operations.md)."""
    from airflow.sdk import Variable

    from phonecheck.spend.approval import floored_price
    from phonecheck_airflow.tasks.settings import connection_extras

    extra = connection_extras(accuauth_conn_id)
    value, source = (
        Variable.get(ACCUAUTH_PRICE_VARIABLE, default=None),
        f"Airflow Variable {ACCUAUTH_PRICE_VARIABLE}",
    )
    if value is None and extra.get("unit_price") is not None:
        value, source = extra["unit_price"], f"extra unit_price of {accuauth_conn_id}"
    requested = params.get("unit_price")
    requested = None if requested is None else Decimal(str(requested))
    if value is None or not str(value).strip():
        return floored_price(None, "", requested)
    currency = str(extra.get("currency") or "USD").upper()
    if str(params.get("currency") or "USD").upper() != currency:
        raise AirflowFailException(
            f"the contract price ({source}) is in {currency}: the run's currency must be {currency}. Nothing spent."
        )
    return floored_price(Decimal(str(value).strip()), source, requested)


def reserve_spend(
    vendor: str, estimate: dict[str, Any], params: dict[str, Any], context: Any, *, conns: ConnIds = CONNS
) -> dict:
    """Reserve the estimate in the spend ledger before any paid call; over the month's budget
    the task fails here (nothing spent) saying by how much. A dry run reserves nothing."""
    from phonecheck.spend.approval import estimate_lines, totals
    from phonecheck.spend.ledger import BudgetRefused, reserve

    total = totals(estimate_lines(estimate or {}))
    if params.get("dry_run"):
        log.info("dry run: nothing reserved (estimate %s)", {c: str(a) for c, a in total.items()})
        return {"reserved": {}}
    dag_id, run_id = run_ids(context)
    detail = {"lines": (estimate or {}).get("lines"), "check_level": (estimate or {}).get("check_level")}
    with connect(conns.warehouse, autocommit=True) as conn:
        try:
            held = reserve(conn, vendor=vendor, dag_id=dag_id, run_id=run_id, estimate=total, detail=detail)
        except BudgetRefused as exc:
            raise AirflowFailException(str(exc)) from None
    for r in held:
        log.info("SUMMARY reserve: %s", r.describe())
    return {"reserved": {r.currency: str(r.estimated) for r in held}}


def _settle(vendor: str, context: Any, charges_of, conns: ConnIds) -> dict:
    """Replace the run's reservation by ``charges_of(conn, dag_id, run_id)`` in the ledger."""
    from phonecheck.spend.ledger import settle

    dag_id, run_id = run_ids(context)
    with connect(conns.warehouse, autocommit=True) as conn:
        charges = charges_of(conn, dag_id, run_id)
        settle(
            conn, vendor=vendor, dag_id=dag_id, run_id=run_id, charged=charges.charged,
            outstanding=charges.outstanding, detail=charges.detail,
        )  # fmt: skip
    log.info("SUMMARY settle: %s", charges.describe())
    return charges.as_dict()


def settle_nxcloud(context: Any, *, conns: ConnIds = CONNS) -> dict:
    """Settle an NXCLOUD run: charged = prices of its results, outstanding = the estimate of its
    submitted numbers still without a result."""
    from phonecheck.spend.settlement import nxcloud_run_charges

    return _settle("nxcloud", context, nxcloud_run_charges, conns)


def settle_accuauth(context: Any, *, conns: ConnIds = CONNS) -> dict:
    """Settle an AccuAuth run after its wait: checks the vendor accepted x the contract unit price;
    numbers whose submit outcome is still unknown (no callback settled them) stay held at the unit price."""
    from phonecheck.spend.settlement import accuauth_run_charges

    params = context["params"]
    unit_price, _ = accuauth_unit_price(params, accuauth_conn_id=conns.accuauth)
    currency = params.get("currency") or "USD"
    return _settle(
        "accuauth", context,
        lambda conn, dag_id, run_id: accuauth_run_charges(
            conn, dag_id, run_id, unit_price=unit_price, currency=currency
        ), conns,
    )  # fmt: skip
