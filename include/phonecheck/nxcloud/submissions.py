"""``ops.number_check_submission`` rows around the paid submit call, and why a retry never pays twice.

The row is written BEFORE the call, with status ``pending`` and the deterministic ``batchNo``
(:mod:`.planning`), and committed. Then:

* call answered ``code 0`` → ``submitted`` (vendor answer, request id, refused numbers kept);
* the vendor refused (auth, bad request, balance) → ``failed`` with the code and text; a later
  retry calls again (nothing was charged);
* nothing reached the vendor (connection refused, HTTP 429, a rate-limit code) → stays
  ``pending`` with ``response.not_sent``; the client retried those itself, and a task retry
  sends at once;
* the answer was lost after the request was sent (5xx, read timeout, connection closed mid-way)
  → ``in_doubt`` (``in_doubt_since``): the vendor may well have charged. The batch is settled by
  evidence: a result push for that ``batchNo`` in the inbox, a typed row, or the query API
  listing it (on any candidate vendor date). Only when the documented push window plus our
  margin (``NxCloudSettings.in_doubt_after_s``, 5 + 5 min by default) brought nothing is the
  same ``batchNo`` submitted again. A task retry that finds ``pending`` or ``in_doubt`` does
  the same (a crash between the call and the commit looks like ``pending``).

A ``submitted``/``complete`` row is never submitted again. ``pending`` and ``in_doubt`` rows count
as "in flight" for the freshness skip, so a second run does not buy them either.

Residual risk, stated in docs/vendors/nxcloud.md: a vendor that charged but neither pushes nor
lists the batch within the window would be paid a second time for that one chunk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from phonecheck.nxcloud.errors import NxCloudError, NxCloudTransientError
from phonecheck.nxcloud.planning import Chunk

log = logging.getLogger(__name__)
VENDOR = "nxcloud"


#: How many times one call of :func:`submit_chunk` sends a batch whose answers keep getting lost.
MAX_SUBMIT_ROUNDS = 3


class SubmitClient(Protocol):
    settings: Any  # NxCloudSettings: in_doubt_after_s

    def submit_numbers(
        self, phones: Sequence[str], *, batch_no: str, check_level: int, dr_url: str | None
    ) -> dict[str, Any]: ...

    def batch_known_to_vendor(self, batch_no: str, since: datetime) -> bool: ...


@dataclass(frozen=True)
class SubmitOutcome:
    batch_no: str
    submission_id: int
    region_code: str
    status: str  # submitted (this call), already_submitted, recovered (an earlier send had landed)
    phone_count: int
    refused: int  # numbers the vendor refused at submit (2024 failNumber)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def get_submission(conn: psycopg.Connection, batch_no: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM ops.number_check_submission WHERE vendor = %s AND batch_no = %s",
            (VENDOR, batch_no),
        ).fetchone()


def expected_listings(conn: psycopg.Connection, batch_nos: Sequence[str]) -> dict[str, tuple[datetime, int]]:
    """Per batch: when it was submitted and how many numbers the query API should list (those
    sent minus those the vendor refused at submit). Counts only: the phone arrays stay in the
    database (5,000 numbers a batch)."""
    rows = conn.execute(
        """SELECT batch_no, submitted_at, phone_count - COALESCE(jsonb_array_length(failed_numbers), 0)
           FROM ops.number_check_submission WHERE vendor = %s AND batch_no = ANY(%s)""",
        (VENDOR, list(batch_nos)),
    ).fetchall()
    return {batch_no: (submitted_at, expected) for batch_no, submitted_at, expected in rows}


#: The batches a run submitted (selected by its run key, ``"<dag_id>/<run_id>"`` as in
#: ``ops.run_intake``), in submit order: what the on-demand DAG's wait, reconcile, load and
#: validate read instead of a batch list handed on through XCom. Parameters: dag_id, run_id.
RUN_BATCHES_SQL = """
SELECT batch_no FROM ops.number_check_submission
WHERE vendor = 'nxcloud' AND dag_id = %(dag_id)s AND run_id = %(run_id)s AND batch_no IS NOT NULL
  AND status IN ('submitted', 'complete')
ORDER BY submission_id"""


def split_run_key(run_key: str) -> dict[str, str]:
    """``{"dag_id", "run_id"}`` of a run key ``"<dag_id>/<run_id>"`` (a dag_id has no ``/``)."""
    dag_id, slash, run_id = str(run_key).partition("/")
    if not (dag_id and slash and run_id):
        raise ValueError(f"not a run key (<dag_id>/<run_id>): {run_key!r}")
    return {"dag_id": dag_id, "run_id": run_id}


def run_batches(conn: psycopg.Connection, run_key: str) -> list[str]:
    """The batches the run submitted and the vendor accepted (:data:`RUN_BATCHES_SQL`)."""
    return [r[0] for r in conn.execute(RUN_BATCHES_SQL, split_run_key(run_key))]


def record_intent(
    conn: psycopg.Connection,
    chunk: Chunk,
    *,
    estimated_cost: Decimal | None,
    currency: str | None,
    params: Mapping[str, Any],
    dag_id: str | None,
    run_id: str | None,
    submitted_by: str | None = None,
) -> int:
    """Insert the ``pending`` row (once per batchNo) and commit; returns its submission_id."""
    conn.execute(
        """INSERT INTO ops.number_check_submission
               (vendor, batch_no, check_level, region_code, phones, phone_count, params, estimated_cost,
                currency, status, dag_id, run_id, submitted_by)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'pending', %s, %s, %s)
           ON CONFLICT (vendor, batch_no) WHERE batch_no IS NOT NULL DO NOTHING""",
        (
            VENDOR,
            chunk.batch_no,
            chunk.check_level,
            chunk.region_code,
            list(chunk.phones),
            chunk.size,
            Jsonb(dict(params)),
            estimated_cost,
            currency,
            dag_id,
            run_id,
            submitted_by,
        ),
    )
    conn.commit()
    row = get_submission(conn, chunk.batch_no)
    assert row is not None
    return row["submission_id"]


def _set_status(conn: psycopg.Connection, batch_no: str, status: str, **fields: Any) -> None:
    sets = ["status = %(status)s", "updated_at = now()"]
    values: dict[str, Any] = {"status": status, "batch_no": batch_no, "vendor": VENDOR}
    for name in ("response", "request_id", "failed_numbers"):
        if name in fields:
            sets.append(f"{name} = %({name})s")
            value = fields[name]
            values[name] = Jsonb(value) if name != "request_id" and value is not None else value
    if status == "submitted":
        sets.append("submitted_at = now()")
    if status == "in_doubt":
        sets.append("in_doubt_since = clock_timestamp()")  # not now(): the tx may be old
    conn.execute(
        f"UPDATE ops.number_check_submission SET {', '.join(sets)} "  # noqa: S608 - fixed column names
        "WHERE vendor = %(vendor)s AND batch_no = %(batch_no)s",
        values,
    )
    conn.commit()


def _refused_numbers(answer: Mapping[str, Any]) -> list[Any]:
    data = answer.get("data") if isinstance(answer.get("data"), Mapping) else {}
    refused = data.get("failNumber") or []
    return list(refused) if isinstance(refused, list) else [refused]


def _batch_has_results(conn: psycopg.Connection, batch_no: str) -> bool:
    """A push for ``batch_no`` in the inbox or a typed row: the vendor has the batch."""
    return bool(
        conn.execute(
            """SELECT EXISTS (SELECT 1 FROM raw.webhook_event
                              WHERE endpoint = 'nxcloud_number_check' AND payload->>'batchNo' = %(b)s)
                   OR EXISTS (SELECT 1 FROM telco.nxcloud_number_check WHERE batch_no = %(b)s)""",
            {"b": batch_no},
        ).fetchone()[0]
    )


def settle_in_doubt(
    conn: psycopg.Connection,
    client: SubmitClient,
    batch_no: str,
    *,
    since: datetime,
    push_check_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Wait for evidence that the vendor has ``batch_no``: ``"push"`` or ``"query"``, or None
    once ``since`` + the push window + our margin passed without any.

    The inbox is read every ``push_check_s``; the query API is asked about every fifth of the
    window (through the shared query limiter), and once more at the end. A query refusal only
    postpones that probe: it never decides anything. If the query API keeps refusing past the
    window, :class:`~phonecheck.nxcloud.errors.BatchInDoubt` is raised (the row stays
    ``in_doubt``; a task retry asks again) rather than sending the batch on no answer.
    """
    from phonecheck.nxcloud.errors import BatchInDoubt, NxCloudError

    window_s = float(client.settings.in_doubt_after_s)
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    deadline = since.timestamp() + window_s
    give_up_at = deadline + window_s  # the final probe may be refused: keep asking this long
    probe_every = max(window_s / 5, push_check_s)
    next_probe = time.time()
    while True:
        conn.rollback()  # see rows other sessions committed since
        if _batch_has_results(conn, batch_no):
            return "push"
        now = time.time()
        final = now >= deadline
        if now >= next_probe or final:
            try:
                known = client.batch_known_to_vendor(batch_no, since)
            except NxCloudError as exc:
                log.warning("batch %s in doubt: query probe refused (%s); waiting on", batch_no, exc)
                if now >= give_up_at:  # never resend on an unanswered question: stay in doubt
                    raise BatchInDoubt(
                        "submit",
                        f"NXCLOUD batch {batch_no} is in doubt and the query API did not answer: not sent "
                        "again; a retry of this task asks again",
                    ) from None
            else:
                if known:
                    return "query"
                if final:
                    return None  # asked after the window, and the vendor does not list it
            next_probe = now + probe_every
        sleep(push_check_s if final else max(0.05, min(push_check_s, deadline - now, next_probe - now)))


def submit_chunk(
    conn: psycopg.Connection,
    client: SubmitClient,
    chunk: Chunk,
    *,
    dr_url: str | None,
    estimated_cost: Decimal | None = None,
    currency: str | None = None,
    params: Mapping[str, Any] | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    submitted_by: str | None = None,
) -> SubmitOutcome:
    """Submit one chunk at most once (see the module docstring)."""
    existing = get_submission(conn, chunk.batch_no)
    if existing is not None and existing["status"] in ("submitted", "complete"):
        if sorted(existing["phones"]) != sorted(chunk.phones):
            log.warning(
                "batch %s was already submitted with other numbers; not submitting again", chunk.batch_no
            )
        return SubmitOutcome(
            chunk.batch_no,
            existing["submission_id"],
            chunk.region_code,
            "already_submitted",
            existing["phone_count"],
            len(existing["failed_numbers"] or []),
        )
    if existing is None:
        submission_id = record_intent(
            conn,
            chunk,
            estimated_cost=estimated_cost,
            currency=currency,
            params=params or {},
            dag_id=dag_id,
            run_id=run_id,
            submitted_by=submitted_by,
        )
    else:
        submission_id = existing["submission_id"]
        never_sent = (existing["response"] or {}).get("not_sent") is not None
        if existing["status"] == "in_doubt" or (existing["status"] == "pending" and not never_sent):
            # an earlier attempt may have reached the vendor (lost answer, or a crash before we
            # recorded it): wait for evidence before anything is sent again
            since = existing["in_doubt_since"] or existing["updated_at"]
            if (how := settle_in_doubt(conn, client, chunk.batch_no, since=since)) is not None:
                return _recovered(conn, chunk, submission_id, existing["phone_count"], how)
        if existing["status"] == "failed":
            _set_status(conn, chunk.batch_no, "pending")

    for round_no in range(1, MAX_SUBMIT_ROUNDS + 1):
        conn.commit()  # no transaction stays open across the paid call
        try:
            answer = client.submit_numbers(
                chunk.phones, batch_no=chunk.batch_no, check_level=chunk.check_level, dr_url=dr_url
            )
        except NxCloudTransientError as exc:
            if not exc.ambiguous:  # nothing reached the vendor: stays pending, a retry sends at once
                _set_status(conn, chunk.batch_no, "pending", response={"not_sent": str(exc)})
                raise
            _set_status(conn, chunk.batch_no, "in_doubt", response={"lost_answer": str(exc)})
            log.warning(
                "batch %s: the submit answer was lost after sending (%s); in doubt: waiting up to %.1f s "
                "for its pushes or query rows before sending it again",
                chunk.batch_no, exc, client.settings.in_doubt_after_s,
            )  # fmt: skip
            row = get_submission(conn, chunk.batch_no)
            if (
                how := settle_in_doubt(conn, client, chunk.batch_no, since=row["in_doubt_since"])
            ) is not None:
                return _recovered(conn, chunk, submission_id, chunk.size, how)
            if round_no == MAX_SUBMIT_ROUNDS:
                raise
            log.warning("batch %s: no trace at the vendor after the window; sending it again", chunk.batch_no)
            continue
        except NxCloudError as exc:
            _set_status(conn, chunk.batch_no, "failed", response={"code": exc.code, "error": str(exc)})
            raise
        break
    data = answer.get("data") if isinstance(answer.get("data"), Mapping) else {}
    refused = _refused_numbers(answer)
    _set_status(
        conn,
        chunk.batch_no,
        "submitted",
        response=answer,
        request_id=data.get("messageId") or data.get("requestId"),
        failed_numbers=refused or None,
    )
    return SubmitOutcome(
        chunk.batch_no, submission_id, chunk.region_code, "submitted", chunk.size, len(refused)
    )


def _recovered(
    conn: psycopg.Connection, chunk: Chunk, submission_id: int, phone_count: int, how: str
) -> SubmitOutcome:
    log.info(
        "batch %s: an earlier send reached NXCLOUD (seen in its %s); not sending it again",
        chunk.batch_no,
        how,
    )
    evidence = "result push in the inbox" if how == "push" else "batchNo listed by the query API"
    _set_status(conn, chunk.batch_no, "submitted", response={"recovered": evidence})
    return SubmitOutcome(chunk.batch_no, submission_id, chunk.region_code, "recovered", phone_count, 0)
