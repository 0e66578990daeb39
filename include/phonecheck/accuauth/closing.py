"""How an AccuAuth run's tasks end, in the warehouse: expiry after the task id's 24 h, which rows
a run wrote and how its tasks ended (counts). Submissions are closed from their typed rows by
:func:`phonecheck.accuauth.store.reconcile_submissions`, which the load runs too.

Written in tasks after the wait (:mod:`phonecheck.accuauth.store` holds what the wait reads and loads).
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from phonecheck.accuauth.store import TABLE, WaitSelector
from phonecheck.loader import upsert


def expire_stale(conn: psycopg.Connection, now: datetime | None = None) -> list[str]:
    """Mark tasks past their 24 h validity EXPIRED (typed row; the submission follows in
    :func:`~phonecheck.accuauth.store.reconcile_submissions`). Only a PENDING row becomes EXPIRED (the loader's status
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


def written_task_ids(conn: psycopg.Connection, selector: WaitSelector, since: datetime | None) -> list[str]:
    """Task ids whose typed rows a run wrote: every task its submissions created (``run_id``),
    or, for the daily re-poll (``run_id`` None), the selection's rows changed since ``since``."""
    rows = conn.execute(
        """SELECT s.task_id FROM ops.number_check_submission s
           JOIN telco.accuauth_phone_check t ON t.task_id = s.task_id
           WHERE s.vendor = 'accuauth' AND s.submission_id <= %(max_id)s
             AND CASE WHEN %(run_id)s::text IS NULL THEN t.updated_at >= COALESCE(%(since)s, '-infinity')
                      ELSE s.run_id = %(run_id)s END
           ORDER BY 1""",
        {"max_id": selector.max_submission_id, "run_id": selector.run_id, "since": since},
    )
    return [r[0] for r in rows]


def run_summary(conn: psycopg.Connection, selector: WaitSelector) -> dict[str, int]:
    """How the selection's tasks ended: counts per outcome."""
    row = conn.execute(
        """SELECT count(*), count(*) FILTER (WHERE t.status = 'OK'),
                  count(*) FILTER (WHERE t.status = 'PENDING'),
                  count(*) FILTER (WHERE t.status = 'EXPIRED'),
                  count(*) FILTER (WHERE t.status NOT IN ('OK', 'PENDING', 'EXPIRED'))
           FROM ops.number_check_submission s JOIN telco.accuauth_phone_check t ON t.task_id = s.task_id
           WHERE s.vendor = 'accuauth' AND s.submission_id <= %(max_id)s
             AND (%(run_id)s::text IS NULL OR s.run_id = %(run_id)s)""",
        {"max_id": selector.max_submission_id, "run_id": selector.run_id},
    ).fetchone()
    return dict(zip(("tasks", "ok", "pending", "expired", "ended"), row, strict=True))
