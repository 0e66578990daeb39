"""Deferrable wait for NXCLOUD number-check results."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from phonecheck_airflow.conn_ids import WAREHOUSE_CONN_ID

#: NXCLOUD pushes within 10 s - 5 min and retries for 60 min (docs/vendors/nxcloud.md).
DEFAULT_WAIT = timedelta(minutes=75)


def _seconds(value: Any, name: str) -> float:
    """A rendered ``timeout`` / ``poke_interval``: seconds, a timedelta, or a template's text."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")
    return seconds


class NxCloudResultsSensor(BaseSensorOperator):
    """Waits until every number a run submitted has a result.

    The run is named by its run key (``"<dag_id>/<run_id>"``, what the submit task hands on);
    its batches are read from ``ops.number_check_submission``, never passed in, so the XCom and
    the trigger's kwargs and event stay the same size however many numbers the run holds.

    A number has a result when its push is in the inbox or its row in the typed table (it only
    reads the warehouse). Deferrable by default, like the providers' HTTP sensor: it pokes once
    and, if results are missing, defers to one
    :class:`~phonecheck_airflow.triggers.nxcloud.NxCloudResultsTrigger` (imported only then; no
    worker slot held; poking first also sidesteps a defer race for waits that are already over,
    and ``retries`` defaults to 1 for the rest). With ``deferrable=False`` or
    ``mode="reschedule"`` it is a plain sensor honouring ``mode``.

    The standard ``timeout`` (how long to wait for pushes) and ``poke_interval`` (between two
    counts, in the worker or in the trigger) are honoured in every mode, and are templated so a
    DAG can feed them from its params. On timeout the sensor succeeds with ``timed_out: True`` by
    default: the next task asks the query API for what the pushes did not bring
    (``fail_on_timeout=True`` fails instead).

    Returns (XCom) ``{"run_key", "expected", "results", "timed_out"}``.

    :param run_key: the run whose submitted numbers to wait for (templated; default: this run).
    :param warehouse_conn_id: the warehouse connection.
    :param fail_on_timeout: fail instead of handing over to reconciliation.
    :param deferrable: wait in the triggerer (default) rather than in a worker slot.
    """

    template_fields: Sequence[str] = ("run_key", "timeout", "poke_interval")

    def __init__(
        self,
        *,
        run_key: str | None = None,
        warehouse_conn_id: str = WAREHOUSE_CONN_ID,
        fail_on_timeout: bool = False,
        deferrable: bool = True,
        timeout: timedelta | float | str = DEFAULT_WAIT,
        poke_interval: timedelta | float | str = 10.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retries", 1)
        # a template (e.g. "{{ params.wait_timeout_minutes * 60 }}") is rendered before execute
        super().__init__(
            timeout=DEFAULT_WAIT if isinstance(timeout, str) else timeout,
            poke_interval=10.0 if isinstance(poke_interval, str) else poke_interval,
            **kwargs,
        )
        if isinstance(timeout, str):
            self.timeout = timeout  # type: ignore[assignment]
        if isinstance(poke_interval, str):
            self.poke_interval = poke_interval  # type: ignore[assignment]
        self.run_key = run_key
        self.warehouse_conn_id = warehouse_conn_id
        self.fail_on_timeout = fail_on_timeout
        self.deferrable = deferrable

    def _run_key(self, context: Any) -> str:
        if self.run_key:
            return str(self.run_key)
        dag_id = getattr(context.get("dag"), "dag_id", None) or getattr(context.get("ti"), "dag_id", None)
        return f"{dag_id}/{context['run_id']}"

    def _count(self, run_key: str):
        from phonecheck.nxcloud.results import count_results
        from phonecheck.nxcloud.submissions import run_batches
        from phonecheck.warehouse import connect
        from phonecheck_airflow.warehouse import warehouse_dsn

        with connect(warehouse_dsn(self.warehouse_conn_id)) as conn:
            return count_results(conn, run_batches(conn, run_key))

    def poke(self, context: Any) -> PokeReturnValue:
        run_key = self._run_key(context)
        count = self._count(run_key)
        self.log.info("NXCLOUD results: %d/%d numbers have a result", count.results, count.expected)
        summary = {
            "run_key": run_key,
            "expected": count.expected,
            "results": count.results,
            "timed_out": False,
        }
        return PokeReturnValue(is_done=count.done, xcom_value=summary)

    def execute(self, context: Any) -> dict[str, Any] | None:
        self.timeout = _seconds(self.timeout, "timeout")
        self.poke_interval = _seconds(self.poke_interval, "poke_interval")
        if not self.deferrable or self.mode == "reschedule":
            try:
                return super().execute(context)
            except AirflowSensorTimeout:
                if self.fail_on_timeout:
                    raise
                run_key = self._run_key(context)
                count = self._count(run_key)
                self.log.warning(
                    "NXCLOUD results: only %d/%d numbers have a result after %.0f s; the query API "
                    "reconciliation fetches the rest", count.results, count.expected, self.timeout,
                )  # fmt: skip
                return {"run_key": run_key, "expected": count.expected, "results": count.results,
                        "timed_out": True}  # fmt: skip
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        from phonecheck_airflow.triggers.nxcloud import NxCloudResultsTrigger

        self.defer(
            trigger=NxCloudResultsTrigger(
                run_key=first.xcom_value["run_key"],
                warehouse_conn_id=self.warehouse_conn_id,
                poll_interval=self.poke_interval,
                deadline=time.time() + self.timeout,
            ),
            method_name="execute_complete",
            # the trigger reports its own deadline; this one only catches a trigger that never fires
            timeout=timedelta(seconds=self.timeout + 300),
        )
        return None

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not event or event.get("status") == "error":
            raise AirflowException(f"NXCLOUD results wait failed: {(event or {}).get('message', 'no event')}")
        run_key = self._run_key(context)
        expected, results = event.get("expected") or 0, event.get("results") or 0
        if event["status"] == "timeout":
            message = (
                f"NXCLOUD results: only {results}/{expected} numbers have a result after "
                f"{_seconds(self.timeout, 'timeout'):.0f} s"
            )
            if self.fail_on_timeout:
                raise AirflowSensorTimeout(message)
            self.log.warning("%s; the query API reconciliation fetches the rest", message)
            return {"run_key": run_key, "expected": expected, "results": results, "timed_out": True}
        self.log.info(
            "NXCLOUD results: all %d numbers have a result (%d polls)", expected, event.get("polls", 0)
        )
        return {"run_key": run_key, "expected": expected, "results": results, "timed_out": False}
