"""Retention: personal data is kept for a configured number of days, then removed.

The windows live in ``ops.retention_policy`` (one row per area, ``keep_days``; defaults in
V0700 and docs/privacy.md). :func:`enforce_retention` is what the daily DAG
``phone_data_retention`` (and ``python -m phonecheck.cli retention``) runs:

* ``raw_inbox``: ``raw.webhook_event`` is partitioned by UTC day; every partition that ends
  before the cutoff is dropped whole (no row-by-row delete, no bloat), the default partition's
  old rows and the dedupe keys go too, and the partitions of the coming week are created;
* ``vendor_answers``, ``typed_results``, ``ops``, ``dq``: rows older than the cutoff (by the
  column that says when the row last changed) are deleted; submissions still referenced by a
  kept typed row stay;
* ``data_docs``: validation pages older than the cutoff are deleted from the Data Docs folder.

``now`` can be given (tests move the clock that way); by default the database's ``now()``.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

#: Days of raw.webhook_event partitions kept ready ahead of today.
PARTITIONS_AHEAD = 7

#: (area, table, time column, extra condition) of the row-by-row expiries.
ROW_EXPIRY: tuple[tuple[str, str, str, str], ...] = (
    ("vendor_answers", "raw.vendor_answer", "received_at", ""),
    ("typed_results", "telco.nxcloud_number_check", "updated_at", ""),
    ("typed_results", "telco.accuauth_phone_check", "updated_at", ""),
    ("typed_results", "telco.nxcloud_voice_receipt", "updated_at", ""),
    ("typed_results", "telco.nxcloud_call_record", "updated_at", ""),
    ("ops", "ops.rejected_number", "rejected_at", ""),
    ("ops", "ops.accuauth_submit_claim", "updated_at", ""),
    ("ops", "ops.query_sync_report", "synced_at", ""),
    ("ops", "ops.receiver_spool_replay", "replayed_at", ""),
    ("ops", "ops.receiver_spool_record", "replayed_at", ""),
    ("ops", "ops.run_number", "prepared_at", ""),  # the numbers a run was asked to check
    ("ops", "ops.run_intake", "prepared_at", ""),
    ("ops", "ops.run_origin", "recorded_at", ""),
    (
        "ops",
        "ops.number_check_submission",
        "updated_at",
        " AND status NOT IN ('pending', 'submitted')"
        " AND NOT EXISTS (SELECT 1 FROM telco.nxcloud_number_check t WHERE t.submission_id = x.submission_id)"
        " AND NOT EXISTS (SELECT 1 FROM telco.accuauth_phone_check t WHERE t.submission_id = x.submission_id)"
        " AND NOT EXISTS (SELECT 1 FROM ops.accuauth_submit_claim t WHERE t.submission_id = x.submission_id)",
    ),
    ("dq", "dq.validation_result", "validated_at", ""),
)


@dataclass
class RetentionResult:
    """What one enforcement removed (or would remove, on a dry run)."""

    now: datetime
    dry_run: bool
    windows: dict[str, int]
    counts: dict[str, int] = field(default_factory=dict)
    dropped_partitions: list[str] = field(default_factory=list)
    created_partitions: int = 0

    def describe(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        lines = [
            f"retention at {self.now.isoformat()} ({'dry run' if self.dry_run else 'enforced'}): "
            + ", ".join(f"{area} {days} d" for area, days in sorted(self.windows.items())),
            f"  raw.webhook_event: {verb} {len(self.dropped_partitions)} partition(s)"
            + (f" ({', '.join(self.dropped_partitions)})" if self.dropped_partitions else "")
            + f"; {self.created_partitions} partition(s) created ahead",
        ]
        lines += [f"  {place}: {verb} {n} row(s)" for place, n in sorted(self.counts.items()) if n]
        return "\n".join(lines)


def retention_windows(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT area, keep_days FROM ops.retention_policy").fetchall())


def _inbox_is_partitioned(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT relkind FROM pg_class WHERE oid = 'raw.webhook_event'::regclass").fetchone()
    return row is not None and row[0] == "p"


def enforce_retention(
    dsn: str, *, now: datetime | None = None, dry_run: bool = False, data_docs_dir: Path | None = None
) -> RetentionResult:
    """Apply every window of ``ops.retention_policy`` once; idempotent."""
    with psycopg.connect(dsn) as conn:
        if now is None:
            now = conn.execute("SELECT now()").fetchone()[0]
        windows = retention_windows(conn)
        result = RetentionResult(now=now, dry_run=dry_run, windows=windows)

        def cutoff(area: str) -> datetime | None:
            return now - timedelta(days=windows[area]) if area in windows else None

        with conn.transaction():
            raw_cutoff = cutoff("raw_inbox")
            if raw_cutoff is not None and _inbox_is_partitioned(conn):
                for name, rows in conn.execute(
                    "SELECT partition_name, row_count FROM raw.drop_webhook_event_partitions(%s, %s)",
                    (raw_cutoff, dry_run),
                ).fetchall():
                    if name != "webhook_event_default":
                        result.dropped_partitions.append(name)
                    result.counts[f"raw.{name}"] = rows
                if not dry_run:
                    # partitions are UTC days: `now` may come in any timezone (the session's,
                    # when read from the server), and its own date would skip or add a day
                    today = now.astimezone(UTC).date()
                    result.created_partitions = conn.execute(
                        "SELECT raw.ensure_webhook_event_partitions(%s, %s)",
                        (today, today + timedelta(days=PARTITIONS_AHEAD)),
                    ).fetchone()[0]
            elif raw_cutoff is not None:  # an inbox not (yet) partitioned: rows, then
                result.counts["raw.webhook_event"] = _expire_rows(
                    conn, "raw.webhook_event", "received_at", "", raw_cutoff, dry_run
                )
            for area, table, column, extra in ROW_EXPIRY:
                area_cutoff = cutoff(area)
                if (
                    area_cutoff is None
                    or conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None
                ):
                    continue
                result.counts[table] = _expire_rows(conn, table, column, extra, area_cutoff, dry_run)
    docs_cutoff = cutoff("data_docs")
    if docs_cutoff is not None:
        result.counts["data_docs pages"] = prune_data_docs(data_docs_dir, docs_cutoff, dry_run)
    log.info("%s", result.describe())
    return result


def _expire_rows(
    conn: psycopg.Connection, table: str, column: str, extra: str, cutoff: datetime, dry_run: bool
) -> int:
    from psycopg import sql

    schema, name = table.split(".")
    where = sql.SQL("WHERE {} < %s").format(sql.Identifier(column)) + sql.SQL(extra)
    target = sql.Identifier(schema, name)
    if dry_run:
        query = sql.SQL("SELECT count(*) FROM {} AS x ").format(target) + where
        return conn.execute(query, (cutoff,)).fetchone()[0]
    query = sql.SQL("DELETE FROM {} AS x ").format(target) + where
    return conn.execute(query, (cutoff,)).rowcount


def prune_data_docs(folder: Path | None, cutoff: datetime, dry_run: bool) -> int:
    """Delete validation page folders (``validations/<suite>/<run>/``) last written before ``cutoff``."""
    if folder is None:
        from phonecheck.quality.runner import data_docs_dir

        folder = data_docs_dir()
    validations = Path(folder) / "validations"
    if not validations.is_dir():
        return 0
    removed = 0
    for run_dir in sorted(p for p in validations.glob("*/*") if p.is_dir()):
        newest = max((f.stat().st_mtime for f in run_dir.rglob("*") if f.is_file()), default=0.0)
        if newest < cutoff.timestamp():
            removed += 1
            if not dry_run:
                shutil.rmtree(run_dir)
    return removed
