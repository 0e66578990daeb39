"""One trigger that waits for many AccuAuth tasks (behaviour: docs/vendors/accuauth.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from phonecheck_airflow.conn_ids import ACCUAUTH_CONN_ID, WAREHOUSE_CONN_ID
from phonecheck_airflow.triggers.base import PhonecheckTrigger


class AccuAuthTaskTrigger(PhonecheckTrigger):
    """Waits until every open AccuAuth task of a selection is finished, ended or expired (and every
    in-doubt submit of the run settled or out of its window), then fires once.

    Kwargs and event stay small whatever the number of tasks. The trigger receives a *selector*
    (the run whose tasks to wait for, or ``None`` for every open task, and the highest submission
    id to include) and reads the task ids from the warehouse itself. It polls ``task_result`` for
    all of them from one coroutine (:class:`phonecheck.accuauth.waiter.TaskWaiter`: per-task
    backoff, one requests-per-second limit, callbacks in the inbox stop the polling of their task)
    and appends every answer verbatim to ``raw.vendor_answer`` (append-only). The task that
    resumes loads the typed rows from there: the event carries the selector and counts, never
    results. That wait has its own shape, so :meth:`run` replaces the base's check-or-sleep loop;
    it has no deadline of its own: the sensor's ``timeout`` bounds the deferral, and Airflow ends
    the sensor with ``AirflowSensorTimeout`` when it runs out (tasks live 24 h at the vendor).

    Event payload: ``{"status": "done", "selector": {...}, "stats": {...}}``, or
    ``{"status": "error", "selector": {...}, "error": "<vendor status>", "message": "..."}`` for
    an account-wide vendor answer (bad credentials, quota, no such API at the base URL). Any other
    failure (warehouse down) fails the trigger, so the task retries.

    :param run_id: wait for the tasks this Airflow run submitted; ``None`` = every open task.
    :param max_submission_id: ignore submissions newer than this.
    :param accuauth_conn_id: the ``accuauth`` connection.
    :param warehouse_conn_id: the warehouse (postgres) connection.
    :param poll_interval: seconds from submission to a task's first poll; grows by
        ``backoff_factor`` per PENDING answer up to ``max_poll_interval``.
    :param max_poll_interval: the longest gap between two polls of one task, seconds.
    :param backoff_factor: growth of a task's poll gap per PENDING answer.
    :param max_requests_per_second: vendor calls started per second, at most (all tasks together).
    :param max_in_flight: vendor calls open at once, at most.
    :param warehouse_check_interval: seconds between two looks for callbacks while idle.
    :param dag_id: recorded with the raw answers (which DAG polled).
    """

    def __init__(
        self,
        run_id: str | None,
        max_submission_id: int,
        accuauth_conn_id: str = ACCUAUTH_CONN_ID,
        warehouse_conn_id: str = WAREHOUSE_CONN_ID,
        poll_interval: float = 30.0,
        max_poll_interval: float = 900.0,
        backoff_factor: float = 2.0,
        max_requests_per_second: float = 10.0,
        max_in_flight: int = 16,
        warehouse_check_interval: float = 30.0,
        dag_id: str | None = None,
    ) -> None:
        super().__init__(warehouse_conn_id=warehouse_conn_id, poll_interval=poll_interval)
        self.run_id = run_id
        self.max_submission_id = int(max_submission_id)
        self.accuauth_conn_id = accuauth_conn_id
        self.max_poll_interval = float(max_poll_interval)
        self.backoff_factor = float(backoff_factor)
        self.max_requests_per_second = float(max_requests_per_second)
        self.max_in_flight = int(max_in_flight)
        self.warehouse_check_interval = float(warehouse_check_interval)
        self.dag_id = dag_id

    @property
    def selector(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "max_submission_id": self.max_submission_id}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from phonecheck.accuauth.api import AccuAuthError
        from phonecheck.accuauth.store import WaitSelector
        from phonecheck.accuauth.waiter import WaitSettings, run_wait
        from phonecheck_airflow.hooks.accuauth import AccuAuthHook

        settings = WaitSettings(
            poll_interval_s=self.poll_interval,
            max_poll_interval_s=self.max_poll_interval,
            backoff_factor=self.backoff_factor,
            max_requests_per_second=self.max_requests_per_second,
            max_in_flight=self.max_in_flight,
            warehouse_check_interval_s=self.warehouse_check_interval,
        )
        dsn = await self.warehouse_dsn()
        hook = AccuAuthHook(self.accuauth_conn_id)
        try:
            async with await hook.aget_async_client(max_connections=self.max_in_flight) as client:
                outcome = await run_wait(
                    client,
                    dsn,
                    WaitSelector(self.run_id, self.max_submission_id),
                    settings,
                    dag_id=self.dag_id,
                )
        except AccuAuthError as exc:  # account-wide: fail the task with the vendor's reason
            yield TriggerEvent(
                {"status": "error", "selector": self.selector, "error": exc.status, "message": str(exc)}
            )
            return
        stats = outcome.stats()
        self.log.info(
            "SUMMARY wait done: %d task(s) (%d by poll, %d ended by the vendor, %d by callback, %d expired), "
            "%d poll(s), %d vendor call(s)",
            stats["tasks"], stats["finished_by_poll"], stats["ended_by_vendor"], stats["finished_elsewhere"],
            stats["expired"], stats["polls"], stats["vendor_calls"],
        )  # fmt: skip
        yield TriggerEvent({"status": "done", "selector": self.selector, "stats": stats})
