"""Sensor: wait for AccuAuth tasks, deferred (no worker slot held) or poking."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from phonecheck_airflow.conn_ids import ACCUAUTH_CONN_ID, WAREHOUSE_CONN_ID

#: ``wait_settings`` keys (:class:`phonecheck.accuauth.waiter.WaitSettings` names, what the DAG
#: params feed) → the trigger's parameters (the shared trigger naming, docs/airflow.md "Triggers").
TRIGGER_KWARGS = {
    "poll_interval_s": "poll_interval",
    "max_poll_interval_s": "max_poll_interval",
    "backoff_factor": "backoff_factor",
    "max_requests_per_second": "max_requests_per_second",
    "max_in_flight": "max_in_flight",
    "warehouse_check_interval_s": "warehouse_check_interval",
}


class AccuAuthTasksSensor(BaseSensorOperator):
    """Waits until every AccuAuth task of a selection is finished, ended or expired, and every
    in-doubt submit of the run is settled or out of its window.

    ``deferrable=True`` (default): pokes once (warehouse only, no vendor call), then defers to ONE
    :class:`~phonecheck_airflow.triggers.accuauth.AccuAuthTaskTrigger` for all open tasks, imported
    only then; ``timeout`` bounds the deferral (when it runs out Airflow resumes the sensor with
    ``AirflowSensorTimeout``, as for any deferred sensor). ``deferrable=False`` or
    ``mode="reschedule"``: a classic sensor honouring ``mode`` (``poke`` / ``reschedule``),
    ``poke_interval`` and ``timeout``; each poke polls the tasks that are due once and loads what
    came back. Either way a task's first poll comes ``wait_settings["poll_interval_s"]`` after its
    submission, by default ``poke_interval`` (30 s).

    Either way the vendor's answers land verbatim in ``raw.vendor_answer`` and the sensor returns
    only the selector and counts (XCom stays small whatever the number of tasks); the load task
    reads the answers from the warehouse. Tasks live 24 h at the vendor, so the default timeout
    is 25 h.

    :param selector: ``{"run_id": str | None, "max_submission_id": int}`` (what the submit task
        returns): the run whose tasks to wait for, ``run_id`` None = every open task.
    :param accuauth_conn_id: the ``accuauth`` connection.
    :param warehouse_conn_id: the warehouse connection.
    :param wait_settings: ``poll_interval_s``, ``max_poll_interval_s``, ``backoff_factor``,
        ``max_requests_per_second``, ``max_in_flight``, ``warehouse_check_interval_s``.
    :param deferrable: wait in the triggerer (default) or by poking.
    """

    template_fields: Sequence[str] = ("selector", "wait_settings")

    def __init__(
        self,
        *,
        selector: dict[str, Any] | Any,
        accuauth_conn_id: str = ACCUAUTH_CONN_ID,
        warehouse_conn_id: str = WAREHOUSE_CONN_ID,
        wait_settings: dict[str, Any] | None = None,
        deferrable: bool = True,
        timeout: float = timedelta(hours=25).total_seconds(),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retries", 1)  # the deferral race in docs/airflow.md needs retries >= 1
        kwargs.setdefault("poke_interval", 30.0)  # WaitSettings' first-poll delay
        super().__init__(timeout=timeout, **kwargs)
        self.selector = selector
        self.accuauth_conn_id = accuauth_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.wait_settings = wait_settings or {}
        if unknown := set(self.wait_settings) - set(TRIGGER_KWARGS):  # a typo fails the DAG's parse
            raise ValueError(f"unknown wait_settings {sorted(unknown)}; known: {sorted(TRIGGER_KWARGS)}")
        self.deferrable = deferrable

    @property
    def _defers(self) -> bool:
        """Wait in the triggerer: ``deferrable`` and not an explicit ``mode="reschedule"``."""
        return self.deferrable and self.mode != "reschedule"

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

    def _settings(self):
        from phonecheck.accuauth.waiter import WaitSettings

        return WaitSettings(**self._wait_settings())

    def _still_open(self) -> tuple[int, int]:
        from phonecheck.accuauth.store import open_doubts, open_tasks
        from phonecheck.warehouse import connect
        from phonecheck_airflow.warehouse import warehouse_dsn

        selector = self._selector()
        with connect(warehouse_dsn(self.warehouse_conn_id)) as conn:
            return len(open_tasks(conn, selector)), len(open_doubts(conn, selector))

    def _poll_once(self, context: Any) -> None:
        """One pass over the due tasks (sensor without trigger), then load what came back."""
        import asyncio

        from phonecheck.accuauth.api import FATAL_ERRORS
        from phonecheck.accuauth.store import load_wait
        from phonecheck.accuauth.waiter import run_wait
        from phonecheck.warehouse import connect
        from phonecheck_airflow.hooks.accuauth import AccuAuthHook
        from phonecheck_airflow.warehouse import warehouse_dsn

        dsn = warehouse_dsn(self.warehouse_conn_id)
        hook = AccuAuthHook(self.accuauth_conn_id)

        async def one_pass() -> None:
            async with await hook.aget_async_client() as client:
                await run_wait(client, dsn, self._selector(), self._settings(), dag_id=self.dag_id, once=True)

        try:
            asyncio.run(one_pass())
        except FATAL_ERRORS as exc:
            raise AirflowFailException(f"AccuAuth wait failed: {exc}") from None
        with connect(dsn) as conn:
            load_wait(conn, self._selector())

    def poke(self, context: Any) -> bool:
        """True when nothing of the selection is still open. Without a trigger, polls first."""
        if not self._defers:
            self._poll_once(context)
        tasks, doubts = self._still_open()
        self.log.info("SUMMARY poke: %d AccuAuth task(s) open, %d in-doubt submit(s) watched", tasks, doubts)
        return not tasks and not doubts

    def _done(self, stats: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"status": "done", "selector": self._selector().to_dict(), "stats": stats or {}}

    def execute(self, context: Any) -> dict[str, Any]:
        if not self._defers:
            super().execute(context)  # poke / reschedule, poke_interval, timeout: the standard loop
            return self._done()
        if self.poke(context):
            return self._done()
        from phonecheck_airflow.triggers.accuauth import AccuAuthTaskTrigger

        selector = self._selector()
        self.defer(
            trigger=AccuAuthTaskTrigger(
                run_id=selector.run_id,
                max_submission_id=selector.max_submission_id,
                accuauth_conn_id=self.accuauth_conn_id,
                warehouse_conn_id=self.warehouse_conn_id,
                dag_id=self.dag_id,
                **{TRIGGER_KWARGS[key]: value for key, value in self._wait_settings().items()},
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: fail on an account-wide vendor error, else hand the
        selector and counts on (the answers are in the warehouse)."""
        if not event:
            raise AirflowException("AccuAuth wait resumed without an event")
        if event.get("status") == "error":
            # bad credentials, quota, wrong URL: a retry cannot help
            raise AirflowFailException(f"AccuAuth wait failed: {event.get('message')}")
        stats = event.get("stats", {})
        self.log.info(
            "SUMMARY wait: %s task(s) finished by poll, %s ended by the vendor, %s by callback, %s expired",
            stats.get("finished_by_poll", 0), stats.get("ended_by_vendor", 0),
            stats.get("finished_elsewhere", 0), stats.get("expired", 0),
        )  # fmt: skip
        self.log.info(
            "SUMMARY wait: %s in-doubt submit(s) settled by callback, %s still in doubt; %s poll(s), %s vendor call(s)",
            stats.get("doubts_settled", 0), stats.get("doubts_unsettled", 0),
            stats.get("polls", 0), stats.get("vendor_calls", 0),
        )  # fmt: skip
        return {
            "status": "done",
            "selector": event.get("selector") or self._selector().to_dict(),
            "stats": stats,
        }
