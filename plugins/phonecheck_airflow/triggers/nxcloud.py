"""Wait for the results of NXCLOUD number-check batches, read-only."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

log = logging.getLogger(__name__)


class NxCloudResultsTrigger(BaseTrigger):
    """Fires once every number the run ``run_key`` submitted has a result, or at ``deadline``.

    It only READS the warehouse (a trigger may run more than once): the run's batches are the
    ones its submissions recorded (``ops.number_check_submission``, by run key), read on every
    poll, so its kwargs stay the same size whatever the number of batches. A number has a
    result when its push is in the inbox (``raw.webhook_event``, stored by the receiver) or a
    row for it is in ``telco.nxcloud_number_check``. Numbers the vendor refused at submit are
    not expected. It makes no vendor call: the query API is used once, afterwards, by the
    reconcile task.

    Event payload: ``{"status": "done" | "timeout", "expected": n, "results": n, "polls": n}``,
    or ``{"status": "error", "message": ...}`` when the warehouse could not be read.

    :param run_key: the run whose batches to wait for, ``"<dag_id>/<run_id>"``.
    :param warehouse_conn_id: the warehouse (postgres) connection.
    :param poll_interval_s: seconds between two counts.
    :param deadline: epoch seconds after which the trigger gives up and reports ``timeout``.
    """

    def __init__(
        self,
        run_key: str,
        warehouse_conn_id: str = "warehouse",
        poll_interval_s: float = 10.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.run_key = str(run_key)
        self.warehouse_conn_id = warehouse_conn_id
        self.poll_interval_s = float(poll_interval_s)
        self.deadline = None if deadline is None else float(deadline)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "phonecheck_airflow.triggers.nxcloud.NxCloudResultsTrigger",
            {
                "run_key": self.run_key,
                "warehouse_conn_id": self.warehouse_conn_id,
                "poll_interval_s": self.poll_interval_s,
                "deadline": self.deadline,
            },
        )

    async def _count(self, dsn: str) -> tuple[int, int]:
        import psycopg

        from phonecheck.nxcloud.results import COUNT_RESULTS_SQL
        from phonecheck.nxcloud.submissions import RUN_BATCHES_SQL, split_run_key

        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            cur = await conn.execute(RUN_BATCHES_SQL, split_run_key(self.run_key))
            batches = [row[0] for row in await cur.fetchall()]
            cur = await conn.execute(COUNT_RESULTS_SQL, {"batches": batches})
            expected, results = await cur.fetchone()
        return expected, results

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from phonecheck_airflow.warehouse import async_warehouse_dsn

        try:
            dsn = await async_warehouse_dsn(self.warehouse_conn_id)
        except Exception as exc:  # noqa: BLE001 - reported to the sensor, which fails clearly
            yield TriggerEvent(
                {"status": "error", "message": f"warehouse connection: {type(exc).__name__}: {exc}"}
            )
            return
        polls, last = 0, None
        while True:
            polls += 1
            try:
                expected, results = await self._count(dsn)
            except Exception as exc:  # noqa: BLE001 - a transient DB error: keep waiting, say so
                log.warning("NXCLOUD results count failed (%s); trying again", type(exc).__name__)
                expected, results = last or (None, None)
            if expected is not None and (expected, results) != last:
                log.info("NXCLOUD results: %d/%d numbers have a result", results, expected)
                last = (expected, results)
            if expected is not None and results >= expected:
                yield TriggerEvent(
                    {"status": "done", "expected": expected, "results": results, "polls": polls}
                )
                return
            if self.deadline is not None and time.time() >= self.deadline:
                yield TriggerEvent(
                    {"status": "timeout", "expected": expected, "results": results, "polls": polls}
                )
                return
            await asyncio.sleep(self.poll_interval_s)
