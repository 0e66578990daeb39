"""Deferrable wait for NXCLOUD number-check results."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from phonecheck_airflow.sensors.base import PhonecheckWaitSensor

#: NXCLOUD pushes within 10 s - 5 min and retries for 60 min (docs/vendors/nxcloud.md).
DEFAULT_WAIT = timedelta(minutes=75)


class NxCloudResultsSensor(PhonecheckWaitSensor):
    """Waits until every number a run submitted has a result.

    The run is named by its run key (``"<dag_id>/<run_id>"``, what the submit task hands on);
    its batches are read from ``ops.number_check_submission``, never passed in, so the XCom and
    the trigger's kwargs and event stay the same size however many numbers the run holds.

    A number has a result when its push is in the inbox or its row in the typed table (it only
    reads the warehouse). Deferring, it pokes once and, if results are missing, defers to one
    :class:`~phonecheck_airflow.triggers.nxcloud.NxCloudResultsTrigger` (imported only then).
    Deferral, ``mode``, ``timeout`` and ``poke_interval`` as every wait sensor
    (:class:`~phonecheck_airflow.sensors.base.PhonecheckWaitSensor`): on timeout it succeeds with
    ``timed_out: True`` and the next task asks the query API for what the pushes did not bring
    (``fail_on_timeout=True`` fails instead).

    Returns (XCom) ``{"run_key", "expected", "results", "timed_out"}``.

    :param run_key: the run whose submitted numbers to wait for (templated; default: this run).
    """

    template_fields: Sequence[str] = ("run_key", "timeout", "poke_interval")

    def __init__(
        self,
        *,
        run_key: str | None = None,
        timeout: timedelta | float | str = DEFAULT_WAIT,
        poke_interval: timedelta | float | str = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(timeout=timeout, poke_interval=poke_interval, **kwargs)
        self.run_key = run_key

    def _run_key(self, context: Any) -> str:
        if self.run_key:
            return str(self.run_key)
        dag_id = getattr(context.get("dag"), "dag_id", None) or getattr(context.get("ti"), "dag_id", None)
        return f"{dag_id}/{context['run_id']}"

    def look(self, context: Any) -> tuple[bool, dict[str, Any]]:
        from phonecheck.nxcloud.results import count_results
        from phonecheck.nxcloud.submissions import run_batches
        from phonecheck.warehouse import connect
        from phonecheck_airflow.warehouse import warehouse_dsn

        run_key = self._run_key(context)
        with connect(warehouse_dsn(self.warehouse_conn_id)) as conn:
            count = count_results(conn, run_batches(conn, run_key))
        self.log.info("NXCLOUD results: %d/%d numbers have a result", count.results, count.expected)
        return count.done, {"run_key": run_key, "expected": count.expected, "results": count.results}

    def trigger(self, context: Any, summary: dict[str, Any], deadline: float):
        from phonecheck_airflow.triggers.nxcloud import NxCloudResultsTrigger

        return NxCloudResultsTrigger(
            run_key=summary["run_key"],
            warehouse_conn_id=self.warehouse_conn_id,
            poll_interval=self.poke_interval,
            deadline=deadline,
        )

    def summary_of_event(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        if event["status"] == "done":
            self.log.info(
                "NXCLOUD results: all %d numbers have a result (%d polls)",
                event.get("expected") or 0, event.get("polls", 0),
            )  # fmt: skip
        return {
            "run_key": self._run_key(context),
            "expected": event.get("expected") or 0,
            "results": event.get("results") or 0,
        }

    def timeout_message(self, summary: dict[str, Any]) -> str:
        return (
            f"NXCLOUD results: only {summary['results']}/{summary['expected']} numbers have a result "
            f"after {float(self.timeout):.0f} s; the query API reconciliation fetches the rest"
        )
