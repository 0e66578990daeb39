"""Operators for personal data: erase numbers on request, expire data past its retention window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from phonecheck_airflow.conn_ids import WAREHOUSE_CONN_ID


class PhoneDataErasureOperator(BaseOperator):
    """Erase phone numbers everywhere (``phonecheck.privacy.erasure.erase_numbers``).

    Logs and returns masked numbers and counts only; ``ops.erasure_log`` keeps the record by
    pseudonym. Idempotent: a retry (or a second request) finds nothing left to erase.

    :param numbers: one number per line (any format; E.164 preferred).
    :param reason: why (e.g. the data subject's request reference); stored with numbers masked.
    :param dry_run: only count what would be erased.
    :param warehouse_conn_id: the warehouse connection.
    """

    template_fields: Sequence[str] = ("numbers", "reason", "dry_run", "warehouse_conn_id")

    def __init__(
        self,
        *,
        numbers: str,
        reason: str,
        dry_run: bool | str = False,
        warehouse_conn_id: str = WAREHOUSE_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.numbers = numbers
        self.reason = reason
        self.dry_run = dry_run
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context: Any) -> dict:
        from phonecheck.privacy.erasure import erase_numbers, parse_numbers
        from phonecheck_airflow.warehouse import warehouse_dsn

        dag_run = context.get("dag_run")
        requested_by = getattr(dag_run, "triggering_user_name", None) or (
            f"{dag_run.dag_id}/{dag_run.run_id}" if dag_run else None
        )
        dry_run = self.dry_run if isinstance(self.dry_run, bool) else str(self.dry_run).lower() == "true"
        report = erase_numbers(
            warehouse_dsn(self.warehouse_conn_id),
            parse_numbers(self.numbers),
            reason=self.reason,
            dry_run=dry_run,
            requested_by=requested_by,
        )
        self.log.info("%s", report.describe())
        return {"erasure_run": report.erasure_run, "numbers": len(report.found), "items": report.total}


class PhoneDataRetentionOperator(BaseOperator):
    """Enforce the retention windows of ``ops.retention_policy`` (``phonecheck.privacy.retention``).

    Drops expired ``raw.webhook_event`` partitions, creates the coming days' ones, deletes
    expired rows elsewhere and prunes old Data Docs pages. Returns the counts.

    :param warehouse_conn_id: the warehouse connection.
    :param dry_run: only report what would be removed.
    """

    template_fields: Sequence[str] = ("warehouse_conn_id", "dry_run")

    def __init__(
        self, *, warehouse_conn_id: str = WAREHOUSE_CONN_ID, dry_run: bool | str = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.warehouse_conn_id = warehouse_conn_id
        self.dry_run = dry_run

    def execute(self, context: Any) -> dict:
        from phonecheck.privacy.retention import enforce_retention
        from phonecheck_airflow.warehouse import warehouse_dsn

        dry_run = self.dry_run if isinstance(self.dry_run, bool) else str(self.dry_run).lower() == "true"
        result = enforce_retention(warehouse_dsn(self.warehouse_conn_id), dry_run=dry_run)
        self.log.info("%s", result.describe())
        return result.counts
