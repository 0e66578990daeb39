"""Sensor: wait for AccuAuth tasks, deferred (no worker slot held) or poking."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from phonecheck_airflow.conn_ids import ACCUAUTH_CONN_ID
from phonecheck_airflow.sensors.base import PhonecheckWaitSensor

#: The ``wait_settings`` a DAG may give (:class:`phonecheck.accuauth.waiter.WaitSettings` names;
#: the trigger maps them to its parameters, ``triggers/accuauth.py`` ``WAIT_SETTINGS``). Named
#: here so that a typo fails the DAG's parse without importing the trigger.
WAIT_SETTING_NAMES = (
    "poll_interval_s",
    "max_poll_interval_s",
    "backoff_factor",
    "max_requests_per_second",
    "max_in_flight",
    "warehouse_check_interval_s",
)

#: Tasks live 24 h at the vendor: a wait longer than that always ends by itself.
DEFAULT_WAIT = timedelta(hours=25)


class AccuAuthTasksSensor(PhonecheckWaitSensor):
    """Waits until every AccuAuth task of a selection is finished, ended or expired, and every
    in-doubt submit of the run is settled or out of its window.

    :meth:`poke` only reads the warehouse (open tasks, watched in-doubt submits). Deferring, it
    pokes once, then defers to ONE :class:`~phonecheck_airflow.triggers.accuauth.AccuAuthTaskTrigger`
    for all open tasks, which polls the vendor and stores its answers. Not deferring, the
    trigger's polling runs in the worker, outside :meth:`poke`, and what it stored is loaded:
    with ``mode="reschedule"`` one pass over the tasks that are due per try, before the poke;
    with ``mode="poke"`` the trigger's whole wait, in the worker slot, up to ``timeout``. A task's
    first poll comes ``wait_settings["poll_interval_s"]`` after its submission, by default
    ``poke_interval`` (30 s).

    Timeouts as every wait sensor (:class:`~phonecheck_airflow.sensors.base.PhonecheckWaitSensor`):
    the default 25 h outlasts the tasks' 24 h validity, so the wait normally ends by itself.
    Returns the selector and counts (``{"status", "selector", "stats", "timed_out"}``); the load
    task reads the answers from the warehouse.

    :param selector: ``{"run_id": str | None, "max_submission_id": int}`` (what the submit task
        returns): the run whose tasks to wait for, ``run_id`` None = every open task.
    :param accuauth_conn_id: the ``accuauth`` connection.
    :param wait_settings: ``poll_interval_s``, ``max_poll_interval_s``, ``backoff_factor``,
        ``max_requests_per_second``, ``max_in_flight``, ``warehouse_check_interval_s``.
    """

    template_fields: Sequence[str] = ("selector", "wait_settings", "timeout", "poke_interval")

    def __init__(
        self,
        *,
        selector: dict[str, Any] | Any,
        accuauth_conn_id: str = ACCUAUTH_CONN_ID,
        wait_settings: dict[str, Any] | None = None,
        timeout: timedelta | float | str = DEFAULT_WAIT,
        poke_interval: timedelta | float | str = 30.0,  # WaitSettings' first-poll delay
        **kwargs: Any,
    ) -> None:
        super().__init__(timeout=timeout, poke_interval=poke_interval, **kwargs)
        self.selector = selector
        self.accuauth_conn_id = accuauth_conn_id
        self.wait_settings = wait_settings or {}
        if unknown := set(self.wait_settings) - set(WAIT_SETTING_NAMES):  # a typo fails the DAG's parse
            raise ValueError(f"unknown wait_settings {sorted(unknown)}; known: {sorted(WAIT_SETTING_NAMES)}")

    def _selector(self):
        from phonecheck.accuauth.store import WaitSelector

        return WaitSelector.from_dict(self.selector)

    def _wait_settings(self) -> dict[str, float | int]:
        """The rendered ``wait_settings`` as numbers; ``poll_interval_s`` defaults to
        ``poke_interval``."""
        settings: dict[str, float | int] = {"poll_interval_s": float(self.poke_interval)}
        for key, value in self.wait_settings.items():
            if value not in (None, ""):
                settings[key] = int(value) if key == "max_in_flight" else float(value)
        return settings

    def look(self, context: Any) -> tuple[bool, dict[str, Any]]:
        from phonecheck.accuauth.store import open_doubts, open_tasks
        from phonecheck.warehouse import connect
        from phonecheck_airflow.warehouse import warehouse_dsn

        selector = self._selector()
        with connect(warehouse_dsn(self.warehouse_conn_id)) as conn:
            tasks, doubts = len(open_tasks(conn, selector)), len(open_doubts(conn, selector))
        self.log.info("SUMMARY poke: %d AccuAuth task(s) open, %d in-doubt submit(s) watched", tasks, doubts)
        return not tasks and not doubts, {"status": "done", "selector": selector.to_dict(), "stats": {}}

    def trigger(self, context: Any, summary: dict[str, Any] | None = None, deadline: float | None = None):
        from phonecheck_airflow.triggers.accuauth import AccuAuthTaskTrigger

        selector = self._selector()
        return AccuAuthTaskTrigger.from_wait_settings(
            self._wait_settings(),
            run_id=selector.run_id,
            max_submission_id=selector.max_submission_id,
            accuauth_conn_id=self.accuauth_conn_id,
            warehouse_conn_id=self.warehouse_conn_id,
            dag_id=self.dag_id,
            deadline=deadline,
        )

    def _wait_here(self, context: Any, *, once: bool) -> dict[str, Any]:
        """Not deferring: the trigger's polling, run in the worker (see the class), then loaded."""
        import asyncio

        from phonecheck.accuauth.store import load_wait
        from phonecheck.warehouse import connect
        from phonecheck_airflow.warehouse import warehouse_dsn

        dsn = warehouse_dsn(self.warehouse_conn_id)
        trigger = self.trigger(context, deadline=self.clock() + self.timeout)

        async def wait() -> dict[str, Any]:
            if once:
                return await trigger.poll(dsn, once=True)
            return [event async for event in trigger.wait(dsn)][0].payload

        event = asyncio.run(wait())
        with connect(dsn) as conn:
            load_wait(conn, self._selector())
        return event

    def execute(self, context: Any) -> dict[str, Any] | None:
        if self.defers or self.reschedule:
            return super().execute(context)
        # mode="poke" without deferring: the trigger's whole wait, in this worker slot
        self.render_times()
        return self.execute_complete(context, self._wait_here(context, once=False))

    def before_poke(self, context: Any) -> None:
        """``mode="reschedule"``: one polling pass per try, before the (read-only) poke."""
        self.fail_on_vendor_error(self._wait_here(context, once=True))

    @staticmethod
    def fail_on_vendor_error(event: dict[str, Any]) -> None:
        if event.get("status") == "error" and event.get("error"):
            # bad credentials, quota, wrong URL: a retry cannot help
            raise AirflowFailException(f"AccuAuth wait failed: {event.get('message')}")

    def summary_of_event(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from phonecheck_airflow.triggers.accuauth import summary

        stats = event.get("stats", {})
        if event["status"] == "done":
            self.log.info("SUMMARY %s", summary(stats))
        return {
            "status": event["status"],
            "selector": event.get("selector") or self._selector().to_dict(),
            "stats": stats,
        }

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        self.fail_on_vendor_error(event or {})
        return super().execute_complete(context, event)
