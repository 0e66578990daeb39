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

#: (batch_no, phone) pairs we expect a result for: submitted minus refused at submit. The refused
#: numbers of a submission (2024 ``failNumber``: objects with ``number``, or bare numbers) are read
#: into one array per batch, not once per phone of it.
_EXPECTED_CTE = """
expected AS (
    SELECT s.batch_no, p.phone
    FROM ops.number_check_submission s
    CROSS JOIN LATERAL (
        SELECT array_agg(v.number) FROM jsonb_array_elements(COALESCE(s.failed_numbers, '[]'::jsonb)) f,
             LATERAL (VALUES (f->>'number'), (f #>> '{}')) AS v(number)
        WHERE v.number IS NOT NULL) AS refused(numbers)
    CROSS JOIN LATERAL unnest(s.phones) AS p(phone)
    WHERE s.vendor = 'nxcloud' AND s.batch_no = ANY(%(batches)s)
      AND s.status IN ('submitted', 'complete')
      AND (p.phone = ANY(refused.numbers)) IS NOT TRUE
)"""

#: Every expected pair, each number with a push in the inbox and each typed row, tallied per
#: (batch, phone) in one aggregate: how many times the pair is expected, and whether it has a
#: result. No join, so no plan the planner can pick on a wrong guess (a freshly filled inbox
#: partition or typed table has no statistics yet when a run asks, and the numbers of a batch come
#: from unnest(), which it takes for 10) can match every number against every push of its batch:
#: the cost stays one pass over the run's numbers, pushes and rows.
_TALLY_CTE = """
pairs AS (
    SELECT batch_no, phone, 1 AS expected, false AS has FROM expected
    UNION ALL
    SELECT payload->>'batchNo', payload->>'phone', 0, true FROM raw.webhook_event
    WHERE endpoint = 'nxcloud_number_check' AND payload->>'batchNo' = ANY(%(batches)s)
      AND payload->>'phone' IS NOT NULL
    UNION ALL
    SELECT batch_no, phone, 0, true FROM telco.nxcloud_number_check WHERE batch_no = ANY(%(batches)s)
),
tally AS (
    SELECT batch_no, phone, sum(expected) AS expected, bool_or(has) AS has FROM pairs GROUP BY batch_no, phone
)"""

COUNT_RESULTS_SQL = f"""
WITH {_EXPECTED_CTE},
{_TALLY_CTE}
SELECT COALESCE(sum(expected), 0) AS expected, COALESCE(sum(expected) FILTER (WHERE has), 0) AS results
FROM tally
"""  # noqa: S608 - static text

#: One row per expected pair without a result (a number listed twice in a batch: twice).
MISSING_RESULTS_SQL = f"""
WITH {_EXPECTED_CTE},
{_TALLY_CTE}
SELECT t.batch_no, t.phone FROM tally t CROSS JOIN LATERAL generate_series(1, t.expected) AS n
WHERE t.expected > 0 AND NOT t.has ORDER BY 1, 2
"""  # noqa: S608 - static text

#: Per batch, how many expected numbers still lack a result (batches lacking none are not listed).
MISSING_COUNTS_SQL = f"""
WITH {_EXPECTED_CTE},
{_TALLY_CTE}
SELECT batch_no, sum(expected) FROM tally WHERE expected > 0 AND NOT has GROUP BY batch_no
"""  # noqa: S608 - static text

_OURS_SQL = """
SELECT batch_no FROM ops.number_check_submission
WHERE vendor = 'nxcloud' AND batch_no = ANY(%(batches)s) AND status IN ('submitted', 'complete')"""


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
    return ResultCount(int(expected), int(results))


def missing_results(
    conn: psycopg.Connection, batch_nos: Sequence[str], *, limit: int | None = None
) -> list[tuple[str, str]]:
    """The ``(batch_no, phone)`` pairs still without a result (the first ``limit`` of them)."""
    rows = conn.execute(
        MISSING_RESULTS_SQL + " LIMIT %(limit)s", {"batches": list(batch_nos), "limit": limit}
    )
    return [tuple(r) for r in rows]


def missing_counts(conn: psycopg.Connection, batch_nos: Sequence[str]) -> dict[str, int | None]:
    """Per batch, how many of its numbers still have no result, in one statement for the whole
    list (a run's 200 batches, or a day's): None for a batch we hold no accepted submission
    for, so what it lacks is not known."""
    args = {"batches": list(batch_nos)}
    counts: dict[str, int | None] = dict.fromkeys(batch_nos)
    counts.update((batch_no, 0) for (batch_no,) in conn.execute(_OURS_SQL, args))
    counts.update((batch_no, int(missing)) for batch_no, missing in conn.execute(MISSING_COUNTS_SQL, args))
    return counts


def missing_numbers(conn: psycopg.Connection, batch_no: str) -> frozenset[str] | None:
    """The numbers of one batch we submitted that still have no result (empty: every push or
    query row is in); None when we hold no accepted submission for it, so what it lacks is
    not known."""
    ours = conn.execute(
        "SELECT 1 FROM ops.number_check_submission WHERE vendor = 'nxcloud' AND batch_no = %s "
        "AND status IN ('submitted', 'complete')",
        (batch_no,),
    ).fetchone()
    if ours is None:
        return None
    return frozenset(phone for _, phone in missing_results(conn, [batch_no]))


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


def merge_results(conn: psycopg.Connection, rows: Sequence[dict[str, Any]]) -> loader.LoadResult:
    """The one way a result reaches ``telco.nxcloud_number_check``, in the caller's transaction.

    Every writer (the on-demand ``load``, the push processing DAG, ``reconcile`` and the daily
    sync) hands its typed rows here: each gets ``submission_id`` and, where the answer carries no
    documented level, ``check_level`` from our submission, then the loader's number-check merge
    rule upserts them (:mod:`phonecheck.loader`). The rule ranks answers (a push above a query
    row; the first push; the latest query row), so the final row is the same whatever order
    pushes, query rows and daily syncs arrive in.
    """
    meta = _submission_meta(conn, {str(r["batch_no"]) for r in rows})
    for row in rows:
        submission_id, level = meta.get(str(row["batch_no"]), (None, None))
        if row.get("submission_id") is None:
            row["submission_id"] = submission_id
        if row.get("check_level") not in DOCUMENTED_CHECK_LEVELS and level is not None:
            row["check_level"] = level  # pushes carry none; query rows may carry an undocumented one
    return loader.upsert(conn, TABLE, rows)


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
            summary.add(merge_results(conn, rows))
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
        summary.add(merge_results(conn, rows))
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
