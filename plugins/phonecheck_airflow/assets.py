"""Airflow Assets for the warehouse tables the pipelines land typed results in.

The tasks that load results (NXCLOUD ``load`` and the daily ``sync``, AccuAuth
``load_results``) name these as outlets, so each successful load is an Asset event: a user's
DAG scheduled on ``Asset("telco.nxcloud_number_check")`` runs when new verified results landed
(docs/pipelines.md "Scheduling on new results"). The event's ``extra`` carries the run key (or
vendor day) and counts, never numbers.

Light on purpose: DAG files import it at parse time (only ``airflow.sdk.Asset``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Asset

NXCLOUD_RESULTS = Asset(name="telco.nxcloud_number_check", group="warehouse")
ACCUAUTH_RESULTS = Asset(name="telco.accuauth_phone_check", group="warehouse")

#: What a load step's XCom may pass on into the event's extra: keys and counts only.
EXTRA_KEYS = ("run_key", "vendor_date", "batches", "rows", "results", "expected", "complete_batches",
              "query_rows", "completed_batches", "loaded_batches", "polled", "callbacks", "adopted")  # fmt: skip


def announce(context: Mapping[str, Any], asset: Asset, summary: Mapping[str, Any]) -> None:
    """Put the run key and counts of ``summary`` into the extra of this task's event for ``asset``."""
    extra = {key: summary[key] for key in EXTRA_KEYS if summary.get(key) is not None}
    extra.setdefault("run_key", f"{context['dag'].dag_id}/{context['run_id']}")
    context["outlet_events"][asset].extra = extra
