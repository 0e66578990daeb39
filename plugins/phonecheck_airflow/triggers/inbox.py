"""``WebhookInboxTrigger``: an event trigger that fires when the webhook inbox has new work.

Used through an ``AssetWatcher`` (docs/airflow.md) to schedule ``telco_push_processing`` as
soon as the receiver stores a push. It only READS: a trigger may run twice (triggerer restart,
HA triggerers), so it never claims or marks rows; the DAG's task does that, under
``FOR UPDATE SKIP LOCKED``.

It yields when the newest unprocessed row id is higher than the one it last announced, and again
every ``reannounce_after`` seconds while unprocessed rows remain (a failed run must not leave
rows waiting until the next push). State is in memory only: a restarted trigger announces once
more, which costs one idempotent run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from phonecheck_airflow.warehouse import async_warehouse_dsn

log = logging.getLogger(__name__)

PENDING_SQL = """
SELECT count(*), max(event_id)
FROM raw.webhook_event
WHERE processed_at IS NULL AND parse_status = 'parsed'
"""


class WebhookInboxTrigger(BaseEventTrigger):
    """Fire when ``raw.webhook_event`` holds unprocessed, decodable rows.

    :param conn_id: the warehouse connection (postgres type).
    :param poll_interval: seconds between two looks at the inbox.
    :param reannounce_after: seconds after which still-pending rows are announced again.
    """

    def __init__(
        self, conn_id: str = "warehouse", poll_interval: float = 5.0, reannounce_after: float = 300.0
    ):
        super().__init__()
        self.conn_id = conn_id
        self.poll_interval = poll_interval
        self.reannounce_after = reannounce_after

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "reannounce_after": self.reannounce_after,
            },
        )

    async def _dsn(self) -> str:
        return await async_warehouse_dsn(self.conn_id)

    async def pending(self, dsn: str) -> tuple[int, int | None]:
        """(unprocessed decodable rows, newest such event id) — a read-only query."""
        import psycopg

        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            cur = await conn.execute(PENDING_SQL)
            count, max_id = await cur.fetchone()
        return count, max_id

    async def run(self) -> AsyncIterator[TriggerEvent]:
        dsn = await self._dsn()
        announced_id = 0
        announced_at = 0.0
        while True:
            try:
                count, max_id = await self.pending(dsn)
            except Exception as exc:  # noqa: BLE001 - warehouse down: keep watching, do not die
                log.warning("webhook inbox not readable (%s); retrying", type(exc).__name__)
                count, max_id = 0, None
            if count and max_id is not None:
                now = time.monotonic()
                if max_id > announced_id or now - announced_at >= self.reannounce_after:
                    announced_id, announced_at = max_id, now
                    yield TriggerEvent({"pending": count, "max_event_id": max_id})
            await asyncio.sleep(self.poll_interval)
