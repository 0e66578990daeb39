"""The daily query-API sync: which vendor date, is it still queryable, which batches, what was missed.

* The vendor date of a run is the start of its data interval in the connection's
  ``query_timezone`` (the vendor does not document the timezone of ``date``; default UTC). A
  manual run without a logical date uses ``run_after - 1 day`` (what a scheduled run at that
  moment would have covered).
* NXCLOUD keeps results for 14 days: an older date fails fast, saying what we do hold for it.
* Batches of a date: those we submitted that day plus those seen in pushes received that day
  (both days in the query timezone), so batches submitted by other tools are reconciled too.
  The vendor does not document the timezone of its ``date``: batches whose day differs in
  another candidate timezone (:func:`candidate_zones`) are looked up on this date too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg

QUERY_WINDOW_DAYS = 14


class OutsideQueryWindow(Exception):
    pass


def vendor_date_for(interval_start: datetime, tz: ZoneInfo) -> date:
    if interval_start.tzinfo is None:
        interval_start = interval_start.replace(tzinfo=UTC)
    return interval_start.astimezone(tz).date()


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=tz)
    return start, start + timedelta(days=1)


@dataclass(frozen=True)
class DayHoldings:
    submissions: int
    batches: tuple[str, ...]
    pushes: int
    rows: int

    def describe(self) -> str:
        shown = ", ".join(self.batches[:10]) + (" ..." if len(self.batches) > 10 else "")
        return (
            f"we hold {self.submissions} submission(s) from that day"
            + (f" (batches {shown})" if self.batches else "")
            + f", {self.pushes} result push(es) received that day in raw.webhook_event and "
            f"{self.rows} row(s) of those batches in telco.nxcloud_number_check"
        )


def holdings(conn: psycopg.Connection, day: date, tz: ZoneInfo) -> DayHoldings:
    start, end = day_bounds(day, tz)
    batches = batches_for_day(conn, day, tz)
    submissions = conn.execute(
        "SELECT count(*) FROM ops.number_check_submission WHERE vendor = 'nxcloud' "
        "AND submitted_at >= %s AND submitted_at < %s",
        (start, end),
    ).fetchone()[0]
    pushes = conn.execute(
        "SELECT count(*) FROM raw.webhook_event WHERE endpoint = 'nxcloud_number_check' "
        "AND received_at >= %s AND received_at < %s",
        (start, end),
    ).fetchone()[0]
    rows = conn.execute(
        "SELECT count(*) FROM telco.nxcloud_number_check WHERE batch_no = ANY(%s)", (list(batches),)
    ).fetchone()[0]
    return DayHoldings(submissions, tuple(batches), pushes, rows)


def check_query_window(
    conn: psycopg.Connection,
    day: date,
    tz: ZoneInfo,
    *,
    today: date | None = None,
    window_days: int = QUERY_WINDOW_DAYS,
) -> None:
    """Raise :class:`OutsideQueryWindow` when NXCLOUD can no longer (or not yet) answer for ``day``."""
    today = today or datetime.now(tz).date()
    age = (today - day).days
    if age > window_days:
        raise OutsideQueryWindow(
            f"vendor date {day} is {age} days old: the NXCLOUD query API only keeps the last {window_days} days, "
            f"so it cannot be reconciled any more; {holdings(conn, day, tz).describe()}"
        )
    if age < 0:
        raise OutsideQueryWindow(f"vendor date {day} is in the future (today is {today} in {tz.key})")


def candidate_zones(tz: ZoneInfo) -> list[ZoneInfo]:
    """The configured query timezone and the other candidates for the vendor's ``date``."""
    from phonecheck.nxcloud.client import CANDIDATE_TIMEZONES

    return [tz, *(ZoneInfo(z) for z in CANDIDATE_TIMEZONES if z != tz.key)]


def batches_for_day(conn: psycopg.Connection, day: date, *zones: ZoneInfo) -> list[str]:
    """Batches submitted, or seen in pushes received, on ``day`` in any of ``zones``."""
    bounds = [day_bounds(day, tz) for tz in zones]
    start, end = min(b[0] for b in bounds), max(b[1] for b in bounds)
    rows = conn.execute(
        """SELECT batch_no FROM ops.number_check_submission
           WHERE vendor = 'nxcloud' AND batch_no IS NOT NULL AND status <> 'failed'
             AND submitted_at >= %(start)s AND submitted_at < %(end)s
           UNION
           SELECT DISTINCT payload->>'batchNo' FROM raw.webhook_event
           WHERE endpoint = 'nxcloud_number_check' AND payload ? 'batchNo'
             AND received_at >= %(start)s AND received_at < %(end)s
           ORDER BY 1""",
        {"start": start, "end": end},
    )
    return [r[0] for r in rows if r[0]]


def day_batches(conn: psycopg.Connection, day: date, tz: ZoneInfo) -> tuple[list[str], list[str]]:
    """The batches of ``day`` in ``tz``, and those near the day boundary that another candidate
    timezone puts on ``day`` too (looked up on this date as well: an extra call for them only)."""
    batches = batches_for_day(conn, day, tz)
    native = set(batches)
    near = [b for b in batches_for_day(conn, day, *candidate_zones(tz)) if b not in native]
    return batches, near


def incomplete_batches(conn: psycopg.Connection, batch_nos: Sequence[str]) -> list[str]:
    """Those of ``batch_nos`` not yet marked complete (ours still ``submitted``, or not ours)."""
    done = {
        r[0]
        for r in conn.execute(
            "SELECT batch_no FROM ops.number_check_submission WHERE vendor = 'nxcloud' AND batch_no = ANY(%s) "
            "AND status = 'complete'",
            (list(batch_nos),),
        )
    }
    return [b for b in batch_nos if b not in done]


def synced_batches(conn: psycopg.Connection, *, day: date, dag_id: str, run_id: str) -> list[str]:
    """The batches the sync run ``dag_id``/``run_id`` of ``day`` loaded query rows for."""
    rows = conn.execute(
        "SELECT batch_no FROM ops.query_sync_report WHERE vendor_date = %s AND dag_id = %s AND run_id = %s "
        "AND query_rows > 0 ORDER BY batch_no",
        (day, dag_id, run_id),
    )
    return [r[0] for r in rows]


_REPORT_INSERT = """INSERT INTO ops.query_sync_report
       (vendor_date, batch_no, query_rows, pages_fetched, api_calls, missing_push_count,
        missing_push_phones, dag_id, run_id, synced_at)
   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())
   ON CONFLICT (vendor_date, batch_no) """
_REPORT_UPSERT = (
    _REPORT_INSERT
    + """DO UPDATE SET
       query_rows = EXCLUDED.query_rows, pages_fetched = EXCLUDED.pages_fetched,
       api_calls = EXCLUDED.api_calls, missing_push_count = EXCLUDED.missing_push_count,
       missing_push_phones = EXCLUDED.missing_push_phones, dag_id = EXCLUDED.dag_id,
       run_id = EXCLUDED.run_id, synced_at = now()"""
)
_REPORT_INSERT_ONLY = _REPORT_INSERT + "DO NOTHING"


def write_sync_report(
    conn: psycopg.Connection,
    *,
    day: date,
    batch_no: str,
    query_rows: int,
    pages: int,
    api_calls: int,
    missing_phones: Sequence[str],
    dag_id: str | None,
    run_id: str | None,
    looked_up: bool = True,
) -> None:
    """One row per (date, batch); the latest sync that looked the batch up wins. A sync that
    made no call for it (every number already had a result) only adds a row when there is none,
    so it never erases the pushes an earlier sync found missing."""
    conn.execute(
        _REPORT_UPSERT if looked_up else _REPORT_INSERT_ONLY,
        (
            day,
            batch_no,
            query_rows,
            pages,
            api_calls,
            len(missing_phones),
            list(missing_phones)[:1000],
            dag_id,
            run_id,
        ),
    )
    conn.commit()
