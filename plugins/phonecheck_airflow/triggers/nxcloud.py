"""Wait for the results of NXCLOUD number-check batches, read-only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from airflow.triggers.base import TriggerEvent

from phonecheck_airflow.conn_ids import WAREHOUSE_CONN_ID
from phonecheck_airflow.triggers.base import PhonecheckTrigger

log = logging.getLogger(__name__)


class NxCloudResultsTrigger(PhonecheckTrigger):
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
    :param poll_interval: seconds between two counts.
    :param deadline: epoch seconds after which the trigger gives up and reports ``timeout``.

    Serialised by :class:`~phonecheck_airflow.triggers.base.PhonecheckTrigger` (every
    ``__init__`` parameter, read from its attribute).
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
            if self.deadline_passed():
                yield TriggerEvent(
                    {"status": "timeout", "expected": expected, "results": results, "polls": polls}
                )
                return
            await asyncio.sleep(self.poll_interval)
