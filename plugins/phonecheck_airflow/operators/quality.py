"""Validate the rows a pipeline just loaded, and fail the task (keeping the rows) on a violation.

Great Expectations 1.x runs inside the task (the GX Airflow provider cannot be installed with
Airflow 3.3, docs/airflow.md); it is imported lazily by :mod:`phonecheck.quality`, on the
worker, never at DAG parse time.

Two ways to use it:

* the operator, wired after a load task whose XCom holds the keys it loaded::

      ValidateLoadedRowsOperator(
          task_id="validate", table="telco.nxcloud_number_check", key_column="batch_no",
          key_values=load.output,            # or "{{ ti.xcom_pull(task_ids='load') }}"
      )

* inside a ``@task``: ``validate_loaded_rows(table, key_column, key_values)``, which does the
  same and reads the Airflow context itself.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from phonecheck_airflow.warehouse import WAREHOUSE_CONN_ID


def _as_key_values(value: Any) -> list[str]:
    """Keys from XCom or a rendered template: a list/tuple/set, or a string holding a JSON or
    Python list (what ``{{ ti.xcom_pull(...) }}`` renders to), or one bare key."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("[", "(")):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = ast.literal_eval(text)
            return [str(v) for v in parsed]
        return [text] if text else []
    if isinstance(value, Mapping):
        raise TypeError("key_values: expected a list of keys, got a mapping (pull the list out of it)")
    return [str(v) for v in value]


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
    key_values: Sequence[str] | str,
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
    keys = _as_key_values(key_values)
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


class ValidateLoadedRowsOperator(BaseOperator):
    """Runs the table's Great Expectations suite over the rows a pipeline just loaded.

    Stores one ``dq.validation_result`` row per expectation (with this task's dag_id, task_id
    and run_id), renders Data Docs (``$PHONECHECK_DATA_DOCS_DIR``, default ``.local/data_docs``),
    and fails the task with a readable list of the failed expectations when one fails. The
    validated rows stay in the table.

    :param table: a ``telco`` table with a suite, e.g. ``telco.nxcloud_number_check``.
    :param key_column: the column that selects the loaded rows (``batch_no``, ``task_id``,
        ``raw_event_id``, ...; see :mod:`phonecheck.quality`).
    :param key_values: the loaded keys (templated): a list, an XComArg, or a rendered list string.
    :param warehouse_conn_id: the warehouse connection (contract id ``warehouse``).
    """

    template_fields: Sequence[str] = ("table", "key_column", "key_values")
    ui_color = "#e8f4e8"

    def __init__(
        self,
        *,
        table: str,
        key_column: str,
        key_values: Sequence[str] | str | Any,
        warehouse_conn_id: str = WAREHOUSE_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.key_column = key_column
        self.key_values = key_values
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        return validate_loaded_rows(
            self.table,
            self.key_column,
            self.key_values,
            warehouse_conn_id=self.warehouse_conn_id,
            context=context,
        )
