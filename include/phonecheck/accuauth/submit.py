"""Paid AccuAuth submits with bounded concurrency, paid at most once per number and run.

Each number goes through claim → call → settle:

1. **claim** (before the call): a row in ``ops.accuauth_submit_claim`` keyed on (run, number),
   committed. A number already claimed in this run is not sent again: ``submitted`` means we hold
   its answer; ``sending`` means an earlier attempt died between the call and the settle, so the
   vendor may have charged: it is reported as *in doubt* and not resent in this run (a later
   run checks it again). Only a ``failed`` claim (the vendor refused, or the call surely failed)
   is claimed again.
2. **call** ``/check/phone_number/o1`` (with the receiver's ``callback`` URL when configured).
3. **settle** in one transaction: the ``ops.number_check_submission`` row (``task_id`` = vendor
   task id, or the request id when answered at once), the ``telco.accuauth_phone_check`` row
   (``PENDING`` with ``expires_at`` = submitted + 24 h, or the result) and the claim.

Fatal vendor errors (UNAUTHORIZED, KEY_EXPIRED, NO_PERMISSION, OUT_OF_QUOTA, NOT_FOUND) stop the
run: numbers not yet started are not sent and the error is raised after in-flight calls settle.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from phonecheck.accuauth.api import FATAL_ERRORS, AccuAuthClient, AccuAuthError, Answer
from phonecheck.accuauth.store import TABLE, TASK_TTL, VENDOR, max_submission_id
from phonecheck.loader import upsert
from phonecheck.numbers import Normalised
from phonecheck.parsers.accuauth import parse_submit_response
from phonecheck.privacy.masking import mask_number

log = logging.getLogger(__name__)


@dataclass
class SubmitReport:
    """What one submit step did (JSON-serialisable via :meth:`summary`)."""

    answered_at_once: int = 0
    pending: int = 0
    already_submitted: int = 0  # settled by an earlier attempt of the same run
    in_doubt: list[str] = field(default_factory=list)  # claimed earlier, outcome unknown
    refused: dict[str, str] = field(default_factory=dict)  # e164 -> vendor status: reason
    vendor_calls: int = 0
    max_submission_id: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "answered_at_once": self.answered_at_once,
            "pending": self.pending,
            "already_submitted": self.already_submitted,
            "in_doubt": len(self.in_doubt),
            "refused": len(self.refused),
            "vendor_calls": self.vendor_calls,
            "max_submission_id": self.max_submission_id,
        }


def _claim(conn: psycopg.Connection, run_key: str, e164: str) -> str | None:
    """Claim a number for this run; returns None when claimed now, else the existing state."""
    row = conn.execute(
        """INSERT INTO ops.accuauth_submit_claim AS c (run_key, e164) VALUES (%s, %s)
           ON CONFLICT (run_key, e164) DO UPDATE
             SET state = 'sending', attempts = c.attempts + 1, error = NULL, vendor_status = NULL,
                 updated_at = now()
             WHERE c.state = 'failed'
           RETURNING state""",
        (run_key, e164),
    ).fetchone()
    conn.commit()
    if row is not None:
        return None
    existing = conn.execute(
        "SELECT state FROM ops.accuauth_submit_claim WHERE run_key = %s AND e164 = %s", (run_key, e164)
    ).fetchone()
    conn.commit()
    return existing[0]


def _fail_claim(conn: psycopg.Connection, run_key: str, e164: str, exc: AccuAuthError) -> None:
    conn.execute(
        """UPDATE ops.accuauth_submit_claim SET state = 'failed', vendor_status = %s, error = %s,
           updated_at = now() WHERE run_key = %s AND e164 = %s""",
        (exc.status, (exc.reason or "")[:500], run_key, e164),
    )
    conn.commit()


def _settle(
    conn: psycopg.Connection,
    number: Normalised,
    answer: Answer,
    *,
    run_key: str,
    dag_id: str | None,
    run_id: str | None,
    params: dict[str, Any],
    unit_price: Decimal | None,
    currency: str | None,
    submitted_at: datetime,
) -> dict[str, Any]:
    row = parse_submit_response(answer.payload, number.digits, submitted_at)
    pending = row["status"] == "PENDING"
    if pending:
        row["expires_at"] = submitted_at + TASK_TTL
    with conn.transaction():
        submission_id = conn.execute(
            """INSERT INTO ops.number_check_submission
                 (vendor, task_id, request_id, region_code, phones, phone_count, params, estimated_cost,
                  currency, status, response, dag_id, run_id, submitted_at, completed_at)
               VALUES (%s, %s, %s, %s, %s, 1, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (vendor, task_id) WHERE task_id IS NOT NULL
               DO UPDATE SET updated_at = ops.number_check_submission.updated_at
               RETURNING submission_id""",
            (
                VENDOR,
                row["task_id"],
                row["request_id"],
                number.region_code,
                [number.digits],
                Jsonb(params),
                unit_price,
                currency,
                "pending" if pending else "complete",
                Jsonb(answer.payload),
                dag_id,
                run_id,
                submitted_at,
                None if pending else submitted_at,
            ),
        ).fetchone()[0]
        row["submission_id"] = submission_id
        upsert(conn, TABLE, [row])
        conn.execute(
            """UPDATE ops.accuauth_submit_claim SET state = 'submitted', submission_id = %s, updated_at = now()
               WHERE run_key = %s AND e164 = %s""",
            (submission_id, run_key, number.e164),
        )
    conn.commit()
    return row


def submit_numbers(
    conn: psycopg.Connection,
    client: AccuAuthClient,
    numbers: Sequence[Normalised],
    *,
    run_key: str,
    dag_id: str | None = None,
    run_id: str | None = None,
    callback_url: str | None = None,
    max_concurrency: int = 8,
    params: dict[str, Any] | None = None,
    unit_price: Decimal | None = None,
    currency: str | None = None,
) -> SubmitReport:
    """Submit ``numbers`` (at most ``max_concurrency`` calls in flight) and record every answer.

    ``conn`` is shared by the worker threads under a lock (each claim / settle is one short
    transaction); the HTTP calls run in parallel.
    """
    if max_concurrency < 1:
        raise ValueError("max_concurrency must be >= 1")
    report = SubmitReport()
    params = params or {}
    db_lock, report_lock = threading.Lock(), threading.Lock()
    stop = threading.Event()
    fatal: list[AccuAuthError] = []
    calls_before = client.calls

    def one(number: Normalised) -> None:
        if stop.is_set():
            return
        with db_lock:
            existing = _claim(conn, run_key, number.e164)
        if existing is not None:
            with report_lock:
                if existing == "submitted":
                    report.already_submitted += 1
                else:
                    report.in_doubt.append(number.e164)
            return
        submitted_at = datetime.now(UTC)
        try:
            answer = client.submit(number.digits, callback_url)
        except AccuAuthError as exc:
            with db_lock:
                _fail_claim(conn, run_key, number.e164, exc)
            if isinstance(exc, FATAL_ERRORS):
                stop.set()
                with report_lock:
                    fatal.append(exc)
                return
            with report_lock:
                report.refused[number.e164] = f"{exc.status}: {exc.reason}"
            return
        except BaseException:
            stop.set()  # unknown outcome: the claim stays 'sending' (in doubt), never resent this run
            raise
        with db_lock:
            row = _settle(
                conn,
                number,
                answer,
                run_key=run_key,
                dag_id=dag_id,
                run_id=run_id,
                params=params,
                unit_price=unit_price,
                currency=currency,
                submitted_at=submitted_at,
            )
        with report_lock:
            if row["status"] == "PENDING":
                report.pending += 1
            else:
                report.answered_at_once += 1

    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="accuauth-submit") as pool:
        futures = [pool.submit(one, n) for n in numbers]
        errors = [f.exception() for f in futures]
    report.vendor_calls = client.calls - calls_before
    with db_lock:
        report.max_submission_id = max_submission_id(conn)
        conn.commit()
    if fatal:
        raise fatal[0]
    unexpected = [e for e in errors if e is not None]
    if unexpected:
        raise unexpected[0]
    if report.in_doubt:
        log.warning(
            "%d number(s) were claimed by an earlier attempt of this run whose outcome is unknown; "
            "not resent (no double payment): %s",
            len(report.in_doubt),
            ", ".join(mask_number(n) for n in report.in_doubt[:20]),
        )
    return report
