"""Paid AccuAuth submits with bounded concurrency, paid at most once per number and run.

Numbers whose country code the connection does not allow (AccuAuth Mexico takes ``52`` numbers
only) are rejected offline with their reason (``ops.rejected_number``) and never sent.

Each other number goes through claim → call → settle:

1. **claim** (before the call): a row in ``ops.accuauth_submit_claim`` keyed on (run, number),
   committed. A number already claimed in this run is not sent again: ``submitted`` means we hold
   its answer; ``sending`` (an earlier attempt died between the call and the settle) and
   ``in_doubt`` mean the vendor may have charged: reported as *in doubt* and not resent in this
   run. Only a ``failed`` claim (the vendor refused, or the call surely never reached it) is
   claimed again.
2. **call** ``/check/phone_number/o1`` (with the receiver's ``callback`` URL when configured).
   The call is never retried once it may have reached the vendor (docs/vendors/accuauth.md).
3. **settle** in one transaction: the verbatim answer (``raw.vendor_answer``), the
   ``ops.number_check_submission`` row (``task_id`` = vendor task id, or the request id when
   answered at once), the ``telco.accuauth_phone_check`` row (``PENDING`` with ``expires_at`` =
   submitted + 24 h, or the result) and the claim. A lost answer (read timeout, dropped
   connection, 5xx) makes the claim ``in_doubt`` until ``doubt_until``: the wait of the run
   watches for the vendor's callback carrying that number (see :mod:`phonecheck.accuauth.store`).

Fatal vendor errors (UNAUTHORIZED, KEY_EXPIRED, NO_PERMISSION, OUT_OF_QUOTA, NOT_FOUND) stop the
run: numbers not yet started are not sent and the error is raised after in-flight calls settle.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from phonecheck.accuauth.api import (
    FATAL_ERRORS,
    AccuAuthClient,
    AccuAuthError,
    AccuAuthOutcomeUnknown,
    Answer,
    RawAnswer,
)
from phonecheck.accuauth.store import TABLE, TASK_TTL, VENDOR, insert_raw_answers, max_submission_id
from phonecheck.loader import upsert
from phonecheck.numbers import Normalised, Rejected
from phonecheck.parsers.accuauth import parse_submit_response

#: AccuAuth Mexico's submit takes numbers with the 52 prefix only (docs/vendors/accuauth.md).
DEFAULT_ALLOWED_COUNTRY_CODES = ("52",)
#: How long a run waits for the callback of a submit whose answer was lost. Pending checks in
#: practice finish within minutes; the task itself is valid 24 h (docs/vendors/accuauth.md).
DEFAULT_DOUBT_WINDOW = timedelta(minutes=30)


def parse_country_codes(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"52"``, ``"52,57"``, ``["52"]`` or None (the default) → ``("52",)``; ``+`` is dropped."""
    if value is None or value == "":
        return DEFAULT_ALLOWED_COUNTRY_CODES
    items = value.split(",") if isinstance(value, str) else list(value)
    codes = tuple(str(i).strip().lstrip("+") for i in items if str(i).strip())
    bad = [c for c in codes if not c.isdigit()]
    if bad or not codes:
        raise ValueError(f"allowed_country_codes must be calling codes such as 52, not {value!r}")
    return codes


def split_by_country(
    numbers: Sequence[Normalised], allowed: Sequence[str]
) -> tuple[list[Normalised], list[Rejected]]:
    """The numbers AccuAuth may receive, and the others with the reason they are never sent."""
    keep: list[Normalised] = []
    rejected: list[Rejected] = []
    allowed_text = ", ".join(f"+{c}" for c in allowed)
    for n in numbers:
        if n.country_code in allowed:
            keep.append(n)
        else:
            reason = f"country code +{n.country_code} not accepted by this AccuAuth connection (allowed: {allowed_text})"
            rejected.append(Rejected(n.raw, reason))
    return keep, rejected


log = logging.getLogger(__name__)


@dataclass
class SubmitReport:
    """What one submit step did (JSON-serialisable via :meth:`summary`)."""

    answered_at_once: int = 0
    pending: int = 0
    already_submitted: int = 0  # settled by an earlier attempt of the same run
    skipped_in_doubt: int = 0  # in doubt from an earlier run inside the lookback: maybe paid already
    in_doubt: list[str] = field(default_factory=list)  # answer lost, or claimed earlier with outcome unknown
    refused: dict[str, str] = field(default_factory=dict)  # e164 -> vendor status: reason
    vendor_calls: int = 0
    max_submission_id: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "answered_at_once": self.answered_at_once,
            "pending": self.pending,
            "already_submitted": self.already_submitted,
            "skipped_in_doubt": self.skipped_in_doubt,
            "in_doubt": len(self.in_doubt),
            "refused": len(self.refused),
            "vendor_calls": self.vendor_calls,
            "max_submission_id": self.max_submission_id,
        }


def _claim(
    conn: psycopg.Connection,
    run_key: str,
    e164: str,
    dag_id: str | None,
    run_id: str | None,
    doubt_window: timedelta,
) -> str | None:
    """Claim a number for this run; returns None when claimed now, else the existing state.

    A claim left ``sending`` by an attempt that died mid-call becomes ``in_doubt`` here, so the
    wait of the run watches for its callback like for any other lost answer."""
    row = conn.execute(
        """INSERT INTO ops.accuauth_submit_claim AS c (run_key, e164, dag_id, run_id) VALUES (%s, %s, %s, %s)
           ON CONFLICT (run_key, e164) DO UPDATE
             SET state = 'sending', attempts = c.attempts + 1, error = NULL, vendor_status = NULL,
                 updated_at = now()
             WHERE c.state = 'failed'
           RETURNING state""",
        (run_key, e164, dag_id, run_id),
    ).fetchone()
    conn.commit()
    if row is not None:
        return None
    existing = conn.execute(
        """UPDATE ops.accuauth_submit_claim
           SET state = CASE WHEN state = 'sending' THEN 'in_doubt' ELSE state END,
               vendor_status = CASE WHEN state = 'sending' THEN 'UNKNOWN' ELSE vendor_status END,
               error = CASE WHEN state = 'sending' THEN 'an earlier attempt stopped during the call' ELSE error END,
               doubt_until = CASE WHEN state = 'sending' THEN now() + %s ELSE doubt_until END
           WHERE run_key = %s AND e164 = %s RETURNING state""",
        (doubt_window, run_key, e164),
    ).fetchone()
    conn.commit()
    return existing[0]


def _store_raw(
    conn: psycopg.Connection, raws: Sequence[RawAnswer], dag_id: str | None, run_id: str | None
) -> int | None:
    """Keep the answers of one call verbatim; returns the id of the last one."""
    ids = insert_raw_answers(conn, raws, dag_id=dag_id, run_id=run_id)
    return ids[-1] if ids else None


def _close_claim(
    conn: psycopg.Connection,
    run_key: str,
    e164: str,
    exc: AccuAuthError,
    raws: Sequence[RawAnswer],
    *,
    dag_id: str | None,
    run_id: str | None,
    doubt_window: timedelta | None = None,
) -> None:
    """A call without a usable answer: ``failed`` (refused, or never reached the vendor: may be
    claimed again), or, with ``doubt_window``, ``in_doubt`` (the answer was lost after the request
    went out: the vendor may have charged; the run waits that long for its callback)."""
    with conn.transaction():
        answer_id = _store_raw(conn, raws, dag_id, run_id)
        conn.execute(
            """UPDATE ops.accuauth_submit_claim SET state = %s, vendor_status = %s, error = %s,
               vendor_answer_id = %s, doubt_until = now() + %s, updated_at = now()
               WHERE run_key = %s AND e164 = %s""",
            (
                "failed" if doubt_window is None else "in_doubt",
                exc.status,
                (exc.reason or "")[:500],
                answer_id,
                doubt_window,
                run_key,
                e164,
            ),
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
    raws: Sequence[RawAnswer],
) -> dict[str, Any]:
    row = parse_submit_response(answer.payload, number.digits, submitted_at)
    pending = row["status"] == "PENDING"
    if pending:
        row["expires_at"] = submitted_at + TASK_TTL
    with conn.transaction():
        answer_id = _store_raw(conn, raws, dag_id, run_id)
        row["vendor_answer_id"] = answer_id
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
            """UPDATE ops.accuauth_submit_claim SET state = 'submitted', submission_id = %s,
               vendor_answer_id = %s, updated_at = now() WHERE run_key = %s AND e164 = %s""",
            (submission_id, answer_id, run_key, number.e164),
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
    doubt_window: timedelta = DEFAULT_DOUBT_WINDOW,
    doubt_lookback: timedelta | None = None,
) -> SubmitReport:
    """Submit ``numbers`` (at most ``max_concurrency`` calls in flight) and record every answer.

    ``numbers`` must already be limited to the allowed country codes (:func:`split_by_country`).
    A number left in doubt by another run within ``doubt_lookback`` (the freshness window) is not
    bought again: that run may have paid for it.
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
            existing = _claim(conn, run_key, number.e164, dag_id, run_id, doubt_window)
        if existing is not None:
            with report_lock:
                if existing == "submitted":
                    report.already_submitted += 1
                else:
                    report.in_doubt.append(number.e164)
            return
        submitted_at = datetime.now(UTC)
        raws: list[RawAnswer] = []
        try:
            answer = client.submit(number.digits, callback_url, on_answer=raws.append)
        except AccuAuthOutcomeUnknown as exc:
            # never resent: the vendor may have charged; its callback (if any) settles it
            with db_lock:
                _close_claim(
                    conn,
                    run_key,
                    number.e164,
                    exc,
                    raws,
                    dag_id=dag_id,
                    run_id=run_id,
                    doubt_window=doubt_window,
                )
            with report_lock:
                report.in_doubt.append(number.e164)
            return
        except AccuAuthError as exc:
            with db_lock:
                _close_claim(conn, run_key, number.e164, exc, raws, dag_id=dag_id, run_id=run_id)
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
                raws=raws,
            )
        with report_lock:
            if row["status"] == "PENDING":
                report.pending += 1
            else:
                report.answered_at_once += 1

    if doubt_lookback is not None and numbers:
        doubtful = {
            r[0]
            for r in conn.execute(
                """SELECT e164 FROM ops.accuauth_submit_claim
                   WHERE state = 'in_doubt' AND run_key <> %s AND e164 = ANY(%s) AND claimed_at > now() - %s""",
                (run_key, [n.e164 for n in numbers], doubt_lookback),
            )
        }
        conn.commit()
        report.skipped_in_doubt = sum(1 for n in numbers if n.e164 in doubtful)
        numbers = [n for n in numbers if n.e164 not in doubtful]
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
    return report
