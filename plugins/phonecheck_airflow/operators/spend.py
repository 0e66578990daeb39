"""Spend control in the on-demand DAGs: approval before spending, the monthly budget, settlement.

* :class:`SpendApprovalOperator`: an Airflow 3.3 ``ApprovalOperator`` that only waits for a person
  when the run's estimate is above the vendor's auto-approve threshold. The approval form's
  Markdown body shows the cost breakdown and the month's spend. Approve → the run goes on;
  reject or timeout → nothing is spent and the rest of the run is skipped. Who asked (triggered
  the run), the decision and who took it are recorded in ``ops.spend_approval``. Four eyes: the
  person who triggered a run cannot answer its approval unless the deployment allows it. A retry
  of the task never asks twice: it acts on the answer already given (``ops.spend_approval``) or
  waits on the question an earlier try asked, whose answer Airflow keeps on the task instance.

The ledger tasks around it (reserve before spending, settle afterwards) are in
:mod:`phonecheck_airflow.tasks.spend`.

Configuration (docs/operations.md): threshold = the Airflow Variable
``phonecheck_auto_approve_<vendor>``, else the vendor connection's extra ``auto_approve_up_to``,
else :data:`DEFAULT_AUTO_APPROVE_UP_TO`; the run's ``approval_threshold`` param may lower it, never
raise it. Approvers = the Variable ``phonecheck_spend_approvers`` (comma-separated user ids, each
optionally ``id:name``), else env ``PHONECHECK_SPEND_APPROVERS``, else any user allowed to answer
the DAG's approvals (FAB: the Approver role). Self-approval = the Variable
``phonecheck_allow_self_approval`` (``true``), else env ``PHONECHECK_ALLOW_SELF_APPROVAL``; off by
default.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException, TaskAwaitingInput

from phonecheck_airflow.conn_ids import ACCUAUTH_CONN_ID, NXCLOUD_CONN_ID
from phonecheck_airflow.warehouse import WAREHOUSE_CONN_ID

log = logging.getLogger(__name__)

DEFAULT_AUTO_APPROVE_UP_TO = Decimal("100")
DEFAULT_APPROVAL_TIMEOUT = timedelta(hours=24)
APPROVERS_VARIABLE = "phonecheck_spend_approvers"
APPROVERS_ENV = "PHONECHECK_SPEND_APPROVERS"
SELF_APPROVAL_VARIABLE = "phonecheck_allow_self_approval"
SELF_APPROVAL_ENV = "PHONECHECK_ALLOW_SELF_APPROVAL"
VENDOR_CONN_IDS = {"nxcloud": NXCLOUD_CONN_ID, "accuauth": ACCUAUTH_CONN_ID}
VENDOR_TITLES = {"nxcloud": "NXCLOUD number check", "accuauth": "AccuAuth phone status"}


def _decimal(value: Any) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise AirflowFailException(f"not a number: {value!r}") from None


def configured_threshold(vendor: str) -> tuple[Decimal | None, str]:
    """The deployment's auto-approve threshold for ``vendor`` and where it comes from."""
    from airflow.sdk import Variable

    from phonecheck_airflow.tasks.settings import connection_extras

    name = f"phonecheck_auto_approve_{vendor}"
    value = Variable.get(name, default=None)
    if value is not None:
        return _decimal(value), f"Airflow Variable {name}"
    extra = connection_extras(VENDOR_CONN_IDS[vendor])
    if extra.get("auto_approve_up_to") is not None:
        return _decimal(extra["auto_approve_up_to"]), f"extra auto_approve_up_to of {VENDOR_CONN_IDS[vendor]}"
    return DEFAULT_AUTO_APPROVE_UP_TO, "default"


def auto_approve_threshold(vendor: str, params: dict[str, Any]) -> tuple[Decimal | None, str]:
    """The threshold under which a run does not wait, and where it comes from: the configured one,
    or the run's ``approval_threshold`` when that is lower (a form only tightens)."""
    from phonecheck.spend.approval import tightened_threshold

    configured, source = configured_threshold(vendor)
    return tightened_threshold(configured, source, _decimal(params.get("approval_threshold")))


def spend_approvers() -> list[dict[str, str]]:
    """Users allowed to approve spending as HITL users ``{"id", "name"}`` (empty = anyone allowed
    to answer the DAG's approvals). An entry is a user id, or ``id:name`` where the name differs
    (FAB ids are numbers; the name is what four eyes compares with who triggered the run)."""
    from airflow.sdk import Variable

    value = Variable.get(APPROVERS_VARIABLE, default=None)
    if value is None:
        value = os.environ.get(APPROVERS_ENV, "")
    users = []
    for entry in (e.strip() for e in str(value).split(",")):
        if entry:
            user_id, _, name = entry.partition(":")
            users.append({"id": user_id.strip(), "name": name.strip() or user_id.strip()})
    return users


def self_approval_allowed() -> bool:
    """Whether the deployment lets the person who triggered a run answer its approval (default no)."""
    from airflow.sdk import Variable

    value = Variable.get(SELF_APPROVAL_VARIABLE, default=None)
    if value is None:
        value = os.environ.get(SELF_APPROVAL_ENV, "")
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _requester(context: Any) -> tuple[str | None, str | None]:
    """Who triggered the run (Airflow keeps the user name only) and its run type."""
    dag_run = context.get("dag_run")
    run_type = getattr(dag_run, "run_type", None)
    return getattr(dag_run, "triggering_user_name", None), getattr(run_type, "value", run_type)


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

    def _connect(self):
        from phonecheck_airflow.tasks.common import connect

        return connect(self.warehouse_conn_id, autocommit=True)

    def _position(self, currencies: Sequence[str]):
        from phonecheck.spend.ledger import month_position

        with self._connect() as conn:
            return [month_position(conn, self.vendor, c) for c in sorted(currencies)]

    def _timeout(self, params: dict[str, Any]) -> timedelta:
        """The approval's timeout: the vendor connection's extra ``approval_timeout_minutes`` (the
        old param of that name in a run's conf still replaces it for one release)."""
        from phonecheck_airflow.tasks.settings import run_settings

        minutes = run_settings(self.vendor, params, VENDOR_CONN_IDS[self.vendor])["approval_timeout_minutes"]
        return timedelta(minutes=float(minutes)) if minutes else DEFAULT_APPROVAL_TIMEOUT

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
        if earlier is not None and earlier[0] != "awaiting":  # a retry after the answer: never ask twice
            decision, who, _ = earlier
            self.log.info("already %s by %s in an earlier try of this task", decision, who or "nobody")
            if decision == "approved":
                return {"chosen_options": [self.APPROVE], "earlier_decision": decision}
            self.skip(ti=context["ti"], tasks=[t for t in self._to_skip(context) if not t.is_teardown])
            return {"chosen_options": [self.REJECT], "earlier_decision": decision}
        self.response_timeout = self._timeout(params)
        if earlier is not None:
            # An earlier try asked and was failed before it acted on the answer (Airflow 3.3's
            # deferral race can fail a task resumed from AWAITING_INPUT). The question and any
            # answer stay on this task instance's HITL detail; asking again would erase that answer
            # (a new request clears the response), and parking again would be resumed at once and
            # meet the same race. The triggerer reads that question's answer a little later.
            from phonecheck_airflow.triggers.hitl import EarlierQuestionTrigger

            asked_at = earlier[2] or datetime.now(UTC)
            self.log.info(
                "an earlier try asked at %s: waiting for that question's answer, not asking again", asked_at
            )
            self.defer(
                trigger=EarlierQuestionTrigger(
                    ti_id=context["task_instance"].id, options=self.options, params=self.serialized_params,
                    defaults=self.defaults, multiple=self.multiple,
                    timeout_datetime=asked_at + self.response_timeout,
                ),
                method_name="execute_complete",
            )  # fmt: skip
        requested_by, _ = _requester(context)
        allowed = self_approval_allowed()
        hours = self.response_timeout.total_seconds() / 3600
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
            requested_by=requested_by,
            self_approval_allowed=allowed,
        )
        approvers = spend_approvers()
        if approvers and not allowed and requested_by:
            approvers = [u for u in approvers if requested_by not in (u["id"], u["name"])]
            if not approvers:
                raise AirflowFailException(
                    f"{requested_by} triggered this run and is its only approver: four eyes needs another "
                    f"approver in {APPROVERS_VARIABLE} (or {SELF_APPROVAL_VARIABLE}=true). Nothing was spent."
                )
        if approvers:
            self.assigned_users = approvers
        self.log.info(
            "waiting for approval (%s); requested by %s; approvers: %s",
            reason, requested_by or "nobody in person", ", ".join(u["name"] for u in approvers) or "any approver",
        )  # fmt: skip
        try:
            return super().execute(context)
        except TaskAwaitingInput:  # the question is written: a retry waits on it instead of asking again
            self._record(context, "awaiting", None, None, requested_at=datetime.now(UTC))
            raise

    def _to_skip(self, context: Any):
        task = context["task"]
        if self.ignore_downstream_trigger_rules:
            return task.get_flat_relatives(upstream=False)
        return task.get_direct_relatives(upstream=False)

    def _earlier_decision(self, context: Any) -> tuple[str, str | None, datetime | None] | None:
        """What an earlier try of this task recorded for the run: a person's answer (acted on, never
        asked again, a rejection not forgotten) or ``awaiting`` (asked, answer not acted on yet)."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT decision, decided_by_name, requested_at FROM ops.spend_approval WHERE vendor = %s "
                "AND dag_id = %s AND run_id = %s AND decision IN ('awaiting', 'approved', 'rejected', 'timed_out')",
                (self.vendor, context["dag"].dag_id, context["run_id"]),
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from phonecheck.spend.approval import answer_refused

        user = event.get("responded_by_user") or {}
        requested_by, _ = _requester(context)
        if answer_refused(requested_by, user.get("name"), self_approval_allowed=self_approval_allowed()):
            self._ask_again(context, user)
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

    def _ask_again(self, context: Any, user: dict[str, Any]) -> None:
        """Four eyes where Airflow could not refuse the answer itself (no approver list: any user
        allowed to answer may): the requester's own answer is not taken; the same question is
        opened again (Airflow clears the answer when the request is written again) for another
        approver, within what is left of the original timeout."""
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail

        self.log.warning(
            "answer by %s refused: they triggered this run and cannot answer its approval (four eyes); "
            "waiting for another approver", user.get("name"),
        )  # fmt: skip
        earlier = self._earlier_decision(context)
        asked_at = (earlier[2] if earlier else None) or datetime.now(UTC)
        left = max(asked_at + self._timeout(context["params"]) - datetime.now(UTC), timedelta(0))
        upsert_hitl_detail(
            ti_id=context["task_instance"].id, options=self.options, subject=self.subject, body=self.body,
            defaults=self.defaults, multiple=self.multiple, params=self.serialized_params,
            assigned_users=self.assigned_users,
        )  # fmt: skip
        raise TaskAwaitingInput(method_name="execute_complete", timeout=left)

    def _record(
        self,
        context: Any,
        decision: str,
        user_id: str | None,
        user_name: str | None,
        requested_at: datetime | None = None,
    ) -> None:
        from phonecheck.spend.approval import estimate_lines, record_decision, totals

        facts = getattr(self, "_decision_facts", None)
        if facts is None:  # resumed in a new process: recompute what the decision was about
            params = context["params"]
            currency = params.get(self.currency_param) or "USD"
            total = totals(estimate_lines(self.estimate or {}))
            threshold, _ = auto_approve_threshold(self.vendor, params)
            facts = (total, threshold, currency, self._position(set(total) | {currency}))
        total, threshold, currency, positions = facts
        requested_by, requested_via = _requester(context)
        with self._connect() as conn:
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
                requested_at=requested_at,
                requested_by=requested_by,
                requested_via=requested_via,
                self_approval_allowed=self_approval_allowed(),
            )
