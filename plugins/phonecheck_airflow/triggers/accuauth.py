"""One trigger that waits for many AccuAuth tasks (behaviour: docs/vendors/accuauth.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from phonecheck_airflow.conn_ids import ACCUAUTH_CONN_ID, WAREHOUSE_CONN_ID
from phonecheck_airflow.triggers.base import PhonecheckTrigger

#: :class:`phonecheck.accuauth.waiter.WaitSettings` names (what the DAG params feed the sensor)
#: → this trigger's parameters (the shared trigger naming, docs/airflow.md "Triggers").
WAIT_SETTINGS = {
    "poll_interval_s": "poll_interval",
    "max_poll_interval_s": "max_poll_interval",
    "backoff_factor": "backoff_factor",
    "max_requests_per_second": "max_requests_per_second",
    "max_in_flight": "max_in_flight",
    "warehouse_check_interval_s": "warehouse_check_interval",
}


class AccuAuthTaskTrigger(PhonecheckTrigger):
    """Waits until every open AccuAuth task of a selection is finished, ended or expired (and every
    in-doubt submit of the run settled or out of its window), then fires once.

    Kwargs and event stay small whatever the number of tasks. The trigger receives a *selector*
    (the run whose tasks to wait for, or ``None`` for every open task, and the highest submission
    id to include) and reads the task ids from the warehouse itself. It polls ``task_result`` for
    all of them from one coroutine (:class:`phonecheck.accuauth.waiter.TaskWaiter`: per-task
    backoff, one requests-per-second limit, callbacks in the inbox stop the polling of their task).

    **The one write a trigger of ours makes** (docs/airflow.md "Triggers"): every answer is
    appended verbatim to ``raw.vendor_answer`` after each polling round, before anything acts on
    it. The answers of thousands of tasks cannot travel in the event, and polling them again from
    the resumed task would double the vendor calls, so the trigger stores them; it only appends
    (a trigger run twice adds raw rows, never changes one) and the task that resumes loads the
    typed rows from there. The event carries the selector and counts, never results.

    That wait has its own shape, so :meth:`wait` replaces the base's check-or-sleep loop (the
    base's ``run()`` finds the warehouse). ``deadline`` cuts it (``timeout`` event); without one
    the deferral's ``timeout`` bounds it.

    Event payload: ``{"status": "done", "selector": {...}, "stats": {...}}``, ``{"status":
    "timeout", "selector": {...}}`` at ``deadline``, ``{"status": "error", "message": ...}`` for
    an unknown warehouse connection, or ``{"status": "error", "selector": {...}, "error": "<vendor
    status>", "message": "..."}`` for an account-wide vendor answer (bad credentials, quota, no
    such API at the base URL). Any other failure (warehouse down) fails the trigger, so the task
    retries.

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
    :param deadline: epoch seconds after which the wait stops with ``timeout``.
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
        deadline: float | None = None,
    ) -> None:
        super().__init__(warehouse_conn_id=warehouse_conn_id, poll_interval=poll_interval, deadline=deadline)
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

    @classmethod
    def from_wait_settings(cls, wait_settings: dict[str, Any], **kwargs: Any) -> AccuAuthTaskTrigger:
        """The trigger for ``wait_settings`` given by their :class:`WaitSettings` names."""
        return cls(**{WAIT_SETTINGS[name]: value for name, value in wait_settings.items()}, **kwargs)

    def settings(self):
        from phonecheck.accuauth.waiter import WaitSettings

        return WaitSettings(**{name: getattr(self, param) for name, param in WAIT_SETTINGS.items()})

    async def poll(self, dsn: str, *, once: bool = False) -> dict[str, Any]:
        """Poll the open tasks until none is left (``once``: the tasks due now, one pass),
        appending every answer to ``raw.vendor_answer`` before it returns; the event payload."""
        from phonecheck.accuauth.api import AccuAuthError
        from phonecheck.accuauth.store import WaitSelector
        from phonecheck.accuauth.waiter import run_wait
        from phonecheck_airflow.hooks.accuauth import AccuAuthHook

        hook = AccuAuthHook(self.accuauth_conn_id)
        selector = WaitSelector(self.run_id, self.max_submission_id)
        try:
            async with await hook.aget_async_client(max_connections=self.max_in_flight) as client:
                outcome = await run_wait(
                    client, dsn, selector, self.settings(), dag_id=self.dag_id, once=once
                )
        except AccuAuthError as exc:  # account-wide: fail the task with the vendor's reason
            return {"status": "error", "selector": self.selector, "error": exc.status, "message": str(exc)}
        return {"status": "done", "selector": self.selector, "stats": outcome.stats()}

    async def wait(self, dsn: str) -> AsyncIterator[TriggerEvent]:
        """One :meth:`poll` to the end, cut at ``deadline`` (answers received by then are stored)."""
        remaining = None if self.deadline is None else max(0.0, self.deadline - time.time())
        try:
            async with asyncio.timeout(remaining) as window:
                payload = await self.poll(dsn)
        except TimeoutError:
            if not window.expired():
                raise
            payload = {"status": "timeout", "selector": self.selector}
        if payload["status"] == "done":
            self.log.info("SUMMARY %s", summary(payload["stats"]))
        yield TriggerEvent(payload)


def summary(stats: dict[str, Any]) -> str:
    """One line on a finished wait, for the trigger's log and the resumed sensor's."""
    return (
        f"wait: {stats.get('finished_by_poll', 0)} task(s) finished by poll, "
        f"{stats.get('ended_by_vendor', 0)} ended by the vendor, {stats.get('finished_elsewhere', 0)} by "
        f"callback, {stats.get('expired', 0)} expired; {stats.get('doubts_settled', 0)} in-doubt submit(s) "
        f"settled by callback, {stats.get('doubts_unsettled', 0)} still in doubt; {stats.get('polls', 0)} "
        f"poll(s), {stats.get('vendor_calls', 0)} vendor call(s)"
    )
