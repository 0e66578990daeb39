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
  → ``in_doubt`` (``in_doubt_since``): the vendor may well have charged. :func:`submit_chunk`
  does not wait: it reports the batch ``in_doubt`` and :mod:`phonecheck.nxcloud.in_doubt`
  settles it by evidence (a result push for that ``batchNo`` in the inbox, a typed row, or the
  query API listing it on any candidate vendor date), in the DAG from the triggerer. Only when
  the documented push window plus our margin (``NxCloudSettings.in_doubt_after_s``, 5 + 5 min
  by default) brought nothing is the same ``batchNo`` submitted again. A task retry that finds
  ``pending`` (a crash between the call and the commit) or ``in_doubt`` makes it ``in_doubt``
  and sends nothing.

A ``submitted``/``complete`` row is never submitted again. ``pending`` and ``in_doubt`` rows count
as "in flight" for the freshness skip, so a second run does not buy them either.

Residual risk, stated in docs/vendors/nxcloud.md: a vendor that charged but neither pushes nor
lists the batch within the window would be paid a second time for that one chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from phonecheck.nxcloud.errors import NxCloudError, NxCloudTransientError
from phonecheck.nxcloud.planning import Chunk
from phonecheck.vendor_errors import Failure, classify

log = logging.getLogger(__name__)
VENDOR = "nxcloud"


#: How many times one run sends a batch whose answers keep getting lost (the first send included).
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
    status: str  # submitted (this call), already_submitted, in_doubt (answer lost: settled later)
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


def mark_in_doubt(conn: psycopg.Connection, batch_no: str) -> None:
    """A ``pending`` row that may have reached the vendor (a crash between the call and the
    commit) becomes ``in_doubt``, its window counted from its last change; an ``in_doubt`` row
    keeps its ``in_doubt_since``."""
    conn.execute(
        """UPDATE ops.number_check_submission
           SET status = 'in_doubt', in_doubt_since = COALESCE(in_doubt_since, updated_at), updated_at = now()
           WHERE vendor = %s AND batch_no = %s AND status IN ('pending', 'in_doubt')""",
        (VENDOR, batch_no),
    )
    conn.commit()


def send_batch(
    conn: psycopg.Connection,
    client: SubmitClient,
    batch_no: str,
    phones: Sequence[str],
    *,
    check_level: int,
    dr_url: str | None,
) -> tuple[str, int]:
    """ONE paid submit of a batch whose row exists, its outcome recorded before returning:
    ``("submitted", refused)``, or ``("in_doubt", 0)`` when the answer was lost after sending.
    Raises (after recording) when nothing reached the vendor (row ``pending`` with
    ``response.not_sent``: a retry sends at once) or the vendor refused (row ``failed``)."""
    conn.execute(  # counted before the call: a crash mid-call still counts the send
        "UPDATE ops.number_check_submission SET send_count = send_count + 1 WHERE vendor = %s AND batch_no = %s",
        (VENDOR, batch_no),
    )
    conn.commit()  # no transaction stays open across the paid call
    try:
        answer = client.submit_numbers(phones, batch_no=batch_no, check_level=check_level, dr_url=dr_url)
    except NxCloudTransientError as exc:
        if classify(exc, paid=True) is not Failure.MAYBE_CHARGED:
            # nothing reached the vendor: it stays pending, and a retry sends at once
            _set_status(conn, batch_no, "pending", response={"not_sent": str(exc)})
            raise
        _set_status(conn, batch_no, "in_doubt", response={"lost_answer": str(exc)})
        log.warning(
            "batch %s: the submit answer was lost after sending (%s); in doubt: its pushes or query rows "
            "are awaited (up to %.1f s, in the triggerer) before it is sent again",
            batch_no, exc, client.settings.in_doubt_after_s,
        )  # fmt: skip
        return "in_doubt", 0
    except NxCloudError as exc:
        _set_status(conn, batch_no, "failed", response={"code": exc.code, "error": str(exc)})
        raise
    data = answer.get("data") if isinstance(answer.get("data"), Mapping) else {}
    refused = _refused_numbers(answer)
    _set_status(
        conn,
        batch_no,
        "submitted",
        response=answer,
        request_id=data.get("messageId") or data.get("requestId"),
        failed_numbers=refused or None,
    )
    return "submitted", len(refused)


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
    """Submit one chunk at most once (see the module docstring). Never waits: a batch whose
    answer is lost, or was possibly sent by an earlier attempt, comes back ``in_doubt`` and is
    settled by :mod:`phonecheck.nxcloud.in_doubt` (in the DAG: the deferrable
    ``settle_in_doubt`` task)."""
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
            # recorded it): nothing is sent before evidence or the window says so
            mark_in_doubt(conn, chunk.batch_no)
            return SubmitOutcome(
                chunk.batch_no, submission_id, chunk.region_code, "in_doubt", existing["phone_count"], 0
            )
        if existing["status"] == "failed":
            _set_status(conn, chunk.batch_no, "pending")
    status, refused = send_batch(
        conn, client, chunk.batch_no, chunk.phones, check_level=chunk.check_level, dr_url=dr_url
    )
    return SubmitOutcome(chunk.batch_no, submission_id, chunk.region_code, status, chunk.size, refused)


def mark_recovered(conn: psycopg.Connection, batch_no: str, how: str) -> None:
    """The vendor has the batch (``how``: ``"push"`` or ``"query"``): ``submitted``, never sent again."""
    log.info(
        "batch %s: an earlier send reached NXCLOUD (seen in its %s); not sending it again", batch_no, how
    )
    evidence = "result push in the inbox" if how == "push" else "batchNo listed by the query API"
    _set_status(conn, batch_no, "submitted", response={"recovered": evidence})


_RUN_COSTS = """SELECT currency, count(*), sum(price) FROM telco.nxcloud_number_check
WHERE batch_no = ANY(%s) GROUP BY currency ORDER BY currency NULLS LAST"""


def run_costs(conn: Any, batch_nos: Sequence[str]) -> tuple[int, dict[str, str]]:
    """The result rows of these batches, and what they cost per currency (rows without a price
    counted, not costed)."""
    rows, costs = 0, {}
    for currency, n, amount in conn.execute(_RUN_COSTS, (list(batch_nos),)):
        rows += n
        if currency is not None:
            costs[currency] = str(amount)
    return rows, costs
