"""One trigger that waits for many AccuAuth tasks (issue #5)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from phonecheck_airflow.warehouse import dsn_from_connection

log = logging.getLogger(__name__)


class AccuAuthTaskTrigger(BaseTrigger):
    """Waits until every open AccuAuth task of a selection is finished or expired, then fires once.

    The kwargs stay small whatever the number of tasks: the trigger receives a *selector* (the
    run whose tasks to wait for, or ``None`` for every open task, and the highest submission id
    to include) and reads the task ids from the warehouse itself, read-only. It polls
    ``task_result`` for all of them from one coroutine (:class:`phonecheck.accuauth.waiter.TaskWaiter`:
    per-task backoff, one requests-per-second limit, callbacks in the inbox stop the polling of
    their task) and yields one event whose payload carries the results. It never writes: the
    resumed sensor and the load task do.

    Event payload: ``{"status": "done", "result_fields": [...], "results": [[...], ...],
    "finished_elsewhere": [...], "expired": [...], "stats": {...}}`` or ``{"status": "error",
    "error": "<vendor status>", "message": "..."}`` for a fatal vendor answer (bad credentials,
    quota...).

    :param run_id: wait for the tasks this Airflow run submitted; ``None`` = every open task.
    :param max_submission_id: ignore submissions newer than this.
    :param accuauth_conn_id: the ``accuauth`` connection.
    :param warehouse_conn_id: the warehouse (postgres) connection, read-only use.
    :param poll_interval_s: first poll this long after submission; grows by ``backoff_factor``
        per PENDING answer up to ``max_poll_interval_s``.
    :param max_requests_per_second: vendor calls started per second, at most (all tasks together).
    :param max_in_flight: vendor calls open at once, at most.
    :param warehouse_check_interval_s: how often the warehouse is asked for callbacks while idle.
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
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import psycopg
        from airflow.sdk import BaseHook

        from phonecheck.accuauth.api import AccuAuthError
        from phonecheck.accuauth.store import WaitSelector, afinished_elsewhere, aopen_tasks
        from phonecheck.accuauth.waiter import TaskWaiter, WaitSettings
        from phonecheck_airflow.hooks.accuauth import AccuAuthHook

        settings = WaitSettings(
            poll_interval_s=self.poll_interval_s,
            max_poll_interval_s=self.max_poll_interval_s,
            backoff_factor=self.backoff_factor,
            max_requests_per_second=self.max_requests_per_second,
            max_in_flight=self.max_in_flight,
            warehouse_check_interval_s=self.warehouse_check_interval_s,
        )
        selector = WaitSelector(self.run_id, self.max_submission_id)
        warehouse = await BaseHook.aget_connection(self.warehouse_conn_id)
        hook = AccuAuthHook(self.accuauth_conn_id)
        async with await psycopg.AsyncConnection.connect(
            dsn_from_connection(warehouse), autocommit=True
        ) as wh:
            # the trigger may run twice and must never write: make that a database guarantee
            await wh.execute("SET default_transaction_read_only = on")
            tasks = await aopen_tasks(wh, selector)
            self.log.info("waiting for %d AccuAuth task(s) (%s)", len(tasks), selector)

            async def finished_elsewhere(ids):
                return await afinished_elsewhere(wh, ids)

            try:
                async with await hook.aget_async_client(max_connections=self.max_in_flight) as client:
                    outcome = await TaskWaiter(client, tasks, settings, finished_elsewhere).run()
            except AccuAuthError as exc:  # fatal for the account: fail the task with the reason
                yield TriggerEvent({"status": "error", "error": exc.status, "message": str(exc)})
                return
        payload = outcome.to_payload()
        self.log.info("AccuAuth wait done: %s", payload["stats"])
        yield TriggerEvent(payload)
