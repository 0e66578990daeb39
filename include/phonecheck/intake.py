"""The free steps before any paid check, shared by the NXCLOUD and AccuAuth pipelines.

1. Normalise every input offline (:mod:`phonecheck.numbers`); numbers that cannot be valid are
   recorded in ``ops.rejected_number`` with their reason and never sent.
2. Skip numbers already checked recently: a result within the freshness window, or a check
   still in flight (submitted, no result yet), is not bought again. A failure is a result too
   (an invalid or non-mobile number stays so), except NXCLOUD failures on the vendor's side
   (:data:`~phonecheck.enums.NXCLOUD_TRANSIENT_RECEIPT_CODES`; failure pushes carry no cost):
   those are checked again. AccuAuth's ``line_abnormal`` / ``temp_unavailable`` are paid
   answers that say "try later": they stay fresh for the window like any other answer (a user
   who wants them re-checked now runs with ``freshness_days = 0``).

Idempotent per run: recording the same rejected input twice for one run stores it once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import psycopg

from phonecheck.enums import NXCLOUD_TRANSIENT_RECEIPT_CODES
from phonecheck.numbers import Normalised, Rejected, normalise_many

NXCLOUD = "nxcloud"
ACCUAUTH = "accuauth"


@dataclass
class IntakeResult:
    to_check: list[Normalised]
    rejected: list[Rejected]
    fresh: list[Normalised]  # skipped: checked (or in flight) inside the freshness window
    duplicates: int
    received: int = 0

    def summary(self) -> dict[str, int]:
        return {
            "received": self.received,
            "rejected_offline": len(self.rejected),
            "duplicates": self.duplicates,
            "skipped_fresh": len(self.fresh),
            "to_check": len(self.to_check),
        }

    def by_region(self) -> dict[str, list[Normalised]]:
        out: dict[str, list[Normalised]] = {}
        for number in self.to_check:
            out.setdefault(number.region_code, []).append(number)
        return out


@dataclass(frozen=True)
class RunContext:
    dag_id: str | None = None
    run_id: str | None = None
    extra: dict = field(default_factory=dict)


def record_rejected(
    conn: psycopg.Connection,
    vendor: str,
    rejected: Sequence[Rejected],
    default_region: str | None,
    ctx: RunContext,
) -> None:
    if not rejected:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO ops.rejected_number (vendor, raw_input, default_region, reason, dag_id, run_id)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (vendor, run_id, raw_input) DO NOTHING""",
            [(vendor, r.raw, default_region, r.reason, ctx.dag_id, ctx.run_id) for r in rejected],
        )


_FRESH_NXCLOUD = """
SELECT DISTINCT e164 FROM (
    -- results we hold at that level (pushes carry no checkLevel: take it from our submission)
    SELECT t.e164
    FROM telco.nxcloud_number_check t
    LEFT JOIN ops.number_check_submission s ON s.vendor = 'nxcloud' AND s.batch_no = t.batch_no
    WHERE t.e164 = ANY(%(numbers)s)
      AND COALESCE(t.check_level, s.check_level) = %(level)s
      AND NOT (COALESCE(t.code, 0) = ANY(%(transient)s))
      AND COALESCE(t.pushed_at, t.queried_at, t.updated_at) > now() - make_interval(days => %(days)s)
    UNION ALL
    -- checks in flight: submitted, no result yet
    SELECT '+' || p.phone
    FROM ops.number_check_submission s, unnest(s.phones) AS p(phone)
    WHERE s.vendor = 'nxcloud' AND s.check_level = %(level)s AND s.status IN ('submitted', 'pending')
      AND s.submitted_at > now() - make_interval(days => %(days)s)
      AND '+' || p.phone = ANY(%(numbers)s)
) fresh
"""

_FRESH_ACCUAUTH = """
SELECT DISTINCT e164 FROM telco.accuauth_phone_check
WHERE e164 = ANY(%(numbers)s)
  AND (status = 'OK' OR (status = 'PENDING' AND (expires_at IS NULL OR expires_at > now())))
  AND COALESCE(completed_at, submitted_at, updated_at) > now() - make_interval(days => %(days)s)
"""


def recently_checked(
    conn: psycopg.Connection,
    vendor: str,
    e164s: Sequence[str],
    freshness_days: int,
    check_level: int | None = None,
) -> set[str]:
    """E.164 numbers with a result (or a check in flight) inside the window."""
    if not e164s or freshness_days <= 0:
        return set()
    if vendor == NXCLOUD:
        if check_level is None:
            raise ValueError("NXCLOUD freshness needs the check level")
        query = _FRESH_NXCLOUD
        params = {
            "numbers": list(e164s),
            "level": check_level,
            "days": freshness_days,
            "transient": sorted(NXCLOUD_TRANSIENT_RECEIPT_CODES),
        }
    elif vendor == ACCUAUTH:
        query = _FRESH_ACCUAUTH
        params = {"numbers": list(e164s), "days": freshness_days}
    else:
        raise ValueError(f"unknown vendor {vendor!r}")
    return {row[0] for row in conn.execute(query, params)}


def prepare_numbers(
    conn: psycopg.Connection,
    *,
    vendor: str,
    entries: Iterable[str],
    default_region: str | None,
    freshness_days: int,
    check_level: int | None = None,
    ctx: RunContext | None = None,
) -> IntakeResult:
    """Normalise, record rejects, drop fresh numbers. Commits the rejected rows."""
    ctx = ctx or RunContext()
    entries = list(entries)
    batch = normalise_many(entries, default_region)
    record_rejected(conn, vendor, batch.rejected, default_region, ctx)
    fresh_set = recently_checked(conn, vendor, [n.e164 for n in batch.numbers], freshness_days, check_level)
    conn.commit()
    return IntakeResult(
        to_check=[n for n in batch.numbers if n.e164 not in fresh_set],
        rejected=batch.rejected,
        fresh=[n for n in batch.numbers if n.e164 in fresh_set],
        duplicates=batch.duplicates,
        received=len(entries),
    )
