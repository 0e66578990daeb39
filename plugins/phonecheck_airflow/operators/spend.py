"""Spend control in the on-demand DAGs: approval before spending, the monthly budget, settlement.

* :class:`SpendApprovalOperator`: an Airflow 3.3 ``ApprovalOperator`` that only waits for a person
  when the run's estimate is above the vendor's auto-approve threshold. The approval form's
  Markdown body shows the cost breakdown and the month's spend. Approve → the run goes on;
  reject or timeout → nothing is spent and the rest of the run is skipped. The decision and the
  user who took it are recorded in ``ops.spend_approval``.

The ledger tasks around it (reserve before spending, settle afterwards) are in
:mod:`phonecheck_airflow.tasks.spend`.

Configuration (docs/operations.md): threshold = the run's ``approval_threshold`` param, else the
Airflow Variable ``phonecheck_auto_approve_<vendor>``, else the vendor connection's extra
``auto_approve_up_to``, else :data:`DEFAULT_AUTO_APPROVE_UP_TO`; approvers = the Variable
``phonecheck_spend_approvers`` (comma-separated user ids), else env ``PHONECHECK_SPEND_APPROVERS``,
else any user allowed to edit the DAG's tasks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException

from phonecheck_airflow.conn_ids import ACCUAUTH_CONN_ID, NXCLOUD_CONN_ID
from phonecheck_airflow.warehouse import WAREHOUSE_CONN_ID

log = logging.getLogger(__name__)

DEFAULT_AUTO_APPROVE_UP_TO = Decimal("100")
DEFAULT_APPROVAL_TIMEOUT = timedelta(hours=24)
APPROVERS_VARIABLE = "phonecheck_spend_approvers"
APPROVERS_ENV = "PHONECHECK_SPEND_APPROVERS"
VENDOR_CONN_IDS = {"nxcloud": NXCLOUD_CONN_ID, "accuauth": ACCUAUTH_CONN_ID}
VENDOR_TITLES = {"nxcloud": "NXCLOUD number check", "accuauth": "AccuAuth phone status"}


def _decimal(value: Any) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise AirflowFailException(f"not a number: {value!r}") from None


def auto_approve_threshold(vendor: str, params: dict[str, Any]) -> tuple[Decimal | None, str]:
    """The threshold under which a run does not wait, and where it comes from."""
    from airflow.sdk import BaseHook, Variable

    if params.get("approval_threshold") is not None:
        return _decimal(params["approval_threshold"]), "the run's approval_threshold param"
    name = f"phonecheck_auto_approve_{vendor}"
    value = Variable.get(name, default=None)
    if value is not None:
        return _decimal(value), f"Airflow Variable {name}"
    try:
        extra = BaseHook.get_connection(VENDOR_CONN_IDS[vendor]).extra_dejson
    except Exception:  # noqa: BLE001 - a missing connection fails the paid call later, with its own message
        extra = {}
    if extra.get("auto_approve_up_to") is not None:
        return _decimal(extra["auto_approve_up_to"]), f"extra auto_approve_up_to of {VENDOR_CONN_IDS[vendor]}"
    return DEFAULT_AUTO_APPROVE_UP_TO, "default"


def spend_approvers() -> list[str]:
    """User ids allowed to approve spending (empty = anyone allowed to edit the DAG's tasks)."""
    from airflow.sdk import Variable

    value = Variable.get(APPROVERS_VARIABLE, default=None)
    if value is None:
        value = os.environ.get(APPROVERS_ENV, "")
    return [u.strip() for u in str(value).split(",") if u.strip()]


def _connect():
    from phonecheck.warehouse import connect
    from phonecheck_airflow.warehouse import warehouse_dsn

    return connect(warehouse_dsn(WAREHOUSE_CONN_ID), autocommit=True)


class SpendApprovalOperator(ApprovalOperator):
    """Wait for a person's approval in the Airflow UI when the estimate is above the threshold.

    :param vendor: ``nxcloud`` or ``accuauth`` (names the threshold Variable and connection).
    :param estimate: the estimate task's XCom (NXCLOUD ``CostEstimate.as_dict()`` or the AccuAuth
        budget statement); templated, so an ``XComArg`` works.
    :param prepared: the prepare task's XCom; only its ``summary`` counts are shown.
    :param currency_param: the DAG param holding the currency the threshold is in.
    """

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "estimate", "prepared")

    def __init__(
        self,
        *,
        vendor: str,
        estimate: Any,
        prepared: Any = None,
        currency_param: str = "budget_currency",
        warehouse_conn_id: str = WAREHOUSE_CONN_ID,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("subject", f"Approve spending: {VENDOR_TITLES.get(vendor, vendor)}")
        kwargs.setdefault("defaults", [ApprovalOperator.REJECT])  # no answer in time = reject
        kwargs.setdefault("response_timeout", DEFAULT_APPROVAL_TIMEOUT)
        kwargs.setdefault("ignore_downstream_trigger_rules", True)
        super().__init__(**kwargs)
        self.vendor = vendor
        self.estimate = estimate
        self.prepared = prepared
        self.currency_param = currency_param
        self.warehouse_conn_id = warehouse_conn_id

    def _position(self, currencies: Sequence[str]):
        from phonecheck.spend.ledger import month_position

        with _connect() as conn:
            return [month_position(conn, self.vendor, c) for c in sorted(currencies)]

    def execute(self, context: Any) -> Any:
        from phonecheck.spend.approval import approval_markdown, estimate_lines, needs_approval, totals

        params = context["params"]
        currency = params.get(self.currency_param) or "USD"
        lines = estimate_lines(self.estimate or {})
        total = totals(lines)
        threshold, source = auto_approve_threshold(self.vendor, params)
        wait, reason = needs_approval(total, threshold, currency)
        positions = self._position(set(total) | {currency})
        self._decision_facts = (total, threshold, currency, positions)
        if params.get("dry_run") or not wait:
            why = "dry run: nothing will be spent" if params.get("dry_run") else reason
            self.log.info("no approval needed: %s", why)
            self._record(context, "auto_approved", None, None)
            return {"chosen_options": [self.APPROVE], "auto_approved": True, "reason": why}
        earlier = self._earlier_decision(context)
        if earlier is not None:  # a retry after the person answered: never ask twice
            decision, who = earlier
            self.log.info("already %s by %s in an earlier try of this task", decision, who or "nobody")
            if decision == "approved":
                return {"chosen_options": [self.APPROVE], "earlier_decision": decision}
            self.skip(ti=context["ti"], tasks=[t for t in self._to_skip(context) if not t.is_teardown])
            return {"chosen_options": [self.REJECT], "earlier_decision": decision}
        minutes = params.get("approval_timeout_minutes")
        if minutes is not None:
            self.response_timeout = timedelta(minutes=float(minutes))
        hours = (self.response_timeout or DEFAULT_APPROVAL_TIMEOUT).total_seconds() / 3600
        summary = (self.prepared or {}).get("summary", {}) if isinstance(self.prepared, dict) else {}
        self.body = approval_markdown(
            title=f"{VENDOR_TITLES.get(self.vendor, self.vendor)}: run {context['run_id']}",
            lines=lines,
            summary=summary,
            positions=positions,
            threshold=threshold,
            threshold_currency=currency,
            threshold_source=source,
            reason=reason,
            timeout_text=f"within {hours:g} h",
        )
        approvers = spend_approvers()
        if approvers:
            self.assigned_users = [{"id": user, "name": user} for user in approvers]
        self.log.info(
            "waiting for approval (%s); approvers: %s", reason, ", ".join(approvers) or "any editor"
        )
        return super().execute(context)

    def _to_skip(self, context: Any):
        task = context["task"]
        if self.ignore_downstream_trigger_rules:
            return task.get_flat_relatives(upstream=False)
        return task.get_direct_relatives(upstream=False)

    def _earlier_decision(self, context: Any) -> tuple[str, str | None] | None:
        """A person's answer recorded by an earlier try of this task. Airflow 3.3 can fail a
        resumed task with a stale executor event (the deferral race, here after AWAITING_INPUT);
        its retry must not ask again, nor forget a rejection."""
        with _connect() as conn:
            row = conn.execute(
                "SELECT decision, decided_by_name FROM ops.spend_approval WHERE vendor = %s AND dag_id = %s "
                "AND run_id = %s AND decision IN ('approved', 'rejected', 'timed_out')",
                (self.vendor, context["dag"].dag_id, context["run_id"]),
            ).fetchone()
        return None if row is None else (row[0], row[1])

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        user = event.get("responded_by_user") or {}
        chosen = (event.get("chosen_options") or [None])[0]
        if chosen == self.APPROVE:
            decision = "approved"
        elif event.get("timedout") or not user:
            decision = "timed_out"
        else:
            decision = "rejected"
        self._record(context, decision, user.get("id"), user.get("name"))
        self.log.info("spend %s by %s", decision, user.get("name") or "nobody (timeout default)")
        return super().execute_complete(context, event)

    def _record(self, context: Any, decision: str, user_id: str | None, user_name: str | None) -> None:
        from phonecheck.spend.approval import estimate_lines, record_decision, totals

        facts = getattr(self, "_decision_facts", None)
        if facts is None:  # resumed in a new process: recompute what the decision was about
            params = context["params"]
            currency = params.get(self.currency_param) or "USD"
            total = totals(estimate_lines(self.estimate or {}))
            threshold, _ = auto_approve_threshold(self.vendor, params)
            facts = (total, threshold, currency, self._position(set(total) | {currency}))
        total, threshold, currency, positions = facts
        with _connect() as conn:
            record_decision(
                conn,
                vendor=self.vendor,
                dag_id=context["dag"].dag_id,
                run_id=context["run_id"],
                decision=decision,
                decided_by=user_id,
                decided_by_name=user_name,
                total=total,
                threshold=threshold,
                currency=currency,
                positions=positions,
            )
