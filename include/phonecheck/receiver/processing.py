"""Push processing: inbox rows (``raw.webhook_event``) become typed rows, idempotently.

``process_inbox(dsn)`` claims a batch of unprocessed, decodable rows (``FOR UPDATE SKIP LOCKED``:
concurrent runs never take the same rows), maps each with the shared parsers, upserts the typed
rows with the shared loader (idempotent, merge policy per table) and marks the inbox rows
processed, all in one transaction: either a row is mapped and marked, or neither.

A row that cannot be mapped (the parser rejects it, or the typed table refuses a value) gets
``process_error`` and ``processed_at``, so it is not retried forever; it stays in the inbox for
inspection (``WHERE process_error IS NOT NULL``) and can be re-queued with
``UPDATE raw.webhook_event SET processed_at = NULL, process_error = NULL WHERE event_id = ...``.
The DAG ``telco_push_processing``, the demo and the tests all call this one function.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from phonecheck import loader
from phonecheck.parsers import accuauth, nxcloud
from phonecheck.privacy.masking import mask_numbers_in_text

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 1000
# A value the table refuses (out of range, too long) or a second key colliding (a call record
# whose callId is already stored under another id): isolate the row, keep the others.
# ProgramLimitExceeded: a key too long for the table's index (the inbox hashes long keys, the
# typed tables keep the vendor's value).
_ROW_ERRORS = (psycopg.errors.DataError, psycopg.errors.IntegrityError, psycopg.errors.ProgramLimitExceeded)


def _upsert(conn: psycopg.Connection, table: str, rows: list[dict]) -> None:
    """Number-check rows go through the one merge every writer of that table uses."""
    if table == "telco.nxcloud_number_check":
        from phonecheck.nxcloud.results import merge_results

        merge_results(conn, rows)
    else:
        loader.upsert(conn, table, rows)


def _number_check(payload: Any, received_at: datetime) -> dict:
    row = nxcloud.parse_number_check_push(payload)
    row["pushed_at"] = received_at
    return row


def _voice(payload: Any, received_at: datetime) -> dict:
    return nxcloud.parse_voice_receipt(payload)


def _call(payload: Any, received_at: datetime) -> dict:
    return nxcloud.parse_call_record(payload)


def _accuauth(payload: Any, received_at: datetime) -> dict:
    return accuauth.parse_callback(payload, received_at=received_at)


#: endpoint -> (typed table, mapper(payload, received_at) -> row)
MAPPERS: dict[str, tuple[str, Callable[[Any, datetime], dict]]] = {
    "nxcloud_number_check": ("telco.nxcloud_number_check", _number_check),
    "nxcloud_voice": ("telco.nxcloud_voice_receipt", _voice),
    "nxcloud_call": ("telco.nxcloud_call_record", _call),
    "accuauth_phone_number": ("telco.accuauth_phone_check", _accuauth),
}


@dataclass
class ProcessCounts:
    claimed: int = 0
    loaded: dict[str, int] = field(default_factory=dict)  # table -> rows upserted
    failed: int = 0  # rows kept with process_error

    @property
    def processed(self) -> int:
        return self.claimed - self.failed

    def as_dict(self) -> dict:
        return {
            "claimed": self.claimed,
            "processed": self.processed,
            "failed": self.failed,
            "loaded": self.loaded,
        }


_CLAIM_SQL = """
SELECT event_id, endpoint, payload, received_at
FROM raw.webhook_event
WHERE processed_at IS NULL AND parse_status = 'parsed'
ORDER BY event_id
LIMIT %s
FOR UPDATE SKIP LOCKED
"""


def process_batch(conn: psycopg.Connection, limit: int = DEFAULT_BATCH_SIZE) -> ProcessCounts:
    """Process up to ``limit`` inbox rows in the caller's transaction."""
    counts = ProcessCounts()
    with conn.cursor(row_factory=dict_row) as cur:
        events = cur.execute(_CLAIM_SQL, (limit,)).fetchall()
    counts.claimed = len(events)
    rows_by_table: dict[str, list[tuple[int, dict]]] = {}
    errors: list[tuple[int, str]] = []
    for event in events:
        mapping = MAPPERS.get(event["endpoint"])
        if mapping is None:
            errors.append((event["event_id"], f"no mapping for endpoint {event['endpoint']!r}"))
            continue
        table, mapper = mapping
        payload = event["payload"]
        if isinstance(payload, str):  # jsonb normally arrives decoded; be safe
            payload = json.loads(payload)
        try:
            row = mapper(payload, event["received_at"])
        except Exception as exc:  # noqa: BLE001 - any mapping failure is kept on the row
            errors.append((event["event_id"], f"{type(exc).__name__}: {str(exc)[:500]}"))
            continue
        row["raw_event_id"] = event["event_id"]
        rows_by_table.setdefault(table, []).append((event["event_id"], row))

    done: list[int] = []
    for table, items in rows_by_table.items():
        try:
            with conn.transaction():  # savepoint: a table that refuses the batch spoils nothing else
                _upsert(conn, table, [row for _, row in items])
            done.extend(event_id for event_id, _ in items)
            counts.loaded[table] = len(items)
        except _ROW_ERRORS:
            # One value the table refuses (e.g. a number out of range): find it row by row.
            loaded = 0
            for event_id, row in items:
                try:
                    with conn.transaction():
                        _upsert(conn, table, [row])
                    done.append(event_id)
                    loaded += 1
                except _ROW_ERRORS as exc:
                    errors.append((event_id, f"{table} refused the row: {str(exc).splitlines()[0][:500]}"))
            counts.loaded[table] = loaded

    if done:
        conn.execute(
            "UPDATE raw.webhook_event SET processed_at = now(), process_error = NULL WHERE event_id = ANY(%s)",
            (done,),
        )
    for event_id, error in errors:
        conn.execute(
            "UPDATE raw.webhook_event SET processed_at = now(), process_error = %s WHERE event_id = %s",
            (error, event_id),
        )
        log.warning("inbox event %d not mapped: %s", event_id, mask_numbers_in_text(str(error)))
    counts.failed = len(errors)
    return counts


def process_inbox(dsn: str, limit: int = 10_000, batch_size: int = DEFAULT_BATCH_SIZE) -> dict:
    """Process unprocessed inbox rows (up to ``limit``), one committed batch at a time.

    Returns ``{"claimed", "processed", "failed", "loaded": {table: rows}}``.
    """
    total = ProcessCounts()
    with psycopg.connect(dsn) as conn:
        while total.claimed < limit:
            with conn.transaction():
                batch = process_batch(conn, min(batch_size, limit - total.claimed))
            total.claimed += batch.claimed
            total.failed += batch.failed
            for table, n in batch.loaded.items():
                total.loaded[table] = total.loaded.get(table, 0) + n
            if batch.claimed < batch_size:
                break
    return total.as_dict()


def pending_count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT count(*) FROM raw.webhook_event WHERE processed_at IS NULL AND parse_status = 'parsed'"
        ).fetchone()[0]
