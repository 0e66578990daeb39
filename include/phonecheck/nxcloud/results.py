"""Results of our batches: how many are in, loading pushes from the inbox, loading query rows.

A number "has a result" when a push for it is in the inbox (``raw.webhook_event``, stored by the
receiver before it answered the vendor) or a row for it is in ``telco.nxcloud_number_check``
(loaded from a push or from the query API). Numbers the vendor refused at submit (2024
``failNumber``) never get one and are not expected.

Pushes carry no ``checkLevel``: rows loaded here get ``check_level`` and ``submission_id`` from
our submission row. Query rows keep the vendor's ``checkLevel`` in ``vendor_check_level``; it
becomes ``check_level`` only when it is a documented level (the vendor's own examples show an
undocumented ``2``). Every query page is stored verbatim in ``raw.vendor_answer`` first, readable
or not, and its typed rows point to it (``vendor_answer_id``). How push and query rows merge:
:mod:`phonecheck.loader` and docs/vendors/nxcloud.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from phonecheck import loader
from phonecheck.parsers import PayloadError
from phonecheck.parsers.nxcloud import DOCUMENTED_CHECK_LEVELS, parse_number_check_push, parse_query_row
from phonecheck.privacy.masking import mask_numbers_in_text

log = logging.getLogger(__name__)
TABLE = "telco.nxcloud_number_check"
ENDPOINT = "nxcloud_number_check"

#: (batch_no, phone) pairs we expect a result for: submitted minus refused at submit.
_EXPECTED_CTE = """
expected AS (
    SELECT s.batch_no, p.phone
    FROM ops.number_check_submission s, unnest(s.phones) AS p(phone)
    WHERE s.vendor = 'nxcloud' AND s.batch_no = ANY(%(batches)s)
      AND s.status IN ('submitted', 'complete')
      AND NOT EXISTS (
          SELECT 1 FROM jsonb_array_elements(COALESCE(s.failed_numbers, '[]'::jsonb)) f
          WHERE f->>'number' = p.phone OR f #>> '{}' = p.phone)
),
have AS (
    SELECT payload->>'batchNo' AS batch_no, payload->>'phone' AS phone
    FROM raw.webhook_event
    WHERE endpoint = 'nxcloud_number_check' AND payload->>'batchNo' = ANY(%(batches)s)
    UNION
    SELECT batch_no, phone FROM telco.nxcloud_number_check WHERE batch_no = ANY(%(batches)s)
)"""

COUNT_RESULTS_SQL = f"""
WITH {_EXPECTED_CTE}
SELECT count(*) AS expected, count(h.phone) AS results
FROM expected e LEFT JOIN have h USING (batch_no, phone)
"""  # noqa: S608 - static text

MISSING_RESULTS_SQL = f"""
WITH {_EXPECTED_CTE}
SELECT e.batch_no, e.phone FROM expected e LEFT JOIN have h USING (batch_no, phone)
WHERE h.phone IS NULL ORDER BY 1, 2
"""  # noqa: S608 - static text


@dataclass(frozen=True)
class ResultCount:
    expected: int
    results: int

    @property
    def done(self) -> bool:
        return self.results >= self.expected

    @property
    def missing(self) -> int:
        return max(self.expected - self.results, 0)


def count_results(conn: psycopg.Connection, batch_nos: Sequence[str]) -> ResultCount:
    expected, results = conn.execute(COUNT_RESULTS_SQL, {"batches": list(batch_nos)}).fetchone()
    return ResultCount(expected, results)


def missing_results(
    conn: psycopg.Connection, batch_nos: Sequence[str], *, limit: int | None = None
) -> list[tuple[str, str]]:
    """The ``(batch_no, phone)`` pairs still without a result (the first ``limit`` of them)."""
    rows = conn.execute(
        MISSING_RESULTS_SQL + " LIMIT %(limit)s", {"batches": list(batch_nos), "limit": limit}
    )
    return [tuple(r) for r in rows]


@dataclass
class LoadSummary:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unreadable: int = 0  # inbox rows the parser refused (kept in the inbox; push processing flags them)

    def add(self, result: loader.LoadResult) -> None:
        self.rows += result.received
        self.inserted += result.inserted
        self.updated += result.updated

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _submission_meta(conn: psycopg.Connection, batch_nos: Iterable[str]) -> dict[str, tuple[int, int | None]]:
    rows = conn.execute(
        "SELECT batch_no, submission_id, check_level FROM ops.number_check_submission "
        "WHERE vendor = 'nxcloud' AND batch_no = ANY(%s)",
        (list(batch_nos),),
    )
    return {batch_no: (submission_id, level) for batch_no, submission_id, level in rows}


def push_rows_from_inbox(
    conn: psycopg.Connection,
    batch_nos: Sequence[str],
    *,
    received_from: datetime | None = None,
    received_to: datetime | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Typed rows for every parsed push of these batches in the inbox, and how many were unreadable."""
    meta = _submission_meta(conn, batch_nos)
    rows: list[dict[str, Any]] = []
    unreadable = 0
    cursor = conn.execute(
        """SELECT event_id, payload, received_at FROM raw.webhook_event
           WHERE endpoint = %s AND parse_status = 'parsed' AND payload->>'batchNo' = ANY(%s)
             AND (%s::timestamptz IS NULL OR received_at >= %s) AND (%s::timestamptz IS NULL OR received_at < %s)
           ORDER BY event_id""",
        (ENDPOINT, list(batch_nos), received_from, received_from, received_to, received_to),
    )
    for event_id, payload, received_at in cursor:
        try:
            row = parse_number_check_push(payload)
        except PayloadError as exc:
            unreadable += 1
            log.warning("inbox event %s not loadable: %s", event_id, mask_numbers_in_text(str(exc)))
            continue
        row["raw_event_id"] = event_id
        row["pushed_at"] = received_at
        submission_id, level = meta.get(row["batch_no"], (None, None))
        row["submission_id"] = submission_id
        row["check_level"] = level
        rows.append(row)
    return rows, unreadable


def load_pushes(conn: psycopg.Connection, batch_nos: Sequence[str]) -> LoadSummary:
    """Upsert every push of these batches from the inbox (idempotent), one batch per transaction:
    memory holds one batch's pushes (at most 5,000 numbers), whatever the run's size."""
    summary = LoadSummary()
    for batch_no in batch_nos:
        rows, unreadable = push_rows_from_inbox(conn, [batch_no])
        summary.unreadable += unreadable
        if rows:
            summary.add(loader.upsert(conn, TABLE, rows))
        conn.commit()
    return summary


def query_rows(
    items: Iterable[Mapping[str, Any]],
    *,
    queried_at: datetime,
    submissions: Mapping[str, tuple[int, int | None]],
) -> tuple[list[dict[str, Any]], list[str]]:
    """Typed rows for query API ``result[]`` items, and one problem (``result[i]: why``) per item
    the parser refuses: those are reported, not loaded."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        try:
            row = parse_query_row(item)
        except PayloadError as exc:
            problems.append(f"result[{index}]: {exc}")
            log.warning("query row not loadable: %s", mask_numbers_in_text(str(exc)))
            continue
        row["queried_at"] = queried_at
        submission_id, level = submissions.get(row["batch_no"], (None, None))
        row["submission_id"] = submission_id
        if row.get("check_level") not in DOCUMENTED_CHECK_LEVELS and level is not None:
            row["check_level"] = level  # undocumented or absent: the level we submitted
        rows.append(row)
    return rows, problems


def _upsert_query_rows(conn: psycopg.Connection, rows: list[dict[str, Any]], unreadable: int) -> LoadSummary:
    summary = LoadSummary(unreadable=unreadable)
    if rows:
        summary.add(loader.upsert(conn, TABLE, rows))
    conn.commit()
    return summary


def store_vendor_answer(
    conn: psycopg.Connection,
    *,
    api: str,
    request_ref: str | None,
    http_status: int | None,
    content_type: str | None,
    body: bytes,
    parse_error: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
) -> int:
    """Keep one vendor answer verbatim in ``raw.vendor_answer`` (committed); returns its id."""
    answer_id = conn.execute(
        """INSERT INTO raw.vendor_answer (vendor, api, request_ref, http_status, content_type, body,
                                          parse_error, dag_id, run_id)
           VALUES ('nxcloud', %s, %s, %s, %s, %s, %s, %s, %s) RETURNING answer_id""",
        (api, request_ref, http_status, content_type, body, parse_error, dag_id, run_id),
    ).fetchone()[0]
    conn.commit()
    return answer_id


def load_query_page(
    conn: psycopg.Connection,
    page: Any,
    *,
    queried_at: datetime,
    dag_id: str | None = None,
    run_id: str | None = None,
) -> LoadSummary:
    """Store one :class:`~phonecheck.nxcloud.client.QueryPage` verbatim, then upsert its rows.

    Rows the parser refuses are named in the stored answer's ``parse_error`` (the page keeps
    them byte for byte) and counted as unreadable; the readable ones are loaded.
    """
    # parsed once: the problems go into the stored answer, the rows then name that answer
    meta = _submission_meta(conn, {str(i.get("batchNo")) for i in page.rows if isinstance(i, Mapping)})
    rows, problems = query_rows(page.rows, queried_at=queried_at, submissions=meta)
    answer_id = store_vendor_answer(
        conn,
        api="number_check_query",
        request_ref=page.request_ref,
        http_status=page.answer.http_status,
        content_type=page.answer.content_type,
        body=page.answer.body,
        parse_error="; ".join(problems)[:4000] or None,
        dag_id=dag_id,
        run_id=run_id,
    )
    for row in rows:
        row["vendor_answer_id"] = answer_id
    return _upsert_query_rows(conn, rows, len(problems))


def mark_complete(conn: psycopg.Connection, batch_nos: Sequence[str]) -> list[str]:
    """Set ``complete`` on submissions whose every expected number has a typed row."""
    done = conn.execute(
        """UPDATE ops.number_check_submission s SET status = 'complete', completed_at = now(), updated_at = now()
           WHERE s.vendor = 'nxcloud' AND s.batch_no = ANY(%s) AND s.status = 'submitted'
             AND NOT EXISTS (
                 SELECT 1 FROM unnest(s.phones) AS p(phone)
                 WHERE NOT EXISTS (SELECT 1 FROM telco.nxcloud_number_check t
                                   WHERE t.batch_no = s.batch_no AND t.phone = p.phone)
                   AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(s.failed_numbers, '[]'::jsonb)) f
                                   WHERE f->>'number' = p.phone OR f #>> '{}' = p.phone))
           RETURNING batch_no""",
        (list(batch_nos),),
    ).fetchall()
    conn.commit()
    return [r[0] for r in done]


def pushes_missing(conn: psycopg.Connection, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Which ``(batch_no, phone)`` pairs have no push in the inbox (the vendor never delivered it)."""
    pairs = sorted(set(pairs))
    if not pairs:
        return []
    batches = sorted({b for b, _ in pairs})
    pushed = {
        (b, p)
        for b, p in conn.execute(
            """SELECT payload->>'batchNo', payload->>'phone' FROM raw.webhook_event
               WHERE endpoint = %s AND payload->>'batchNo' = ANY(%s)""",
            (ENDPOINT, batches),
        )
    }
    return [pair for pair in pairs if pair not in pushed]
