"""One trigger that waits for many AccuAuth tasks (behaviour: docs/vendors/accuauth.md)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from phonecheck_airflow.warehouse import dsn_from_connection

log = logging.getLogger(__name__)


class AccuAuthTaskTrigger(BaseTrigger):
    """Waits until every open AccuAuth task of a selection is finished, ended or expired (and every
    in-doubt submit of the run settled or out of its window), then fires once.

    Kwargs and event stay small whatever the number of tasks. The trigger receives a *selector*
    (the run whose tasks to wait for, or ``None`` for every open task, and the highest submission
    id to include) and reads the task ids from the warehouse itself. It polls ``task_result`` for
    all of them from one coroutine (:class:`phonecheck.accuauth.waiter.TaskWaiter`: per-task
    backoff, one requests-per-second limit, callbacks in the inbox stop the polling of their task)
    and appends every answer verbatim to ``raw.vendor_answer`` (append-only). The task that
    resumes loads the typed rows from there: the event carries the selector and counts, never
    results.

    Event payload: ``{"status": "done", "selector": {...}, "stats": {...}}``, or
    ``{"status": "error", "selector": {...}, "error": "<vendor status>", "message": "..."}`` for
    an account-wide vendor answer (bad credentials, quota, no such API at the base URL).

    :param run_id: wait for the tasks this Airflow run submitted; ``None`` = every open task.
    :param max_submission_id: ignore submissions newer than this.
    :param accuauth_conn_id: the ``accuauth`` connection.
    :param warehouse_conn_id: the warehouse (postgres) connection.
    :param poll_interval_s: first poll this long after submission; grows by ``backoff_factor``
        per PENDING answer up to ``max_poll_interval_s``.
    :param max_requests_per_second: vendor calls started per second, at most (all tasks together).
    :param max_in_flight: vendor calls open at once, at most.
    :param warehouse_check_interval_s: how often the warehouse is asked for callbacks while idle.
    :param dag_id: recorded with the raw answers (which DAG polled).
    """

    def __init__(
        self,
        run_id: str | None,
        max_submission_id: int,
        accuauth_conn_id: str = "accuauth_default",
        warehouse_conn_id: str = "warehouse",
        poll_interval_s: float = 30.0,
        max_poll_interval_s: float = 900.0,
        backoff_factor: float = 2.0,
        max_requests_per_second: float = 10.0,
        max_in_flight: int = 16,
        warehouse_check_interval_s: float = 30.0,
        dag_id: str | None = None,
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self.max_submission_id = int(max_submission_id)
        self.accuauth_conn_id = accuauth_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.poll_interval_s = float(poll_interval_s)
        self.max_poll_interval_s = float(max_poll_interval_s)
        self.backoff_factor = float(backoff_factor)
        self.max_requests_per_second = float(max_requests_per_second)
        self.max_in_flight = int(max_in_flight)
        self.warehouse_check_interval_s = float(warehouse_check_interval_s)
        self.dag_id = dag_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "run_id": self.run_id,
                "max_submission_id": self.max_submission_id,
                "accuauth_conn_id": self.accuauth_conn_id,
                "warehouse_conn_id": self.warehouse_conn_id,
                "poll_interval_s": self.poll_interval_s,
                "max_poll_interval_s": self.max_poll_interval_s,
                "backoff_factor": self.backoff_factor,
                "max_requests_per_second": self.max_requests_per_second,
                "max_in_flight": self.max_in_flight,
                "warehouse_check_interval_s": self.warehouse_check_interval_s,
                "dag_id": self.dag_id,
            },
        )

    @property
    def selector(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "max_submission_id": self.max_submission_id}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.sdk import BaseHook

        from phonecheck.accuauth.api import AccuAuthError
        from phonecheck.accuauth.store import WaitSelector
        from phonecheck.accuauth.waiter import WaitSettings, run_wait
        from phonecheck_airflow.hooks.accuauth import AccuAuthHook

        settings = WaitSettings(
            poll_interval_s=self.poll_interval_s,
            max_poll_interval_s=self.max_poll_interval_s,
            backoff_factor=self.backoff_factor,
            max_requests_per_second=self.max_requests_per_second,
            max_in_flight=self.max_in_flight,
            warehouse_check_interval_s=self.warehouse_check_interval_s,
        )
        warehouse = await BaseHook.aget_connection(self.warehouse_conn_id)
        hook = AccuAuthHook(self.accuauth_conn_id)
        try:
            async with await hook.aget_async_client(max_connections=self.max_in_flight) as client:
                outcome = await run_wait(
                    client,
                    dsn_from_connection(warehouse),
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
