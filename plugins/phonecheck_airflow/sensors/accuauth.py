"""Deferrable sensor: wait for AccuAuth tasks without holding a worker slot (issue #5)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from phonecheck_airflow.triggers.accuauth import AccuAuthTaskTrigger


class AccuAuthTasksSensor(BaseSensorOperator):
    """Pokes once, then defers to ONE :class:`AccuAuthTaskTrigger` for all open tasks.

    The poke reads the warehouse only (no vendor call): if every task of the selection is
    already finished (callbacks, an earlier wait), the sensor succeeds at once. Otherwise it
    defers; the trigger polls the vendor and the sensor resumes in :meth:`execute_complete`
    with the results, which it returns (XCom) for the load task. No worker slot is held while
    the tasks are pending. Tasks live 24 h at the vendor, so the default deferral timeout is 25 h.

    :param selector: ``{"run_id": str | None, "max_submission_id": int}`` (what the submit task
        returns): the run whose tasks to wait for, ``run_id`` None = every open task.
    :param accuauth_conn_id: the ``accuauth`` connection.
    :param warehouse_conn_id: the warehouse connection.
    :param wait_settings: passed to the trigger: ``poll_interval_s``, ``max_poll_interval_s``,
        ``backoff_factor``, ``max_requests_per_second``, ``max_in_flight``,
        ``warehouse_check_interval_s``.
    """

    template_fields: Sequence[str] = ("selector", "wait_settings")

    def __init__(
        self,
        *,
        selector: dict[str, Any] | Any,
        accuauth_conn_id: str = "accuauth_default",
        warehouse_conn_id: str = "warehouse",
        wait_settings: dict[str, Any] | None = None,
        timeout: float = timedelta(hours=25).total_seconds(),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retries", 1)  # airflow-notes §2: defer races need retries >= 1
        super().__init__(timeout=timeout, **kwargs)
        self.selector = selector
        self.accuauth_conn_id = accuauth_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.wait_settings = wait_settings or {}

    def _selector(self):
        from phonecheck.accuauth.store import WaitSelector

        return WaitSelector.from_dict(self.selector)

    def poke(self, context: Any) -> bool:
        """True when no task of the selection is still open (warehouse only)."""
        from phonecheck.accuauth.store import open_tasks
        from phonecheck.warehouse import connect
        from phonecheck_airflow.warehouse import warehouse_dsn

        with connect(warehouse_dsn(self.warehouse_conn_id)) as conn:
            still_open = open_tasks(conn, self._selector())
        self.log.info("%d AccuAuth task(s) still open", len(still_open))
        return not still_open

    def execute(self, context: Any) -> dict[str, Any]:
        if self.poke(context):
            return {
                "status": "done",
                "result_fields": [],
                "results": [],
                "finished_elsewhere": [],
                "expired": [],
            }
        selector = self._selector()
        self.defer(
            trigger=AccuAuthTaskTrigger(
                run_id=selector.run_id,
                max_submission_id=selector.max_submission_id,
                accuauth_conn_id=self.accuauth_conn_id,
                warehouse_conn_id=self.warehouse_conn_id,
                **self.wait_settings,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: fail on a fatal vendor error, else hand the results on."""
        if not event:
            raise AirflowException("AccuAuth wait resumed without an event")
        if event.get("status") == "error":
            # bad credentials, quota, wrong URL: a retry cannot help
            raise AirflowFailException(f"AccuAuth wait failed: {event.get('message')}")
        stats = event.get("stats", {})
        self.log.info(
            "AccuAuth wait: %d finished by polling, %d by callback, %d expired; %s",
            len(event.get("results", [])),
            len(event.get("finished_elsewhere", [])),
            len(event.get("expired", [])),
            stats,
        )
        return event
