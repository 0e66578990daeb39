"""Validate the rows a pipeline just loaded, store every result, render Data Docs.

``validate_rows`` reads only the rows of one ``telco`` table whose ``key_column`` is in
``key_values`` (one parameterised ``= ANY(%s)`` query into a pandas DataFrame: fast, and it works
over the embedded warehouse's unix socket, which GX's own ``add_postgres`` rejects), runs the
table's suite (:mod:`phonecheck.quality.suites`) with Great Expectations, writes one
``dq.validation_result`` row per expectation, and renders the Data Docs page of the run.
It never changes or deletes the validated rows: failing rows stay for inspection.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from phonecheck.quality.suites import TEXT_SUFFIX, Check, TableSuite, suite_for

log = logging.getLogger(__name__)

#: At most this many unexpected rows are kept per expectation.
SAMPLE_SIZE = 20
DATA_DOCS_ENV = "PHONECHECK_DATA_DOCS_DIR"


def data_docs_dir() -> Path:
    """Where Data Docs HTML goes: ``$PHONECHECK_DATA_DOCS_DIR``, else ``.local/data_docs/``."""
    configured = os.environ.get(DATA_DOCS_ENV)
    if configured:
        return Path(configured)
    from phonecheck.warehouse import local_dir

    return local_dir() / "data_docs"


class FailedExpectation(NamedTuple):
    expectation: str
    column: str | None
    unexpected_count: int | None
    sample: list[Any]


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result, shaped like a ``dq.validation_result`` row."""

    expectation_type: str
    column_name: str | None
    kwargs: dict[str, Any]
    success: bool
    element_count: int | None
    unexpected_count: int | None
    unexpected_sample: list[Any]


@dataclass(frozen=True)
class ValidationSummary:
    validation_run_id: str
    table: str
    suite_name: str
    row_filter: str
    element_count: int
    outcomes: list[ExpectationOutcome] = field(repr=False)
    data_docs_path: Path | None = None

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failed(self) -> list[FailedExpectation]:
        return [
            FailedExpectation(o.expectation_type, o.column_name, o.unexpected_count, o.unexpected_sample)
            for o in self.outcomes
            if not o.success
        ]

    def describe(self, max_sample: int = 3) -> str:
        """A readable report: what was validated and every failed expectation with examples."""
        head = (
            f"{self.table}: {len(self.outcomes)} expectations on {self.element_count} rows "
            f"({self.row_filter}), validation run {self.validation_run_id}: "
            + ("all passed" if self.success else f"{len(self.failed)} FAILED")
        )
        lines = [head]
        for failed in self.failed:
            sample = ", ".join(_short(s) for s in failed.sample[:max_sample])
            lines.append(
                f"  - {failed.expectation} on {failed.column}: {failed.unexpected_count} unexpected"
                + (f", e.g. {sample}" if sample else "")
            )
        if self.data_docs_path:
            lines.append(f"  Data Docs: {self.data_docs_path}")
        lines.append(f"  Every result: dq.validation_result, validation_run_id {self.validation_run_id}")
        return "\n".join(lines)


def _short(value: Any, limit: int = 120) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- reading rows ------------------------------------------------------------------------------


def _column_types(conn: psycopg.Connection, table: str) -> dict[str, str]:
    schema, name = table.split(".", 1)
    rows = conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod)
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped""",
        (schema, name),
    ).fetchall()
    if not rows:
        raise ValueError(f"{table} does not exist: are the warehouse migrations applied?")
    return dict(rows)


def fetch_rows(
    conn: psycopg.Connection, suite: TableSuite, key_column: str, key_values: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """The suite's columns of the rows whose ``key_column`` is in ``key_values``."""
    types = _column_types(conn, suite.table)
    if key_column not in types:
        raise ValueError(f"{suite.table} has no column {key_column!r}")
    missing = [c for c in suite.columns if c not in types]
    if missing:
        raise ValueError(f"{suite.table} lacks column(s) {missing} the suite checks")
    schema, name = suite.table.split(".", 1)
    query = sql.SQL("SELECT {cols} FROM {table} WHERE {key} = ANY(%s::{array_type})").format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in suite.columns),
        table=sql.Identifier(schema, name),
        key=sql.Identifier(key_column),
        # the type name comes from the catalogue, not from the caller
        array_type=sql.SQL(types[key_column] + "[]"),
    )
    with conn.cursor(binary=True) as cur:
        cur.execute(query, (list(key_values),))
        return cur.fetchall()


def frame_from_rows(suite: TableSuite, rows: Iterable[Sequence[Any]] | Iterable[Mapping[str, Any]]) -> Any:
    """A DataFrame with the suite's columns: text/int/numeric kept as Python objects (ints stay
    ints next to NULLs, so samples read ``999`` not ``999.0``), timestamps as naive UTC datetimes, and
    a text rendering of each money column for the 4-decimals check."""
    import pandas as pd

    rows = list(rows)
    columns = suite.columns
    if rows and isinstance(rows[0], Mapping):
        rows = [tuple(r.get(c) for c in columns) for r in rows]
    values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    data: dict[str, Any] = {}
    for column, column_values in zip(columns, values, strict=True):
        if column in suite.timestamp_columns:
            # naive UTC: GX reads tz-aware columns through a deprecated pandas path (warnings)
            data[column] = pd.to_datetime(pd.Series(column_values, dtype=object), utc=True).dt.tz_convert(
                None
            )
        else:
            data[column] = pd.Series(column_values, dtype=object)
    for column in suite.money_columns:
        if column in data:
            data[column + TEXT_SUFFIX] = pd.Series(
                [None if v is None else format(Decimal(v), "f") for v in data[column]], dtype=object
            )
    return pd.DataFrame(data)


# --- running -----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _outcomes(validation_result: Any, sample_size: int) -> list[ExpectationOutcome]:
    outcomes = []
    for result in validation_result.results:
        doc = result.to_json_dict()
        config = doc["expectation_config"]
        kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
        column_name = Check(config["type"], kwargs, "").column_name
        details = doc.get("result") or {}
        sample = details.get("partial_unexpected_index_list") or details.get("partial_unexpected_list") or []
        exception = doc.get("exception_info") or {}
        if exception.get("raised_exception"):
            sample = [{"error": exception.get("exception_message")}]
        outcomes.append(
            ExpectationOutcome(
                expectation_type=config["type"],
                column_name=column_name,
                kwargs=_jsonable(kwargs),
                success=bool(doc["success"]),
                element_count=details.get("element_count"),
                unexpected_count=details.get("unexpected_count"),
                unexpected_sample=_jsonable(list(sample)[:sample_size]),
            )
        )
    return outcomes


def _docs_page(docs_dir: Path, suite: TableSuite, run_name: str) -> Path | None:
    pages = sorted((docs_dir / "validations" / suite.name / run_name).rglob("*.html"))
    return pages[0] if pages else None


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
    from phonecheck.quality.gx import run_checkpoint

    suite = suite or suite_for(table)
    run_id = validation_run_id or new_validation_run_id(table)
    result = run_checkpoint(suite, frame, run_name=run_id, data_docs_dir=data_docs, sample_size=sample_size)
    return ValidationSummary(
        validation_run_id=run_id,
        table=table,
        suite_name=suite.name,
        row_filter=row_filter,
        element_count=len(frame),
        outcomes=_outcomes(result, sample_size),
        data_docs_path=_docs_page(data_docs, suite, run_id) if data_docs else None,
    )


def validate_records(table: str, rows: Iterable[Mapping[str, Any]], **kwargs: Any) -> ValidationSummary:
    """Validate parser output (dicts keyed by column) without touching the warehouse."""
    suite = suite_for(table)
    return validate_frame(table, frame_from_rows(suite, rows), suite=suite, **kwargs)


def new_validation_run_id(table: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{table.split('.', 1)[-1]}__{stamp}__{uuid.uuid4().hex[:12]}"


def describe_filter(key_column: str, key_values: Sequence[Any], shown: int = 5) -> str:
    values = [str(v) for v in key_values]
    listed = ", ".join(values[:shown]) + (f", ... ({len(values)} values)" if len(values) > shown else "")
    return f"{key_column} IN ({listed})"


def store_results(
    conn: psycopg.Connection,
    summary: ValidationSummary,
    context: Mapping[str, str] | None = None,
) -> int:
    """Insert one ``dq.validation_result`` row per expectation of ``summary``; returns the count."""
    context = context or {}
    airflow_run_id = context.get("airflow_run_id") or context.get("run_id")
    validated_at = datetime.now(UTC)
    rows = [
        (
            summary.validation_run_id,
            context.get("dag_id"),
            context.get("task_id"),
            airflow_run_id,
            summary.table,
            summary.suite_name,
            o.expectation_type,
            o.column_name,
            Jsonb(o.kwargs),
            o.success,
            o.element_count,
            o.unexpected_count,
            Jsonb(o.unexpected_sample),
            summary.row_filter,
            validated_at,
        )
        for o in summary.outcomes
    ]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO dq.validation_result (validation_run_id, dag_id, task_id, airflow_run_id,
                   table_name, suite_name, expectation_type, column_name, expectation_kwargs, success,
                   element_count, unexpected_count, unexpected_sample, row_filter, validated_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            rows,
        )
    return len(rows)


def validate_rows(
    dsn: str,
    table: str,
    *,
    key_column: str,
    key_values: Sequence[str],
    context: Mapping[str, str] | None = None,
    data_docs: bool | Path = True,
    sample_size: int = SAMPLE_SIZE,
) -> ValidationSummary:
    """Validate the rows of ``table`` whose ``key_column`` is in ``key_values``.

    Stores one ``dq.validation_result`` row per expectation (``context`` supplies ``dag_id``,
    ``task_id`` and ``run_id``/``airflow_run_id``), renders Data Docs (``data_docs=True``: into
    :func:`data_docs_dir`; a path: there; ``False``: not at all) and returns the summary.
    Never deletes or changes the validated rows.
    """
    suite = suite_for(table)
    key_values = list(dict.fromkeys(key_values))  # order kept, repeats dropped
    docs = data_docs_dir() if data_docs is True else (Path(data_docs) if data_docs else None)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = fetch_rows(conn, suite, key_column, key_values)
        frame = frame_from_rows(suite, rows)
        summary = validate_frame(
            table,
            frame,
            row_filter=describe_filter(key_column, key_values),
            data_docs=docs,
            sample_size=sample_size,
            suite=suite,
        )
        store_results(conn, summary, context)
    (log.info if summary.success else log.warning)("%s", summary.describe())
    return summary
