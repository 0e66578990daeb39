"""What a validation produced, and where it is kept: the result types, ``dq.validation_result``
rows (:func:`store_results`), run ids and the Data Docs folder.

Plain Python and psycopg: no pandas, no Great Expectations.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from psycopg.types.json import Jsonb

from phonecheck.privacy.masking import mask_number

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


#: A sample value that may be a phone number (the key columns come with every sample row).
_NUMBER_VALUE = re.compile(r"\+?\d{7,15}")


def _masked(value: Any) -> Any:
    """A sample value as a log line may show it: anything that may be a number masked
    (docs/privacy.md; the full sample stays in ``dq.validation_result``)."""
    if isinstance(value, Mapping):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, str | int) and _NUMBER_VALUE.fullmatch(str(value)):
        return mask_number(value)
    return value


def _short(value: Any, limit: int = 120) -> str:
    text = str(_masked(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
