"""AccuAuth bookkeeping in the warehouse: open tasks, poll results, callbacks, expiry.

Tables: ``ops.number_check_submission`` (one row per submit: vendor ``accuauth``, ``task_id`` =
the vendor task id, or the request id when the answer came at once), ``telco.accuauth_phone_check``
(one row per task id, upserted through :func:`phonecheck.loader.upsert`) and the inbox
``raw.webhook_event`` (endpoint ``accuauth_phone_number``, dedupe key = task id).

Read-only helpers used by the trigger are ``async`` (psycopg AsyncConnection); everything that
writes is sync and runs in tasks, never in the trigger.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from phonecheck.loader import LoadResult, upsert
from phonecheck.numbers import to_e164
from phonecheck.parsers import PayloadError
from phonecheck.parsers.accuauth import parse_callback

VENDOR = "accuauth"
TABLE = "telco.accuauth_phone_check"
CALLBACK_ENDPOINT = "accuauth_phone_number"
#: A task id is valid for 24 hours (SEED 002).
TASK_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class WaitSelector:
    """Which open tasks a wait covers: those of one run (``run_id``), or every open task
    (``run_id`` None, the daily re-poll), submitted up to ``max_submission_id`` (so a wait never
    grows with tasks submitted after it started)."""

    run_id: str | None
    max_submission_id: int

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "max_submission_id": self.max_submission_id}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> WaitSelector:
        return cls(value.get("run_id"), int(value["max_submission_id"]))


@dataclass(frozen=True)
class OpenTask:
    task_id: str
    phone_number: str
    submitted_at: datetime
    expires_at: datetime
    poll_count: int


# Open = the submission still says pending AND no final answer is known (telco row finished by
# a callback or an earlier wait) AND no callback is waiting in the inbox.
_OPEN_TASKS = """
SELECT s.task_id, s.phones[1], s.submitted_at,
       COALESCE(t.expires_at, s.submitted_at + interval '24 hours'), COALESCE(t.poll_count, 0)
FROM ops.number_check_submission s
LEFT JOIN telco.accuauth_phone_check t ON t.task_id = s.task_id
WHERE s.vendor = 'accuauth' AND s.status = 'pending' AND s.submission_id <= %(max_id)s
  AND (%(run_id)s::text IS NULL OR s.run_id = %(run_id)s)
  AND COALESCE(t.status, 'PENDING') = 'PENDING'
  AND NOT EXISTS (SELECT 1 FROM raw.webhook_event e
                  WHERE e.endpoint = 'accuauth_phone_number' AND e.dedupe_key = s.task_id)
ORDER BY s.submission_id
"""

_FINISHED_ELSEWHERE = """
SELECT e.dedupe_key FROM raw.webhook_event e
WHERE e.endpoint = 'accuauth_phone_number' AND e.dedupe_key = ANY(%(ids)s)
UNION
SELECT t.task_id FROM telco.accuauth_phone_check t
WHERE t.task_id = ANY(%(ids)s) AND t.status <> 'PENDING'
"""


def _open_task(row: Sequence[Any]) -> OpenTask:
    return OpenTask(row[0], row[1], row[2], row[3], row[4])


def open_tasks(conn: psycopg.Connection, selector: WaitSelector) -> list[OpenTask]:
    rows = conn.execute(_OPEN_TASKS, {"max_id": selector.max_submission_id, "run_id": selector.run_id})
    return [_open_task(r) for r in rows]


async def aopen_tasks(conn: psycopg.AsyncConnection, selector: WaitSelector) -> list[OpenTask]:
    cur = await conn.execute(_OPEN_TASKS, {"max_id": selector.max_submission_id, "run_id": selector.run_id})
    return [_open_task(r) for r in await cur.fetchall()]


async def afinished_elsewhere(conn: psycopg.AsyncConnection, task_ids: Sequence[str]) -> set[str]:
    """Task ids among ``task_ids`` that a callback (inbox) or another wait already finished."""
    if not task_ids:
        return set()
    cur = await conn.execute(_FINISHED_ELSEWHERE, {"ids": list(task_ids)})
    return {r[0] for r in await cur.fetchall()}


def max_submission_id(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT COALESCE(max(submission_id), 0) FROM ops.number_check_submission WHERE vendor = 'accuauth'"
    ).fetchone()
    return int(row[0])


# ---- loading what a wait found ----------------------------------------------------------------
def load_poll_results(conn: psycopg.Connection, results: Iterable[dict[str, Any]]) -> LoadResult:
    """Upsert poll outcomes (the trigger's payload ``results``) into the typed table.

    Each result: ``task_id, status, phone_status, request_id, reason, poll_count, polled_at``
    (epoch seconds). The phone number and submission come from our submission row (error
    answers carry no phone).
    """
    results = list(results)
    ids = [r["task_id"] for r in results]
    known = {
        task_id: (phone, submission_id)
        for task_id, phone, submission_id in conn.execute(
            """SELECT task_id, phones[1], submission_id FROM ops.number_check_submission
               WHERE vendor = 'accuauth' AND task_id = ANY(%s)""",
            (ids,),
        )
    }
    rows = []
    for r in results:
        phone, submission_id = known.get(r["task_id"], (r.get("phone_number"), None))
        if phone is None:
            raise ValueError(f"poll result for unknown task {r['task_id']!r}")
        polled_at = datetime.fromtimestamp(r["polled_at"], UTC) if r.get("polled_at") else None
        rows.append(
            {
                "task_id": r["task_id"],
                "request_id": r.get("request_id"),
                "phone_number": r.get("phone_number") or phone,
                "e164": to_e164(phone),
                "status": r["status"],
                "reason": r.get("reason"),
                "phone_status": r.get("phone_status"),
                "completed_at": polled_at if r["status"] != "PENDING" else None,
                "poll_count": r.get("poll_count"),
                "source": "poll",
                "submission_id": submission_id,
            }
        )
    result = upsert(conn, TABLE, rows)
    conn.commit()
    return result


def load_callbacks(conn: psycopg.Connection) -> LoadResult:
    """Callbacks in the inbox for tasks whose typed row is still PENDING: load them.

    Push processing (the receiver issue) does the same; doing it here too means a wait that
    stopped because of a callback never depends on push processing having run. Same rows,
    same upsert: whichever runs second changes nothing.
    """
    events = conn.execute(
        """SELECT e.event_id, e.payload, e.received_at FROM raw.webhook_event e
           JOIN telco.accuauth_phone_check t ON t.task_id = e.dedupe_key AND t.status = 'PENDING'
           WHERE e.endpoint = 'accuauth_phone_number' AND e.payload IS NOT NULL"""
    ).fetchall()
    rows = []
    for event_id, payload, received_at in events:
        try:
            row = parse_callback(payload, received_at=received_at)
        except PayloadError:
            continue  # kept in the inbox with its error by push processing; polling decides
        rows.append({**row, "raw_event_id": event_id})
    result = upsert(conn, TABLE, rows)
    conn.commit()
    return result


def expire_stale(conn: psycopg.Connection, now: datetime | None = None) -> list[str]:
    """Mark tasks past their 24 h validity EXPIRED (typed row; the submission follows in
    :func:`reconcile_submissions`). Only a PENDING row becomes EXPIRED (the loader's status
    rule); returns the task ids that did.
    """
    now = now or datetime.now(UTC)
    stale = conn.execute(
        """SELECT t.task_id, t.phone_number FROM telco.accuauth_phone_check t
           WHERE t.status = 'PENDING'
             AND COALESCE(t.expires_at, t.submitted_at + interval '24 hours') <= %s""",
        (now,),
    ).fetchall()
    rows = [
        {
            "task_id": task_id,
            "phone_number": phone,
            "status": "EXPIRED",
            "reason": "no result within the task id's 24 h validity",
            "completed_at": now,
            "source": "poll",
        }
        for task_id, phone in stale
    ]
    upsert(conn, TABLE, rows)
    conn.commit()
    return [task_id for task_id, _ in stale]


def run_task_ids(conn: psycopg.Connection, run_id: str) -> list[str]:
    """Every task id (or request id, for answers at once) submitted by one run."""
    rows = conn.execute(
        "SELECT task_id FROM ops.number_check_submission WHERE vendor = 'accuauth' AND run_id = %s", (run_id,)
    )
    return [r[0] for r in rows]


def reconcile_submissions(conn: psycopg.Connection) -> dict[str, int]:
    """Close pending submission rows whose typed row is final: complete (OK), expired
    (EXPIRED) or failed (a vendor error status). Idempotent."""
    counts = {}
    for new_status, condition in (
        ("complete", "t.status = 'OK'"),
        ("expired", "t.status = 'EXPIRED'"),
        ("failed", "t.status NOT IN ('OK', 'EXPIRED', 'PENDING')"),
    ):
        cur = conn.execute(
            f"""UPDATE ops.number_check_submission s
                SET status = %s, completed_at = COALESCE(t.completed_at, now()), updated_at = now()
                FROM telco.accuauth_phone_check t
                WHERE s.vendor = 'accuauth' AND s.status = 'pending' AND t.task_id = s.task_id
                  AND {condition}""",  # noqa: S608 - condition is one of three static strings
            (new_status,),
        )
        counts[new_status] = cur.rowcount
    conn.commit()
    return counts
