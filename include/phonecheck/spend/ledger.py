"""The spend ledger: a monthly budget per vendor and currency that concurrent runs share.

A run *reserves* its estimate before any paid call and *settles* to the real charges afterwards
(``ops.spend_ledger``, one row per run, vendor and currency). A reservation takes a transaction
lock on (vendor, currency, month) (``pg_advisory_xact_lock``), reads what the month already holds
(reserved + settled amounts) and the budget, and either inserts its row or records a refusal and
raises :class:`BudgetRefused` saying by how much the budget would be exceeded. Two runs reserving
at once are therefore serialised: the second sees the first's reservation, so together they never
exceed the budget. Settling replaces the reserved estimate by what was charged plus the estimate
of numbers still without a result (they may still be charged), so the month's total converges
to the real spend without ever dropping below what may still be billed.

Budgets: ``ops.spend_budget`` (a row for the month wins over the standing row with month NULL);
no row means no limit. Amounts stay in their own currency; nothing is converted. See
docs/operations.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg

CENT = Decimal("0.0001")


class BudgetRefused(Exception):
    """The run's estimate does not fit in what is left of the month's budget."""

    def __init__(self, message: str, *, over_by: dict[str, Decimal]) -> None:
        super().__init__(message)
        self.over_by = over_by


@dataclass(frozen=True)
class Reservation:
    vendor: str
    currency: str
    month: date
    estimated: Decimal
    budget: Decimal | None
    committed_before: Decimal
    status: str

    @property
    def remaining_after(self) -> Decimal | None:
        if self.budget is None:
            return None
        return self.budget - self.committed_before - self.estimated

    def describe(self) -> str:
        if self.budget is None:
            return f"{self.estimated} {self.currency} reserved ({self.vendor}, no monthly budget set)"
        return (
            f"{self.estimated} {self.currency} reserved against the {self.vendor} budget of {self.budget} "
            f"{self.currency} for {self.month:%Y-%m} ({self.committed_before} already committed, "
            f"{self.remaining_after} left)"
        )


@dataclass(frozen=True)
class MonthPosition:
    vendor: str
    currency: str
    month: date
    budget: Decimal | None
    charged: Decimal
    outstanding: Decimal
    reserved: Decimal

    @property
    def committed(self) -> Decimal:
        return self.charged + self.outstanding + self.reserved

    @property
    def remaining(self) -> Decimal | None:
        return None if self.budget is None else self.budget - self.committed


def month_of(when: datetime | None = None) -> date:
    when = when or datetime.now(UTC)
    return when.astimezone(UTC).date().replace(day=1)


def _q(value: Decimal | float | int | str) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


_BUDGET_SQL = """
SELECT amount FROM ops.spend_budget
WHERE vendor = %(vendor)s AND currency = %(currency)s AND (month = %(month)s OR month IS NULL)
ORDER BY month NULLS LAST LIMIT 1
"""

_COMMITTED_SQL = """
SELECT COALESCE(sum(amount), 0) FROM ops.spend_ledger
WHERE vendor = %(vendor)s AND currency = %(currency)s AND month = %(month)s
  AND status IN ('reserved', 'settled') AND NOT (dag_id = %(dag_id)s AND run_id = %(run_id)s)
"""

_EXISTING_SQL = """
SELECT status, estimated, month, budget, committed_before FROM ops.spend_ledger
WHERE vendor = %(vendor)s AND currency = %(currency)s AND dag_id = %(dag_id)s AND run_id = %(run_id)s
FOR UPDATE
"""

_UPSERT_SQL = """
INSERT INTO ops.spend_ledger (vendor, currency, month, dag_id, run_id, status, estimated, amount, budget,
                              committed_before, message, detail)
VALUES (%(vendor)s, %(currency)s, %(month)s, %(dag_id)s, %(run_id)s, %(status)s, %(estimated)s, %(amount)s,
        %(budget)s, %(committed)s, %(message)s, %(detail)s)
ON CONFLICT (vendor, currency, dag_id, run_id) DO UPDATE SET
    status = EXCLUDED.status, estimated = EXCLUDED.estimated, amount = EXCLUDED.amount, month = EXCLUDED.month,
    budget = EXCLUDED.budget, committed_before = EXCLUDED.committed_before, message = EXCLUDED.message,
    detail = EXCLUDED.detail, reserved_at = now(), updated_at = now()
"""


def _lock(conn: psycopg.Connection, vendor: str, currency: str, month: date) -> None:
    """Serialise reservations of one vendor, currency and month until the transaction ends."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"spend|{vendor}|{currency}|{month:%Y-%m}",)
    )


def reserve(
    conn: psycopg.Connection,
    *,
    vendor: str,
    dag_id: str,
    run_id: str,
    estimate: Mapping[str, Decimal | float | str],
    detail: Mapping | None = None,
    when: datetime | None = None,
) -> list[Reservation]:
    """Reserve ``estimate`` (amount per currency) for this run, all currencies or none.

    Use an autocommit connection: the reservation (or the recorded refusal) is committed here.
    Idempotent per run: a retried task that already holds (or settled) its reservation gets it
    back without counting it twice. Raises :class:`BudgetRefused` (after recording the refusal)
    when any currency would exceed its monthly budget; nothing is reserved then.
    """
    month = month_of(when)
    wanted = {c: _q(a) for c, a in sorted(estimate.items()) if _q(a) > 0}
    payload = json.dumps(dict(detail or {}), default=str)
    out: list[Reservation] = []
    new: list[Reservation] = []
    refusals: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
    with conn.transaction():
        for currency in wanted:  # sorted: concurrent multi-currency runs lock in the same order
            _lock(conn, vendor, currency, month)
        for currency, amount in wanted.items():
            key = {"vendor": vendor, "currency": currency, "dag_id": dag_id, "run_id": run_id, "month": month}
            existing = conn.execute(_EXISTING_SQL, key).fetchone()
            if existing is not None and existing[0] in ("reserved", "settled"):
                status, estimated, held_month, budget, committed = existing
                out.append(
                    Reservation(
                        vendor, currency, held_month, Decimal(estimated),
                        None if budget is None else Decimal(budget), Decimal(committed or 0), status,
                    )
                )  # fmt: skip
                continue
            row = conn.execute(_BUDGET_SQL, key).fetchone()
            budget = None if row is None else Decimal(row[0])
            committed = Decimal(conn.execute(_COMMITTED_SQL, key).fetchone()[0])
            if budget is not None and committed + amount > budget:
                refusals[currency] = (amount, budget, committed)
            new.append(Reservation(vendor, currency, month, amount, budget, committed, "reserved"))
        out.extend(new)
        if not refusals:
            for r in new:
                conn.execute(
                    _UPSERT_SQL,
                    {
                        "vendor": vendor, "currency": r.currency, "month": r.month, "dag_id": dag_id,
                        "run_id": run_id, "status": "reserved", "estimated": r.estimated, "amount": r.estimated,
                        "budget": r.budget, "committed": r.committed_before, "message": r.describe(),
                        "detail": payload,
                    },
                )  # fmt: skip
            return out
    # refused: record why (outside the failed decision, in its own transaction), then raise
    over_by = {c: committed + amount - budget for c, (amount, budget, committed) in refusals.items()}
    message = "; ".join(
        f"the {vendor} budget for {month:%Y-%m} is {budget} {c}, {committed} {c} is already committed by other "
        f"runs, this run's estimate of {amount} {c} would exceed it by {over_by[c]} {c}"
        for c, (amount, budget, committed) in refusals.items()
    )
    with conn.transaction():
        for currency, (amount, budget, committed) in refusals.items():
            conn.execute(
                _UPSERT_SQL,
                {
                    "vendor": vendor, "currency": currency, "month": month, "dag_id": dag_id, "run_id": run_id,
                    "status": "refused", "estimated": amount, "amount": 0, "budget": budget, "committed": committed,
                    "message": message, "detail": payload,
                },
            )  # fmt: skip
    raise BudgetRefused(
        f"over the monthly budget: {message}. Nothing was submitted; wait for next month, raise the budget in "
        f"ops.spend_budget, or check fewer numbers",
        over_by=over_by,
    )


def settle(
    conn: psycopg.Connection,
    *,
    vendor: str,
    dag_id: str,
    run_id: str,
    charged: Mapping[str, Decimal | float | str],
    outstanding: Mapping[str, Decimal | float | str] | None = None,
    detail: Mapping | None = None,
) -> int:
    """Replace the run's reservation by ``charged`` + ``outstanding`` per currency.

    ``outstanding``: the estimate of numbers submitted but still without a result. A currency
    charged without a reservation (the vendor billed in another currency than estimated) gets a
    settled row of its own, so the month's spend is never under-stated. Returns rows written.
    Re-settling later (more results arrived) simply overwrites the amounts.
    """
    outstanding = outstanding or {}
    currencies = sorted(set(charged) | set(outstanding))
    payload = json.dumps(dict(detail or {}), default=str)
    written = 0
    with conn.transaction():
        held = {
            c: m
            for c, m in conn.execute(
                "SELECT currency, month FROM ops.spend_ledger WHERE vendor = %s AND dag_id = %s AND run_id = %s "
                "AND status IN ('reserved', 'settled')",
                (vendor, dag_id, run_id),
            )
        }
        for currency in sorted(set(currencies) | set(held)):
            c_amount = _q(charged.get(currency, 0))
            o_amount = _q(outstanding.get(currency, 0))
            month = held.get(currency, month_of())
            _lock(conn, vendor, currency, month)
            conn.execute(
                """
                INSERT INTO ops.spend_ledger (vendor, currency, month, dag_id, run_id, status, estimated, charged,
                                              outstanding, amount, message, detail, settled_at)
                VALUES (%(vendor)s, %(currency)s, %(month)s, %(dag_id)s, %(run_id)s, 'settled', 0, %(charged)s,
                        %(outstanding)s, %(amount)s, %(message)s, %(detail)s, now())
                ON CONFLICT (vendor, currency, dag_id, run_id) DO UPDATE SET
                    status = 'settled', charged = EXCLUDED.charged, outstanding = EXCLUDED.outstanding,
                    amount = EXCLUDED.amount, settled_at = now(), updated_at = now(),
                    detail = ops.spend_ledger.detail || jsonb_build_object('settlement', EXCLUDED.detail),
                    message = ops.spend_ledger.message || ' | ' || EXCLUDED.message
                """,
                {
                    "vendor": vendor, "currency": currency, "month": month, "dag_id": dag_id, "run_id": run_id,
                    "charged": c_amount, "outstanding": o_amount, "amount": c_amount + o_amount,
                    "message": f"settled: charged {c_amount} {currency}, {o_amount} {currency} still outstanding",
                    "detail": payload,
                },
            )  # fmt: skip
            written += 1
    return written


def release(conn: psycopg.Connection, *, vendor: str, dag_id: str, run_id: str, why: str) -> int:
    """The run spent nothing (rejected, failed before any paid call): free its reservation."""
    with conn.transaction():
        cur = conn.execute(
            "UPDATE ops.spend_ledger SET status = 'released', amount = 0, settled_at = now(), updated_at = now(), "
            "message = message || ' | released: ' || %s "
            "WHERE vendor = %s AND dag_id = %s AND run_id = %s AND status = 'reserved'",
            (why, vendor, dag_id, run_id),
        )
        return cur.rowcount


def month_position(
    conn: psycopg.Connection, vendor: str, currency: str, month: date | None = None
) -> MonthPosition:
    """The month's budget and what is charged, outstanding and reserved against it."""
    month = month or month_of()
    key = {"vendor": vendor, "currency": currency, "month": month}
    row = conn.execute(_BUDGET_SQL, key).fetchone()
    charged, outstanding, reserved = conn.execute(
        """
        SELECT COALESCE(sum(charged) FILTER (WHERE status = 'settled'), 0),
               COALESCE(sum(outstanding) FILTER (WHERE status = 'settled'), 0),
               COALESCE(sum(amount) FILTER (WHERE status = 'reserved'), 0)
        FROM ops.spend_ledger WHERE vendor = %(vendor)s AND currency = %(currency)s AND month = %(month)s
        """,
        key,
    ).fetchone()
    return MonthPosition(
        vendor, currency, month, None if row is None else Decimal(row[0]),
        Decimal(charged), Decimal(outstanding), Decimal(reserved),
    )  # fmt: skip


def set_budget(
    conn: psycopg.Connection,
    *,
    vendor: str,
    currency: str,
    amount: Decimal | float | str,
    month: date | None = None,
    note: str | None = None,
    updated_by: str | None = None,
) -> None:
    """Set (or replace) a monthly budget; ``month`` None = the standing budget of every month."""
    with conn.transaction():
        conn.execute(
            "DELETE FROM ops.spend_budget WHERE vendor = %s AND currency = %s AND month IS NOT DISTINCT FROM %s",
            (vendor, currency, month),
        )
        conn.execute(
            "INSERT INTO ops.spend_budget (vendor, currency, month, amount, note, updated_by) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (vendor, currency, month, _q(amount), note, updated_by),
        )
