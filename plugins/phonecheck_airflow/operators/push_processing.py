"""``ProcessWebhookInboxOperator``: turn stored vendor pushes into typed warehouse rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from phonecheck_airflow.conn_ids import WAREHOUSE_CONN_ID


class ProcessWebhookInboxOperator(BaseOperator):
    """Process unprocessed ``raw.webhook_event`` rows with ``phonecheck.receiver.processing``.

    Idempotent and safe to run concurrently (rows are claimed with ``FOR UPDATE SKIP LOCKED``,
    typed rows are upserted on their business keys). Returns the counts (pushed to XCom).

    :param warehouse_conn_id: the warehouse connection.
    :param limit: most inbox rows to process in one run (the rest waits for the next run).
    """

    template_fields: Sequence[str] = ("warehouse_conn_id", "limit")

    def __init__(
        self, *, warehouse_conn_id: str = WAREHOUSE_CONN_ID, limit: int = 50_000, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.warehouse_conn_id = warehouse_conn_id
        self.limit = limit

    def execute(self, context: Any) -> dict:
        from phonecheck.receiver.processing import process_inbox
        from phonecheck_airflow.warehouse import warehouse_dsn

        counts = process_inbox(warehouse_dsn(self.warehouse_conn_id), limit=int(self.limit))
        self.log.info(
            "inbox: %d claimed, %d processed, %d kept with an error; loaded %s",
            counts["claimed"],
            counts["processed"],
            counts["failed"],
            counts["loaded"],
        )
        return counts
