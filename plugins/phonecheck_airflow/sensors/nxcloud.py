"""Deferrable wait for NXCLOUD number-check results."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

#: NXCLOUD pushes within 10 s - 5 min and retries for 60 min (docs/vendors/nxcloud.md).
DEFAULT_WAIT = timedelta(minutes=75)


class NxCloudResultsSensor(BaseSensorOperator):
    """Waits until every number submitted in ``batch_nos`` has a result.

    A number has a result when its push is in the inbox or its row in the typed table (it only
    reads the warehouse). By default it pokes once and, if results are missing, defers to one
    :class:`~phonecheck_airflow.triggers.nxcloud.NxCloudResultsTrigger` (no worker slot held;
    poking first also sidesteps a defer race for waits that are already over, and ``retries``
    defaults to 1 for the rest). With ``deferrable=False`` or ``mode="reschedule"`` it is a plain
    sensor that honours ``mode`` and ``poke_interval``.

    The standard ``timeout`` and ``poke_interval`` are honoured; ``wait_timeout_s`` and
    ``poll_interval_s`` (templated, what the DAG params feed) take precedence when given. On
    timeout the sensor succeeds with ``timed_out: True`` by default: the next task asks the
    query API for what the pushes did not bring (``fail_on_timeout=True`` fails instead).

    Returns (XCom) ``{"expected", "results", "timed_out"}``.

    :param batch_nos: batches to wait for (templated; usually the submit task's output).
    :param warehouse_conn_id: the warehouse connection.
    :param poll_interval_s: seconds between two counts (templated); default ``poke_interval``.
    :param wait_timeout_s: how long to wait for pushes, seconds (templated); default ``timeout``.
    :param fail_on_timeout: fail instead of handing over to reconciliation.
    :param deferrable: wait in the triggerer (default) rather than in a worker slot.
    """

    template_fields: Sequence[str] = ("batch_nos", "poll_interval_s", "wait_timeout_s")

    def __init__(
        self,
        *,
        batch_nos: Sequence[str] | Any,
        warehouse_conn_id: str = "warehouse",
        poll_interval_s: float | str | None = None,
        wait_timeout_s: float | str | None = None,
        fail_on_timeout: bool = False,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retries", 1)
        kwargs.setdefault("timeout", DEFAULT_WAIT)
        kwargs.setdefault("poke_interval", 10.0)
        super().__init__(**kwargs)
        self.batch_nos = batch_nos
        self.warehouse_conn_id = warehouse_conn_id
        self.poll_interval_s = poll_interval_s
        self.wait_timeout_s = wait_timeout_s
        self.fail_on_timeout = fail_on_timeout
        self.deferrable = deferrable

    @property
    def wait_s(self) -> float:
        return float(self.timeout if self.wait_timeout_s in (None, "") else self.wait_timeout_s)

    @property
    def interval_s(self) -> float:
        return float(self.poke_interval if self.poll_interval_s in (None, "") else self.poll_interval_s)

    def _count(self):
        from phonecheck.nxcloud.results import count_results
        from phonecheck.warehouse import connect
        from phonecheck_airflow.warehouse import warehouse_dsn

        with connect(warehouse_dsn(self.warehouse_conn_id)) as conn:
            return count_results(conn, list(self.batch_nos or []))

    def poke(self, context: Any) -> PokeReturnValue:
        count = self._count()
        self.log.info("NXCLOUD results: %d/%d numbers have a result", count.results, count.expected)
        summary = {"expected": count.expected, "results": count.results, "timed_out": False}
        return PokeReturnValue(is_done=count.done, xcom_value=summary)

    def execute(self, context: Any) -> dict[str, Any]:
        # the rendered DAG params win over the standard attributes
        self.timeout, self.poke_interval = self.wait_s, self.interval_s
        if not self.deferrable or self.mode == "reschedule":
            try:
                return super().execute(context)
            except AirflowSensorTimeout:
                if self.fail_on_timeout:
                    raise
                count = self._count()
                self.log.warning(
                    "NXCLOUD results: only %d/%d numbers have a result after %.0f s; the query API "
                    "reconciliation fetches the rest", count.results, count.expected, self.wait_s,
                )  # fmt: skip
                return {"expected": count.expected, "results": count.results, "timed_out": True}
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        from phonecheck_airflow.triggers.nxcloud import NxCloudResultsTrigger

        self.defer(
            trigger=NxCloudResultsTrigger(
                batch_nos=list(self.batch_nos),
                warehouse_conn_id=self.warehouse_conn_id,
                poll_interval=self.interval_s,
                deadline=time.time() + self.wait_s,
            ),
            method_name="execute_complete",
            # the trigger reports its own deadline; this one only catches a trigger that never fires
            timeout=timedelta(seconds=self.wait_s + 300),
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not event or event.get("status") == "error":
            raise AirflowException(f"NXCLOUD results wait failed: {(event or {}).get('message', 'no event')}")
        expected, results = event.get("expected") or 0, event.get("results") or 0
        if event["status"] == "timeout":
            message = (
                f"NXCLOUD results: only {results}/{expected} numbers have a result after {self.wait_s:.0f} s"
            )
            if self.fail_on_timeout:
                raise AirflowSensorTimeout(message)
            self.log.warning("%s; the query API reconciliation fetches the rest", message)
            return {"expected": expected, "results": results, "timed_out": True}
        self.log.info(
            "NXCLOUD results: all %d numbers have a result (%d polls)", expected, event.get("polls", 0)
        )
        return {"expected": expected, "results": results, "timed_out": False}
