"""``ops.number_check_submission`` rows around the paid submit call, and why a retry never pays twice.

The row is written BEFORE the call, with status ``pending`` and the deterministic ``batchNo``
(:mod:`.planning`), and committed. Then:

* call answered ``code 0`` → ``submitted`` (vendor answer, request id, refused numbers kept);
* the vendor refused (auth, bad request, balance) → ``failed`` with the code and text; a later
  retry calls again (nothing was charged);
* no answer, or an answer that does not say (timeout, 5xx) → the row stays ``pending``.

A retry (the hook's own, or the Airflow task's) that finds a ``pending`` row first asks the query
API whether the vendor knows that ``batchNo``; if it does, the row becomes ``submitted`` without a
second call. Only when the vendor shows no trace of it is the same ``batchNo`` submitted again.
A ``submitted``/``complete`` row is never submitted again. ``pending`` rows count as "in flight"
for the freshness skip, so a second run does not buy them either.

Residual risk, stated: a vendor that accepted a batch but does not list it in the query API yet
(results still being produced) would see the same ``batchNo`` twice; loads stay single-row per
``(batch_no, phone)``, only that one chunk could be charged twice.
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

log = logging.getLogger(__name__)
VENDOR = "nxcloud"


class SubmitClient(Protocol):
    def submit_numbers(
        self, phones: Sequence[str], *, batch_no: str, check_level: int, dr_url: str | None
    ) -> dict[str, Any]: ...

    def batch_known_to_vendor(self, batch_no: str, since: datetime) -> bool: ...


@dataclass(frozen=True)
class SubmitOutcome:
    batch_no: str
    submission_id: int
    region_code: str
    status: str  # submitted (this call), already_submitted, recovered (found at the vendor)
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


def submissions_for(conn: psycopg.Connection, batch_nos: Sequence[str]) -> dict[str, dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM ops.number_check_submission WHERE vendor = %s AND batch_no = ANY(%s)",
            (VENDOR, list(batch_nos)),
        ).fetchall()
    return {row["batch_no"]: row for row in rows}


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
        if existing["status"] == "pending" and client.batch_known_to_vendor(
            chunk.batch_no, since=existing["submitted_at"]
        ):
            log.info("batch %s: an earlier attempt reached NXCLOUD (found via the query API)", chunk.batch_no)
            _set_status(
                conn,
                chunk.batch_no,
                "submitted",
                response={"recovered": "batchNo found through the query API"},
            )
            return SubmitOutcome(
                chunk.batch_no, submission_id, chunk.region_code, "recovered", existing["phone_count"], 0
            )
        if existing["status"] == "failed":
            _set_status(conn, chunk.batch_no, "pending")

    try:
        answer = client.submit_numbers(
            chunk.phones, batch_no=chunk.batch_no, check_level=chunk.check_level, dr_url=dr_url
        )
    except NxCloudTransientError:
        raise  # outcome unknown or not sent: stays pending; a retry probes the vendor first
    except NxCloudError as exc:
        _set_status(conn, chunk.batch_no, "failed", response={"code": exc.code, "error": str(exc)})
        raise
    if answer.get("recovered"):
        _set_status(conn, chunk.batch_no, "submitted", response=answer)
        return SubmitOutcome(chunk.batch_no, submission_id, chunk.region_code, "recovered", chunk.size, 0)
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
