"""Validate the rows a pipeline just loaded, and fail the task (keeping the rows) on a violation.

Great Expectations 1.x runs inside the task (the GX Airflow provider cannot be installed with
Airflow 3.3, docs/airflow.md); it is imported lazily by :mod:`phonecheck.quality`, on the
worker, never at DAG parse time.

Every pipeline's load task calls ``validate_loaded_rows(table, key_column, key_values)`` with the
keys it just loaded; it reads the Airflow context itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from phonecheck_airflow.warehouse import WAREHOUSE_CONN_ID


def _lineage(context: Mapping[str, Any]) -> dict[str, str]:
    ti = context.get("ti") or context.get("task_instance")
    return {
        "dag_id": getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": context.get("run_id") or getattr(ti, "run_id", None),
    }


def validate_loaded_rows(
    table: str,
    key_column: str,
    key_values: Sequence[str],
    *,
    warehouse_conn_id: str = WAREHOUSE_CONN_ID,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate ``table``'s rows whose ``key_column`` is in ``key_values``; raise
    :class:`AirflowFailException` (no retry: the data would not change) listing the failed
    expectations when one fails. The rows are never deleted. Returns a JSON-able summary."""
    from phonecheck.quality import validate_rows
    from phonecheck_airflow.warehouse import warehouse_dsn

    if context is None:
        from airflow.sdk import get_current_context

        context = get_current_context()
    if isinstance(key_values, str | Mapping):
        raise TypeError("key_values: expected a list of keys")
    keys = [str(v) for v in key_values]
    summary = validate_rows(
        warehouse_dsn(warehouse_conn_id),
        table,
        key_column=key_column,
        key_values=keys,
        context=_lineage(context),
    )
    if not summary.success:
        raise AirflowFailException(
            f"data quality check failed (the rows are kept for inspection):\n{summary.describe()}"
        )
    return {
        "validation_run_id": summary.validation_run_id,
        "table": summary.table,
        "rows": summary.element_count,
        "expectations": len(summary.outcomes),
        "success": summary.success,
        "data_docs_path": str(summary.data_docs_path) if summary.data_docs_path else None,
    }
