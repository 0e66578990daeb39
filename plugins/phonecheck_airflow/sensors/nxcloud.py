"""Deferrable wait for NXCLOUD number-check results (issue #4)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from phonecheck_airflow.triggers.nxcloud import NxCloudResultsTrigger


class NxCloudResultsSensor(BaseSensorOperator):
    """Waits until every number submitted in ``batch_nos`` has a result, without a worker slot.

    Pokes once (reads the warehouse: inbox pushes + typed rows) and, if results are missing,
    defers to one :class:`NxCloudResultsTrigger`; poking first also sidesteps the 3.3 defer race
    for waits that are already over (airflow-notes.md §2), and ``retries`` defaults to 1 for the
    rest. NXCLOUD pushes within 10 s - 5 min and retries for 60 min, so the default timeout is
    75 min. On timeout the sensor succeeds with ``timed_out: True`` by default: the next task
    asks the query API for what the pushes did not bring (``fail_on_timeout=True`` fails instead).

    Returns (XCom) ``{"expected", "results", "timed_out"}``.

    :param batch_nos: batches to wait for (templated; usually the submit task's output).
    :param warehouse_conn_id: the warehouse connection.
    :param poll_interval_s: seconds between two counts in the trigger (templated).
    :param wait_timeout_s: how long to wait for pushes, seconds (templated).
    :param fail_on_timeout: fail instead of handing over to reconciliation.
    """

    template_fields: Sequence[str] = ("batch_nos", "poll_interval_s", "wait_timeout_s")

    def __init__(
        self,
        *,
        batch_nos: Sequence[str] | Any,
        warehouse_conn_id: str = "warehouse",
        poll_interval_s: float | str = 10.0,
        wait_timeout_s: float | str = timedelta(minutes=75).total_seconds(),
        fail_on_timeout: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retries", 1)
        super().__init__(**kwargs)
        self.batch_nos = batch_nos
        self.warehouse_conn_id = warehouse_conn_id
        self.poll_interval_s = poll_interval_s
        self.wait_timeout_s = wait_timeout_s
        self.fail_on_timeout = fail_on_timeout

    def _count(self):
        from phonecheck.nxcloud.results import count_results
        from phonecheck.warehouse import connect
        from phonecheck_airflow.warehouse import warehouse_dsn

        with connect(warehouse_dsn(self.warehouse_conn_id)) as conn:
            return count_results(conn, list(self.batch_nos or []))

    def poke(self, context: Any) -> bool:
        count = self._count()
        self.log.info("NXCLOUD results: %d/%d numbers have a result", count.results, count.expected)
        return count.done

    def execute(self, context: Any) -> dict[str, Any]:
        count = self._count()
        self.log.info(
            "NXCLOUD results for %d batch(es): %d/%d",
            len(self.batch_nos or []),
            count.results,
            count.expected,
        )
        if count.done:
            return {"expected": count.expected, "results": count.results, "timed_out": False}
        wait_s = float(self.wait_timeout_s)
        self.defer(
            trigger=NxCloudResultsTrigger(
                batch_nos=list(self.batch_nos),
                warehouse_conn_id=self.warehouse_conn_id,
                poll_interval_s=float(self.poll_interval_s),
                deadline=time.time() + wait_s,
            ),
            method_name="execute_complete",
            # the trigger reports its own deadline; this one only catches a trigger that never fires
            timeout=timedelta(seconds=wait_s + 300),
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not event or event.get("status") == "error":
            raise AirflowException(f"NXCLOUD results wait failed: {(event or {}).get('message', 'no event')}")
        expected, results = event.get("expected") or 0, event.get("results") or 0
        if event["status"] == "timeout":
            message = (
                f"NXCLOUD results: only {results}/{expected} numbers have a result after "
                f"{float(self.wait_timeout_s):.0f} s"
            )
            if self.fail_on_timeout:
                raise AirflowSensorTimeout(message)
            self.log.warning("%s; the query API reconciliation fetches the rest", message)
            return {"expected": expected, "results": results, "timed_out": True}
        self.log.info(
            "NXCLOUD results: all %d numbers have a result (%d polls)", expected, event.get("polls", 0)
        )
        return {"expected": expected, "results": results, "timed_out": False}
