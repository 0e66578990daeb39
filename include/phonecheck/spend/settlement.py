"""What a run was charged, from the warehouse's own records, for settling the spend ledger.

NXCLOUD: the prices on the run's result rows (``telco.nxcloud_number_check``), per currency; the
numbers of its accepted or in-doubt batches that have no result yet stay held at the batch's
estimated unit price (they may still be charged). Batches the vendor refused cost nothing.

AccuAuth: its answers carry no price, so a run is charged its accepted checks
(``ops.number_check_submission`` rows of the run) x the contract unit price; numbers whose submit
outcome is unknown (claim still ``sending``) stay held at the unit price.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import psycopg


@dataclass
class RunCharges:
    charged: dict[str, Decimal] = field(default_factory=dict)
    outstanding: dict[str, Decimal] = field(default_factory=dict)
    detail: dict = field(default_factory=dict)

    def add(self, bucket: dict[str, Decimal], currency: str | None, amount) -> None:
        if currency is None or amount is None:
            return
        bucket[currency] = bucket.get(currency, Decimal(0)) + Decimal(amount)

    def describe(self) -> str:
        def fmt(d: dict[str, Decimal]) -> str:
            return ", ".join(f"{a} {c}" for c, a in sorted(d.items())) or "0"

        return f"charged {fmt(self.charged)}; still outstanding {fmt(self.outstanding)}; {self.detail}"

    def as_dict(self) -> dict:
        return {
            "charged": {c: str(a) for c, a in self.charged.items()},
            "outstanding": {c: str(a) for c, a in self.outstanding.items()},
            **self.detail,
        }


def nxcloud_run_charges(conn: psycopg.Connection, dag_id: str, run_id: str) -> RunCharges:
    out = RunCharges()
    batches = conn.execute(
        """
        SELECT s.batch_no, s.status, s.phone_count, s.estimated_cost, s.currency,
               count(t.phone) AS results
        FROM ops.number_check_submission s
        LEFT JOIN telco.nxcloud_number_check t ON t.batch_no = s.batch_no
        WHERE s.vendor = 'nxcloud' AND s.dag_id = %s AND s.run_id = %s
        GROUP BY s.submission_id
        """,
        (dag_id, run_id),
    ).fetchall()
    for currency, amount in conn.execute(
        """
        SELECT t.currency, sum(t.price) FROM telco.nxcloud_number_check t
        JOIN ops.number_check_submission s ON s.vendor = 'nxcloud' AND s.batch_no = t.batch_no
        WHERE s.dag_id = %s AND s.run_id = %s AND t.price IS NOT NULL
        GROUP BY t.currency
        """,
        (dag_id, run_id),
    ):
        out.add(out.charged, currency, amount)
    counts = {"batches": len(batches), "refused_batches": 0, "numbers_without_result": 0, "results": 0}
    for _batch_no, status, phones, estimated, currency, results in batches:
        counts["results"] += results
        if status == "failed":
            counts["refused_batches"] += 1
            continue
        missing = max(phones - results, 0)
        if missing and estimated is not None and phones:
            counts["numbers_without_result"] += missing
            out.add(
                out.outstanding, currency, (Decimal(estimated) / phones * missing).quantize(Decimal("0.0001"))
            )
    out.detail = counts
    return out


def accuauth_run_charges(
    conn: psycopg.Connection, dag_id: str, run_id: str, *, unit_price: Decimal, currency: str
) -> RunCharges:
    out = RunCharges()
    accepted = conn.execute(
        "SELECT count(*) FROM ops.number_check_submission WHERE vendor = 'accuauth' AND dag_id = %s AND run_id = %s "
        "AND status <> 'failed'",
        (dag_id, run_id),
    ).fetchone()[0]
    in_doubt = conn.execute(
        "SELECT count(*) FROM ops.accuauth_submit_claim WHERE run_key = %s AND state = 'sending'",
        (f"{dag_id}/{run_id}",),
    ).fetchone()[0]
    out.add(out.charged, currency, unit_price * accepted)
    if in_doubt:
        out.add(out.outstanding, currency, unit_price * in_doubt)
    out.detail = {"accepted_checks": accepted, "in_doubt": in_doubt, "unit_price": str(unit_price)}
    return out
