"""AccuAuth bookkeeping in the warehouse: open tasks, verbatim answers, poll results,
callbacks, in-doubt submits. How a run's tasks end (expiry, closing submissions, what a run
wrote) is in :mod:`phonecheck.accuauth.closing`.

Tables: ``ops.number_check_submission`` (one row per submit: vendor ``accuauth``, ``task_id`` =
the vendor task id, or the request id when the answer came at once), ``ops.accuauth_submit_claim``
(one row per number and run, see :mod:`phonecheck.accuauth.submit`), ``telco.accuauth_phone_check``
(one row per task id, upserted through :func:`phonecheck.loader.upsert`), ``raw.vendor_answer``
(every submit and poll answer, verbatim) and the inbox ``raw.webhook_event`` (endpoint
``accuauth_phone_number``, dedupe key = task id).

The trigger's helpers are ``async`` (psycopg AsyncConnection): they read, and append the poll
answers to ``raw.vendor_answer`` (append-only: a trigger running twice adds rows, never changes
one). Everything else writes in tasks: :func:`load_wait` turns what the trigger stored into
typed rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from phonecheck.loader import LoadResult, upsert
from phonecheck.parsers import PayloadError
from phonecheck.parsers.accuauth import echo_to_e164, parse_callback, parse_task_result

if TYPE_CHECKING:
    from phonecheck.accuauth.api import RawAnswer

VENDOR = "accuauth"
TABLE = "telco.accuauth_phone_check"
CALLBACK_ENDPOINT = "accuauth_phone_number"
#: A task id is valid for 24 hours (docs/vendors/accuauth.md).
TASK_TTL = timedelta(hours=24)
API_SUBMIT, API_POLL = "accuauth_submit", "accuauth_poll"


# ---- verbatim answers --------------------------------------------------------------------------
_INSERT_RAW = """INSERT INTO raw.vendor_answer
    (vendor, api, request_ref, http_status, content_type, body, parse_error, dag_id, run_id)
VALUES ('accuauth', %s, %s, %s, %s, %s, %s, %s, %s) RETURNING answer_id"""


def _raw_params(raw: RawAnswer, dag_id: str | None, run_id: str | None) -> tuple[Any, ...]:
    ref, problem = raw.fields.get("task_id"), raw.error
    try:
        payload = json.loads(raw.body) if raw.body else None
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        ref = ref or payload.get("task_id") or payload.get("request_id")
    elif problem is None:
        problem = "not a JSON object"
    return (raw.api, ref, raw.http_status, raw.content_type, raw.body, problem, dag_id, run_id)


def insert_raw_answers(
    conn: psycopg.Connection,
    raws: Sequence[RawAnswer],
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
) -> list[int]:
    """Append answers to ``raw.vendor_answer`` in the caller's transaction; returns their ids."""
    ids = []
    for raw in raws:
        ids.append(conn.execute(_INSERT_RAW, _raw_params(raw, dag_id, run_id)).fetchone()[0])
    return ids


async def ainsert_raw_answers(
    conn: psycopg.AsyncConnection,
    raws: Sequence[RawAnswer],
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
) -> None:
    """The trigger's version (autocommit connection): one round's answers in one statement."""
    if not raws:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            _INSERT_RAW.replace(" RETURNING answer_id", ""), [_raw_params(r, dag_id, run_id) for r in raws]
        )


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


# ---- in-doubt submits ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Doubt:
    """A number whose paid submit lost its answer: wait for its callback until ``doubt_until``."""

    e164: str
    claimed_at: datetime
    doubt_until: datetime


_OPEN_DOUBTS = """
SELECT c.e164, c.claimed_at, COALESCE(c.doubt_until, c.claimed_at) FROM ops.accuauth_submit_claim c
WHERE c.state = 'in_doubt' AND (%(run_id)s::text IS NULL OR c.run_id = %(run_id)s)
  AND COALESCE(c.doubt_until, c.claimed_at) > now()
ORDER BY c.claimed_at
"""

# Callbacks for a task id we never recorded (its submit answer was lost), received since ``since``.
_STRAY_CALLBACKS = """
SELECT e.event_id, e.dedupe_key, e.payload, e.received_at FROM raw.webhook_event e
WHERE e.endpoint = 'accuauth_phone_number' AND e.received_at >= %(since)s AND e.payload IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM ops.number_check_submission s
                  WHERE s.vendor = 'accuauth' AND s.task_id = e.dedupe_key)
ORDER BY e.event_id
"""


def open_doubts(conn: psycopg.Connection, selector: WaitSelector) -> list[Doubt]:
    """In-doubt submits of the selection still inside their callback window."""
    return [Doubt(*r) for r in conn.execute(_OPEN_DOUBTS, {"run_id": selector.run_id})]


async def aopen_doubts(conn: psycopg.AsyncConnection, selector: WaitSelector) -> list[Doubt]:
    cur = await conn.execute(_OPEN_DOUBTS, {"run_id": selector.run_id})
    return [Doubt(*r) for r in await cur.fetchall()]


async def amatched_doubts(conn: psycopg.AsyncConnection, doubts: Sequence[Doubt]) -> set[str]:
    """The in-doubt numbers a callback for an unknown task id has arrived for."""
    if not doubts:
        return set()
    cur = await conn.execute(_STRAY_CALLBACKS, {"since": min(d.claimed_at for d in doubts)})
    wanted = {d.e164 for d in doubts}
    found = {echo_to_e164((payload or {}).get("phone_number")) for _, _, payload, _ in await cur.fetchall()}
    return wanted & found


def adopt_stray_callbacks(conn: psycopg.Connection) -> list[str]:
    """Match callbacks for task ids we never recorded to in-doubt claims, by the number we sent.

    The vendor created the task although its answer was lost; its callback names the task id and
    echoes the number. The oldest in-doubt claim for that number (claimed before the callback
    came) gets a submission row with that task id, so the callback loads like any other and the
    claim becomes ``submitted``. Returns the adopted task ids.
    """
    claims = conn.execute(
        "SELECT min(claimed_at) FROM ops.accuauth_submit_claim WHERE state = 'in_doubt'"
    ).fetchone()[0]
    if claims is None:
        return []
    adopted = []
    for _event_id, task_id, payload, received_at in conn.execute(
        _STRAY_CALLBACKS, {"since": claims}
    ).fetchall():
        e164 = echo_to_e164((payload or {}).get("phone_number"))
        if e164 is None:
            continue
        with conn.transaction():
            claim = conn.execute(
                """SELECT run_key, dag_id, run_id, claimed_at FROM ops.accuauth_submit_claim
                   WHERE state = 'in_doubt' AND e164 = %s AND claimed_at <= %s
                   ORDER BY claimed_at LIMIT 1 FOR UPDATE""",
                (e164, received_at),
            ).fetchone()
            if claim is None:
                continue
            run_key, dag_id, run_id, claimed_at = claim
            submission_id = conn.execute(
                """INSERT INTO ops.number_check_submission
                     (vendor, task_id, request_id, region_code, phones, phone_count, status, dag_id, run_id,
                      submitted_at)
                   VALUES ('accuauth', %s, %s, NULL, %s, 1, 'pending', %s, %s, %s)
                   ON CONFLICT (vendor, task_id) WHERE task_id IS NOT NULL
                   DO UPDATE SET updated_at = ops.number_check_submission.updated_at
                   RETURNING submission_id""",
                (task_id, (payload or {}).get("request_id"), [e164[1:]], dag_id, run_id, claimed_at),
            ).fetchone()[0]
            upsert(
                conn,
                TABLE,
                [
                    {
                        "task_id": task_id,
                        "phone_number": e164[1:],
                        "e164": e164,
                        "status": "PENDING",
                        "submitted_at": claimed_at,
                        "expires_at": claimed_at + TASK_TTL,
                        "source": "submit",
                        "submission_id": submission_id,
                    }
                ],
            )
            conn.execute(
                """UPDATE ops.accuauth_submit_claim SET state = 'submitted', submission_id = %s,
                   error = COALESCE(error, '') || ' (settled by the vendor callback)', updated_at = now()
                   WHERE run_key = %s AND e164 = %s""",
                (submission_id, run_key, e164),
            )
        adopted.append(task_id)
    conn.commit()
    return adopted


def in_doubt_numbers(conn: psycopg.Connection, run_id: str | None) -> list[str]:
    """Numbers still in doubt (``ops.accuauth_in_doubt``) for a run, or for every run."""
    rows = conn.execute(
        "SELECT e164 FROM ops.accuauth_in_doubt WHERE (%(r)s::text IS NULL OR run_id = %(r)s) ORDER BY e164",
        {"r": run_id},
    )
    return [r[0] for r in rows]


# ---- loading what a wait found ----------------------------------------------------------------
# The latest meaningful poll answer per task (a 5xx, a refusal for rate or a lost answer says
# nothing about the task), and how many answers the task got.
_LATEST_POLLS = """
SELECT DISTINCT ON (a.request_ref) a.request_ref, a.answer_id, a.http_status, a.body, a.received_at,
       count(*) FILTER (WHERE a.http_status IS NOT NULL AND a.http_status < 500)
         OVER (PARTITION BY a.request_ref) AS polls
FROM raw.vendor_answer a
WHERE a.vendor = 'accuauth' AND a.api = 'accuauth_poll' AND a.request_ref = ANY(%(ids)s)
  AND a.http_status IS NOT NULL AND a.http_status < 500 AND a.parse_error IS NULL
  AND NOT (a.http_status = 403 AND convert_from(a.body, 'UTF8') LIKE '%%RATE_LIMIT_EXCEEDED%%')
ORDER BY a.request_ref, a.answer_id DESC
"""


def load_poll_answers(conn: psycopg.Connection, selector: WaitSelector) -> LoadResult:
    """Upsert, from ``raw.vendor_answer``, the latest poll answer of every open task of the
    selection: ``OK`` finishes it, a per-task refusal (unknown / expired task id) ends it with
    the vendor's status and reason, ``PENDING`` only counts the poll. The number (and ``e164``)
    come from our submission, never from the vendor's echo."""
    known = {
        task_id: (phone, submission_id)
        for task_id, phone, submission_id in conn.execute(
            """SELECT task_id, phones[1], submission_id FROM ops.number_check_submission
               WHERE vendor = 'accuauth' AND status = 'pending' AND submission_id <= %(max_id)s
                 AND (%(run_id)s::text IS NULL OR run_id = %(run_id)s)""",
            {"max_id": selector.max_submission_id, "run_id": selector.run_id},
        )
    }
    rows = []
    for task_id, answer_id, _http_status, body, received_at, polls in conn.execute(
        _LATEST_POLLS, {"ids": list(known)}
    ):
        phone, submission_id = known[task_id]
        try:
            payload = json.loads(bytes(body))
            row = parse_task_result(payload, task_id, phone, received_at)
        except (ValueError, PayloadError):
            continue  # kept verbatim with the answer; a later poll decides
        if row["status"] != "PENDING":
            row["completed_at"] = received_at
        row.update(poll_count=polls, source="poll", submission_id=submission_id, vendor_answer_id=answer_id)
        rows.append(row)
    result = upsert(conn, TABLE, rows)
    conn.commit()
    return result


def fix_numbers_from_submissions(conn: psycopg.Connection) -> int:
    """Give every typed row the number we submitted (``phone_number``, ``e164``) and its
    submission, whatever arrived first (a callback may land before our own submit settled)."""
    cur = conn.execute(
        """UPDATE telco.accuauth_phone_check t
           SET phone_number = s.phones[1], e164 = '+' || s.phones[1], submission_id = s.submission_id,
               updated_at = now()
           FROM ops.number_check_submission s
           WHERE s.vendor = 'accuauth' AND s.task_id = t.task_id
             AND (t.phone_number IS DISTINCT FROM s.phones[1] OR t.e164 IS DISTINCT FROM '+' || s.phones[1]
                  OR t.submission_id IS DISTINCT FROM s.submission_id)"""
    )
    conn.commit()
    return cur.rowcount


@dataclass(frozen=True)
class WaitLoad:
    """What :func:`load_wait` wrote (small: counts only)."""

    adopted: int
    polled: LoadResult
    callbacks: LoadResult
    renumbered: int
    closed: dict[str, int]


def load_wait(conn: psycopg.Connection, selector: WaitSelector) -> WaitLoad:
    """Everything a finished wait left in the warehouse, into typed rows, idempotently."""
    adopted = adopt_stray_callbacks(conn)
    polled = load_poll_answers(conn, selector)
    callbacks = load_callbacks(conn)
    renumbered = fix_numbers_from_submissions(conn)
    closed = reconcile_submissions(conn)
    return WaitLoad(len(adopted), polled, callbacks, renumbered, closed)


def load_callbacks(conn: psycopg.Connection) -> LoadResult:
    """Callbacks in the inbox for tasks whose typed row is still PENDING: load them.

    Push processing (the receiver issue) does the same; doing it here too means a wait that
    stopped because of a callback never depends on push processing having run. Same rows,
    same upsert: whichever runs second changes nothing.
    """
    events = conn.execute(
        """SELECT e.event_id, e.payload, e.received_at FROM raw.webhook_event e
           JOIN ops.number_check_submission s ON s.vendor = 'accuauth' AND s.task_id = e.dedupe_key
           LEFT JOIN telco.accuauth_phone_check t ON t.task_id = e.dedupe_key
           WHERE e.endpoint = 'accuauth_phone_number' AND e.payload IS NOT NULL
             AND COALESCE(t.status, 'PENDING') = 'PENDING'"""
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
