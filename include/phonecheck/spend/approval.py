"""Approval before spending: when a run must wait for a person, what they are shown, and the record
of what was decided and by whom (``ops.spend_approval``). Plain Python; the Airflow operator that
waits in the UI is ``phonecheck_airflow.operators.spend.SpendApprovalOperator``. See
docs/operations.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from phonecheck.spend.ledger import MonthPosition

LEVEL_NAMES = {1: "basic", 4: "call", 5: "HLR"}
DECISIONS = ("awaiting", "auto_approved", "approved", "rejected", "timed_out")


@dataclass(frozen=True)
class Line:
    region_code: str
    check: str
    numbers: int
    price: Decimal
    currency: str
    source: str

    @property
    def amount(self) -> Decimal:
        return (self.price * self.numbers).quantize(Decimal("0.0001"))


def estimate_lines(estimate: Mapping[str, Any]) -> list[Line]:
    """The cost lines of an NXCLOUD estimate (``CostEstimate.as_dict()``) or an AccuAuth budget
    statement (``count`` x ``unit_price``)."""
    if "lines" in estimate:
        level = estimate.get("check_level")
        check = LEVEL_NAMES.get(level, f"level {level}")
        return [
            Line(
                line["region_code"], check, int(line["numbers"]), Decimal(str(line["price"])),
                line["currency"], line["source"],
            )
            for line in estimate["lines"]
        ]  # fmt: skip
    count = int(estimate.get("count") or 0)
    if not count:
        return []
    if estimate.get("unit_price") is not None:
        price = Decimal(str(estimate["unit_price"]))
    else:
        price = (Decimal(str(estimate.get("estimated_cost") or 0)) / count).quantize(Decimal("0.0001"))
    return [Line("MX", "phone status", count, price, estimate.get("currency") or "USD", "unit_price param")]


def totals(lines: Sequence[Line]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for line in lines:
        out[line.currency] = out.get(line.currency, Decimal(0)) + line.amount
    return out


def needs_approval(
    total: Mapping[str, Decimal], threshold: Decimal | None, threshold_currency: str
) -> tuple[bool, str]:
    """Whether a person must approve, and why in words. ``threshold`` None = never wait."""
    if threshold is None:
        return False, "no auto-approve threshold: approval not required"
    other = {c: a for c, a in total.items() if c != threshold_currency and a > 0}
    if other:
        shown = ", ".join(f"{a} {c}" for c, a in sorted(other.items()))
        return True, f"the estimate includes {shown}, not comparable with a threshold in {threshold_currency}"
    amount = total.get(threshold_currency, Decimal(0))
    if amount > threshold:
        return True, f"estimate {amount} {threshold_currency} is above the auto-approve threshold {threshold}"
    return False, f"estimate {amount} {threshold_currency} is within the auto-approve threshold {threshold}"


def tightened_threshold(
    configured: Decimal | None, configured_source: str, requested: Decimal | None
) -> tuple[Decimal | None, str]:
    """The threshold a run uses: the deployment's ``configured`` one, or the run's ``requested``
    one when that is stricter (lower). A form may tighten a control, never loosen it: a requester
    who may trigger must not be able to wave their own run through. ``configured`` None = the
    deployment never waits, so any requested threshold is stricter."""
    if requested is None:
        return configured, configured_source
    if configured is None or requested <= configured:
        return requested, f"the run's approval_threshold, stricter than {configured_source}"
    return configured, (
        f"{configured_source}; the run asked for {requested}, but a run may only lower the threshold"
    )


def floored_price(
    configured: Decimal | None, configured_source: str, requested: Decimal | None
) -> tuple[Decimal, str]:
    """The unit price a run states its cost at: the form's, but never below the deployment's
    configured contract price. A lower form price would shrink the estimate the approval threshold
    and the monthly budget judge: a form may only make the cost look higher."""
    if configured is None:
        return requested or Decimal(0), "the run's unit_price"
    if requested is None or requested < configured:
        note = "" if requested is None else f"; the run's unit_price {requested} is lower and was not used"
        return configured, f"{configured_source}{note}"
    return requested, f"the run's unit_price, not below {configured_source}"


def answer_refused(requested_by: str | None, answered_by: str | None, *, self_approval_allowed: bool) -> bool:
    """Four eyes: the person who triggered a run may not answer its approval, unless the deployment
    allows it. Compared by Airflow user name (the only name a run keeps of who triggered it);
    an answer without a person (the timeout default) or a run nobody triggered is never refused."""
    if self_approval_allowed or not requested_by or not answered_by:
        return False
    return requested_by == answered_by


def _money(amount: Decimal | None, currency: str) -> str:
    return "no limit" if amount is None else f"{amount:,.4f} {currency}"


def approval_markdown(
    *,
    title: str,
    lines: Sequence[Line],
    summary: Mapping[str, Any],
    positions: Sequence[MonthPosition],
    threshold: Decimal | None,
    threshold_currency: str,
    threshold_source: str,
    reason: str,
    timeout_text: str,
    requested_by: str | None = None,
    self_approval_allowed: bool = False,
) -> str:
    """The Markdown body of the approval form: cost breakdown, numbers skipped, the month's spend."""
    total = totals(lines)
    out = [f"### {title}", ""]
    out.append(
        f"**Estimated cost: {', '.join(_money(a, c) for c, a in sorted(total.items())) or '0'}** ({reason})."
    )
    out.append("")
    out.append("| country | check | numbers | unit price | price source | amount |")
    out.append("|---|---|---:|---:|---|---:|")
    for line in lines:
        out.append(
            f"| {line.region_code} | {line.check} | {line.numbers:,} | {line.price} {line.currency} | "
            f"{line.source} | {_money(line.amount, line.currency)} |"
        )
    out.append("")
    out.append(
        "The estimate counts every number as charged (failed checks are usually free): it is an upper bound. "
        "Price sources: *recent* = highest price charged in the last 30 days, *price_list* = "
        "`ops.nxcloud_price_list`, *default* = the conservative default price."
    )
    if summary:
        parts = [
            f"{summary.get('received', '?')} received",
            f"{summary.get('rejected_offline', 0)} rejected offline as invalid (never sent)",
            f"{summary.get('duplicates', 0)} duplicates",
            f"{summary.get('skipped_fresh', 0)} skipped as fresh or in flight (not bought again)",
        ]
        out += ["", "**Numbers:** " + ", ".join(parts) + "."]
    out += [
        "",
        "**This month:**",
        "",
        "| vendor | currency | charged | held by open runs | budget | left before this run |",
    ]
    out.append("|---|---|---:|---:|---:|---:|")
    for p in positions:
        out.append(
            f"| {p.vendor} | {p.currency} | {_money(p.charged + p.outstanding, p.currency)} | "
            f"{_money(p.reserved, p.currency)} | {_money(p.budget, p.currency)} | {_money(p.remaining, p.currency)} |"
        )
    out += [
        "",
        f"Auto-approve threshold: {_money(threshold, threshold_currency)} ({threshold_source}).",
        "",
        _requester_line(requested_by, self_approval_allowed),
        "",
        "**Approve**: the run reserves the estimate against the monthly budget and submits. "
        f"**Reject** (or no answer {timeout_text}): nothing is submitted and the rest of the run is skipped.",
    ]
    return "\n".join(out)


def _requester_line(requested_by: str | None, self_approval_allowed: bool) -> str:
    if not requested_by:
        return "**Requested by:** nobody in person (a scheduled or system run)."
    if self_approval_allowed:
        return (
            f"**Requested by:** {requested_by} (this deployment lets a requester answer their own approval)."
        )
    return f"**Requested by:** {requested_by}, who cannot answer this approval (four eyes): another approver must."


def record_decision(
    conn: psycopg.Connection,
    *,
    vendor: str,
    dag_id: str,
    run_id: str,
    decision: str,
    decided_by: str | None,
    decided_by_name: str | None,
    total: Mapping[str, Decimal],
    threshold: Decimal | None,
    currency: str,
    positions: Sequence[MonthPosition] = (),
    requested_at: datetime | None = None,
    requested_by: str | None = None,
    requested_via: str | None = None,
    self_approval_allowed: bool = False,
) -> None:
    """Record (or, for a retried task or a question answered, replace) the decision of one run.
    ``awaiting`` = asked, no answer yet; its ``requested_at`` is kept by the answer."""
    if decision not in DECISIONS:
        raise ValueError(f"unknown decision {decision!r}")
    month_spend = {p.currency: str(p.committed) for p in positions}
    conn.execute(
        """
        INSERT INTO ops.spend_approval (vendor, dag_id, run_id, decision, decided_by, decided_by_name, estimated,
                                        threshold, currency, month_spend, requested_at, requested_by,
                                        requested_via, self_approval_allowed)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (vendor, dag_id, run_id) DO UPDATE SET
            decision = EXCLUDED.decision, decided_by = EXCLUDED.decided_by,
            decided_by_name = EXCLUDED.decided_by_name, estimated = EXCLUDED.estimated,
            threshold = EXCLUDED.threshold, currency = EXCLUDED.currency, month_spend = EXCLUDED.month_spend,
            requested_at = COALESCE(EXCLUDED.requested_at, ops.spend_approval.requested_at),
            requested_by = COALESCE(EXCLUDED.requested_by, ops.spend_approval.requested_by),
            requested_via = COALESCE(EXCLUDED.requested_via, ops.spend_approval.requested_via),
            self_approval_allowed = EXCLUDED.self_approval_allowed, decided_at = now()
        """,
        (
            vendor, dag_id, run_id, decision, decided_by, decided_by_name,
            json.dumps({c: str(a) for c, a in total.items()}), threshold, currency, json.dumps(month_spend),
            requested_at, requested_by, requested_via, self_approval_allowed,
        ),
    )  # fmt: skip
