"""Validate the rows a pipeline just loaded, store every result, render Data Docs.

``validate_rows`` selects the rows of one ``telco`` table whose ``key_column`` is in
``key_values`` and runs the table's suite (:mod:`phonecheck.quality.suites`) with Great
Expectations, writes one ``dq.validation_result`` row per expectation, and renders the Data Docs
page of the run. It never changes or deletes the validated rows: failing rows stay for inspection.

The jobs live in their own modules: result types and storage in :mod:`~phonecheck.quality.results`,
reading rows in :mod:`~phonecheck.quality.rows`, the expectations' SQL forms in
:mod:`~phonecheck.quality.sql_forms` and the scan built from them in :mod:`~phonecheck.quality.scan`,
Great Expectations itself in :mod:`~phonecheck.quality.gx`. This module orchestrates them.

Fast path (default). Reading 100,000 rows into pandas and letting GX scan them all cost several
times the load itself (bench/quality_bench.py). Instead, SQL generated from the same suite
(:func:`~phonecheck.quality.scan.scan_rows`) counts every expectation's unexpected rows in PostgreSQL, in one pass for the
row-level checks and one hashed GROUP BY per uniqueness check, and returns only the *suspect*
rows (a superset of the unexpected ones). While PostgreSQL scans, GX validates the first
:data:`~phonecheck.quality.rows.CLEAN_SAMPLE_ROWS` rows read (:func:`sample_rows`) in a second thread; when the scan found
suspect rows, GX validates them with the sample. For row-level expectations and for uniqueness
(all rows of a duplicated group are suspect) GX's unexpected counts and samples are then those of
the whole set, and they are checked against the SQL counts; any disagreement logs a warning and
GX validates every row instead. The stored element count is the whole set's; the Data Docs page
shows the rows GX saw. ``full_gx=True`` always hands GX every row (one ``= ANY(...)`` query into
a DataFrame: it works over the embedded warehouse's unix socket, which GX's own ``add_postgres``
rejects).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

from phonecheck.quality.results import (
    SAMPLE_SIZE,
    ValidationSummary,
    data_docs_dir,
    describe_filter,
    new_validation_run_id,
    store_results,
)
from phonecheck.quality.rows import fetch_rows, frame_from_rows, sample_rows
from phonecheck.quality.scan import SqlScan, scan_rows
from phonecheck.quality.suites import TableSuite, suite_for

log = logging.getLogger(__name__)


def _gx_summary(
    suite: TableSuite, frame: Any, *, run_id: str, row_filter: str, sample_size: int
) -> tuple[ValidationSummary, Any]:
    """GX over ``frame``: the summary (no Data Docs yet) and the run to render them from."""
    from phonecheck.quality.gx import outcomes, run_validation

    run = run_validation(suite, frame, sample_size=sample_size)
    summary = ValidationSummary(
        validation_run_id=run_id,
        table=suite.table,
        suite_name=suite.name,
        row_filter=row_filter,
        element_count=len(frame),
        outcomes=outcomes(run.result, sample_size),
    )
    return summary, run


def _with_docs(
    summary: ValidationSummary, run: Any, suite: TableSuite, docs: Path | None
) -> ValidationSummary:
    if docs is None:
        return summary
    from phonecheck.quality.gx import render_data_docs

    page = render_data_docs(run, suite, docs, run_name=summary.validation_run_id)
    return dataclasses.replace(summary, data_docs_path=page)


def validate_frame(
    table: str,
    frame: Any,
    *,
    validation_run_id: str | None = None,
    row_filter: str = "rows given",
    data_docs: Path | None = None,
    sample_size: int = SAMPLE_SIZE,
    suite: TableSuite | None = None,
) -> ValidationSummary:
    """Run ``table``'s suite over a DataFrame built by :func:`frame_from_rows` (e.g. parsed rows
    before a load). Stores nothing; renders Data Docs into ``data_docs`` when given."""
    suite = suite or suite_for(table)
    run_id = validation_run_id or new_validation_run_id(table)
    summary, run = _gx_summary(suite, frame, run_id=run_id, row_filter=row_filter, sample_size=sample_size)
    return _with_docs(summary, run, suite, data_docs)


def validate_records(table: str, rows: Iterable[Mapping[str, Any]], **kwargs: Any) -> ValidationSummary:
    """Validate parser output (dicts keyed by column) without touching the warehouse."""
    suite = suite_for(table)
    return validate_frame(table, frame_from_rows(suite, rows), suite=suite, **kwargs)


def validate_rows(
    dsn: str,
    table: str,
    *,
    key_column: str,
    key_values: Sequence[str],
    context: Mapping[str, str] | None = None,
    data_docs: bool | Path = True,
    sample_size: int = SAMPLE_SIZE,
    full_gx: bool = False,
) -> ValidationSummary:
    """Validate the rows of ``table`` whose ``key_column`` is in ``key_values``.

    By default PostgreSQL first counts every expectation's unexpected rows in one query
    (:func:`scan_rows`) and Great Expectations validates only the suspect rows plus a fixed clean
    sample; the stored counts are GX's, which must equal the SQL counts (a disagreement logs a
    warning and the whole set is validated by GX). ``full_gx=True`` hands GX every row.

    Stores one ``dq.validation_result`` row per expectation (``context`` supplies ``dag_id``,
    ``task_id`` and ``run_id``/``airflow_run_id``), renders Data Docs (``data_docs=True``: into
    :func:`data_docs_dir`; a path: there; ``False``: not at all) and returns the summary.
    Never deletes or changes the validated rows.
    """
    suite = suite_for(table)
    key_values = list(dict.fromkeys(key_values))  # order kept, repeats dropped
    docs = data_docs_dir() if data_docs is True else (Path(data_docs) if data_docs else None)
    run_id = new_validation_run_id(table)
    row_filter = describe_filter(key_column, key_values)

    def gx_over(rows: Sequence[tuple[Any, ...]]) -> tuple[ValidationSummary, Any]:
        frame = frame_from_rows(suite, rows)
        return _gx_summary(suite, frame, run_id=run_id, row_filter=row_filter, sample_size=sample_size)

    with psycopg.connect(dsn, autocommit=True) as conn:
        summary = None
        if not full_gx:
            sample = sample_rows(conn, suite, key_column, key_values)
            # GX validates the clean sample in a second thread while PostgreSQL scans every row;
            # the scan waits in this thread, so an interrupt or a task timeout cancels the query
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="quality-gx") as pool:
                validating = pool.submit(gx_over, sample)
                scan = scan_rows(conn, suite, key_column, key_values)
                subset, run = validating.result()
            # Suspect rows join the sample; the scan's version of a row replaces the sample's (the
            # sample was read in an earlier snapshot). A sample row that turned bad is suspect, so
            # replaced; one that turned good makes GX count more than SQL: full GX below.
            width = len(suite.key)
            rows = {row[:width]: row for row in sample}
            changed = False
            for row in scan.rows:
                if rows.get(row[:width]) != row:
                    rows[row[:width]] = row
                    changed = True
            if changed:
                subset, run = gx_over(list(rows.values()))
            summary = _with_full_counts(subset, suite, scan)
        if summary is None:  # asked for, or the SQL scan and GX disagreed on a count
            summary, run = gx_over(fetch_rows(conn, suite, key_column, key_values))
        summary = _with_docs(summary, run, suite, docs)
        store_results(conn, summary, context)
    (log.info if summary.success else log.warning)("%s", summary.describe())
    return summary


def _with_full_counts(
    subset: ValidationSummary, suite: TableSuite, scan: SqlScan
) -> ValidationSummary | None:
    """GX's outcomes on the suspect rows, with the element count of the whole set; None when a
    GX count differs from the SQL count (then the SQL form of a check is wrong: trust GX).

    GX reports results in its own order (grouped by the metrics it computes), so SQL counts are
    matched by expectation type, column and order of appearance, not by position."""
    sql_counts: dict[tuple[str, str | None], list[int]] = {}
    for check, count in zip(suite.checks, scan.unexpected_counts, strict=True):
        sql_counts.setdefault((check.expectation_type, check.column_name), []).append(count)
    outcomes = []
    for outcome in subset.outcomes:
        counts = sql_counts.get((outcome.expectation_type, outcome.column_name))
        sql_count = counts.pop(0) if counts else None
        if sql_count is None or (outcome.unexpected_count or 0) != sql_count:
            log.warning(
                "%s: %s on %s: GX counted %s unexpected among the suspect rows, SQL %s over all rows; "
                "validating every row with GX",
                suite.table,
                outcome.expectation_type,
                outcome.column_name,
                outcome.unexpected_count,
                sql_count,
            )
            return None
        outcomes.append(dataclasses.replace(outcome, element_count=scan.element_count))
    if any(sql_counts.values()):  # a check GX did not report
        return None
    return dataclasses.replace(subset, element_count=scan.element_count, outcomes=outcomes)
