"""Wait for the results of NXCLOUD number-check batches, and for evidence about batches in doubt."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from phonecheck_airflow.conn_ids import NXCLOUD_CONN_ID, WAREHOUSE_CONN_ID
from phonecheck_airflow.triggers.base import PhonecheckTrigger

log = logging.getLogger(__name__)


class NxCloudRunTrigger(PhonecheckTrigger):
    """The parameters both NXCLOUD triggers share: the run they wait for, and the base's naming.

    :param run_key: the run, ``"<dag_id>/<run_id>"``; its batches are read from the warehouse
        on every look (``ops.number_check_submission``), so the kwargs stay the same size
        whatever the number of batches.
    :param warehouse_conn_id: the warehouse (postgres) connection.
    :param poll_interval: seconds between two looks.
    :param deadline: epoch seconds after which the trigger gives up and reports ``timeout``.
    """

    def __init__(
        self,
        run_key: str,
        warehouse_conn_id: str = WAREHOUSE_CONN_ID,
        poll_interval: float = 10.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__(warehouse_conn_id=warehouse_conn_id, poll_interval=poll_interval, deadline=deadline)
        self.run_key = str(run_key)


class NxCloudResultsTrigger(NxCloudRunTrigger):
    """Fires once every number the run ``run_key`` submitted has a result, or at ``deadline``.

    Only :meth:`check` is its own (the loop is the base's). It only READS the warehouse (a
    trigger may run more than once): a number has a result when its push is in the inbox
    (``raw.webhook_event``, stored by the receiver) or a row for it is in
    ``telco.nxcloud_number_check``. Numbers the vendor refused at submit are not expected. It
    makes no vendor call: the query API is used once, afterwards, by the reconcile task.

    Event payload: ``{"status": "done" | "timeout", "expected": n, "results": n, "polls": n}``
    (``expected``/``results`` ``None`` when no look succeeded), or ``{"status": "error",
    "message": ...}`` when the warehouse connection is unknown.
    """

    last: tuple[int, int] | None = None

    async def check(self, dsn: str) -> dict[str, Any] | None:
        import psycopg

        from phonecheck.nxcloud.results import COUNT_RESULTS_SQL
        from phonecheck.nxcloud.submissions import RUN_BATCHES_SQL, split_run_key

        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            cur = await conn.execute(RUN_BATCHES_SQL, split_run_key(self.run_key))
            batches = [row[0] for row in await cur.fetchall()]
            cur = await conn.execute(COUNT_RESULTS_SQL, {"batches": batches})
            expected, results = await cur.fetchone()
        if (expected, results) != self.last:
            log.info("NXCLOUD results: %d/%d numbers have a result", results, expected)
            self.last = (expected, results)
        if results >= expected:
            return {"status": "done", "expected": expected, "results": results, "polls": self.looks}
        return None

    def timeout_event(self) -> dict[str, Any]:
        expected, results = self.last or (None, None)
        return {"status": "timeout", "expected": expected, "results": results, "polls": self.looks}


class NxCloudInDoubtTrigger(NxCloudRunTrigger):
    """Waits for evidence about the batches of run ``run_key`` whose submit answer was lost.

    The window rules are :class:`phonecheck.nxcloud.in_doubt.InDoubtWatch`; this is its loop in
    the triggerer. Each round reads the run's batches in doubt and which of them have a push in
    the inbox or a typed row (the warehouse, read only), and sends the query probes that are due
    through the NXCLOUD client, spaced by the per-access-key limiter every other query of that
    key uses. Blocking work (psycopg, requests, the limiter's wait) runs in a thread
    (``asyncio.to_thread``) so the triggerer's event loop never stalls. It sends nothing paid and
    changes no row: the task that resumes acts on the event
    (:func:`phonecheck.nxcloud.in_doubt.act_on_evidence`).

    Event payload (keys and counts only): ``{"status": "settled" | "refused", "listed": [batch],
    "unlisted": [batch], "refused": [batch], "evidence": n, "probes": n, "refusals": n}``,
    ``{"status": "timeout", ...}`` at ``deadline``, or ``{"status": "error", "message"}`` when a
    connection could not be read.

    :param run_key: the run whose batches in doubt to watch, ``"<dag_id>/<run_id>"``.
    :param window_s: the push window plus our margin (``NxCloudSettings.in_doubt_after_s``).
    :param nxcloud_conn_id: the NXCLOUD connection the probes are signed with.
    :param warehouse_conn_id: the warehouse (inbox, typed rows, query limiter).
    :param poll_interval: seconds between two looks at the warehouse.
    :param deadline: epoch seconds after which the trigger reports ``timeout``.
    """

    def __init__(
        self, run_key: str, window_s: float, nxcloud_conn_id: str = NXCLOUD_CONN_ID, **kwargs: Any
    ) -> None:
        kwargs.setdefault("poll_interval", 5.0)
        super().__init__(run_key, **kwargs)
        self.window_s = float(window_s)
        self.nxcloud_conn_id = nxcloud_conn_id

    async def _client(self, dsn: str):
        from airflow.sdk import BaseHook

        from phonecheck.nxcloud.client import NxCloudClient
        from phonecheck.nxcloud.ratelimit import WarehouseIntervalLimiter
        from phonecheck_airflow.hooks.nxcloud import settings_from_connection

        conn = await BaseHook.aget_connection(self.nxcloud_conn_id)
        settings = settings_from_connection(conn, self.nxcloud_conn_id)
        limiter = WarehouseIntervalLimiter.for_account(dsn, settings)
        return NxCloudClient(settings, query_limiter=limiter)

    @staticmethod
    def _look(dsn: str, run_key: str) -> tuple[list[tuple[str, Any]], set[str]]:
        """The run's batches in doubt and those of them with evidence (blocking: in a thread)."""
        import psycopg

        from phonecheck.nxcloud.in_doubt import run_in_doubt, with_evidence

        with psycopg.connect(dsn, autocommit=True) as conn:
            batches = run_in_doubt(conn, run_key)
            return batches, with_evidence(conn, (b for b, _ in batches))

    async def wait(self, dsn: str) -> AsyncIterator[TriggerEvent]:
        from phonecheck.nxcloud.in_doubt import InDoubtWatch, probe

        try:
            client = await self._client(dsn)
        except Exception as exc:  # noqa: BLE001 - reported to the task, which fails clearly
            yield TriggerEvent({"status": "error", "message": f"connection: {type(exc).__name__}: {exc}"})
            return
        watch = InDoubtWatch(self.window_s)
        try:
            while True:
                try:
                    batches, pushed = await asyncio.to_thread(self._look, dsn, self.run_key)
                except Exception as exc:  # noqa: BLE001 - a transient warehouse error: keep waiting, say so
                    log.warning(
                        "NXCLOUD in doubt: warehouse look failed (%s); trying again", type(exc).__name__
                    )
                else:
                    still = {b for b, _ in batches}
                    for batch_no, since in batches:
                        watch.track(batch_no, since)
                    # settled elsewhere (an earlier resumption, a rerun): nothing left to decide
                    watch.settled_by_evidence([b for b in watch.pending if b not in still])
                    watch.settled_by_evidence(pushed)
                    for batch_no in watch.due(time.time()):
                        listed = await asyncio.to_thread(probe, client, batch_no, watch.since(batch_no))
                        watch.record(batch_no, time.time(), listed)
                    if watch.done:
                        log.info("NXCLOUD in doubt: %s", watch.event())
                        yield TriggerEvent(watch.event())
                        return
                if self.deadline_passed():
                    yield TriggerEvent({**watch.event(), "status": "timeout"})
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            limiter = client.query_limiter
            if hasattr(limiter, "close"):
                limiter.close()
