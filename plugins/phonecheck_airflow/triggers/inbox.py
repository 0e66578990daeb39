"""``WebhookInboxTrigger``: an event trigger that fires when the webhook inbox has new work.

Used through an ``AssetWatcher`` (docs/airflow.md) to schedule ``telco_push_processing`` as
soon as the receiver stores a push. It only READS: a trigger may run twice (triggerer restart,
HA triggerers), so it never claims or marks rows; the DAG's task does that, under
``FOR UPDATE SKIP LOCKED``.

It yields when the newest unprocessed row id is higher than the one it last announced, and again
every ``reannounce_after`` seconds while unprocessed rows remain (a failed run must not leave
rows waiting until the next push). State is in memory only: a restarted trigger announces once
more, which costs one idempotent run. A warehouse that cannot be read is logged and looked at
again on the next round: the watcher never dies of a restarting database.

The DAG file builds this trigger at parse time: this module imports only the trigger base
(``airflow.triggers.base``, pre-imported by the dag-processor) at module level.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from airflow.triggers.base import BaseEventTrigger

from phonecheck_airflow.conn_ids import WAREHOUSE_CONN_ID
from phonecheck_airflow.triggers.base import PhonecheckTrigger

PENDING_SQL = """
SELECT count(*), max(event_id)
FROM raw.webhook_event
WHERE processed_at IS NULL AND parse_status = 'parsed'
"""


class WebhookInboxTrigger(PhonecheckTrigger, BaseEventTrigger):
    """Fire when ``raw.webhook_event`` holds unprocessed, decodable rows.

    Event payload: ``{"pending": <rows>, "max_event_id": <newest such row>}`` (counts only; the
    asset event's extra).

    :param warehouse_conn_id: the warehouse connection (postgres type).
    :param poll_interval: seconds between two looks at the inbox.
    :param reannounce_after: seconds after which still-pending rows are announced again.
    """

    fires_once: ClassVar[bool] = False  # an AssetWatcher's trigger: it keeps watching

    def __init__(
        self,
        warehouse_conn_id: str = WAREHOUSE_CONN_ID,
        poll_interval: float = 5.0,
        reannounce_after: float = 300.0,
    ) -> None:
        super().__init__(warehouse_conn_id=warehouse_conn_id, poll_interval=poll_interval)
        self.reannounce_after = float(reannounce_after)
        self._announced_id = 0
        self._announced_at = 0.0

    async def pending(self, dsn: str) -> tuple[int, int | None]:
        """(unprocessed decodable rows, newest such event id) — a read-only query."""
        import psycopg

        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            cur = await conn.execute(PENDING_SQL)
            count, max_id = await cur.fetchone()
        return count, max_id

    async def check(self, dsn: str) -> dict[str, Any] | None:
        count, max_id = await self.pending(dsn)
        if not count or max_id is None:
            return None
        now = time.monotonic()
        if max_id > self._announced_id or now - self._announced_at >= self.reannounce_after:
            self._announced_id, self._announced_at = max_id, now
            return {"pending": count, "max_event_id": max_id}
        return None
