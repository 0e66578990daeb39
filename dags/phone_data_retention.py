"""Expire personal data past its retention window, daily (windows in ``ops.retention_policy``).

Drops ``raw.webhook_event`` partitions older than the raw-inbox window (no row-by-row delete),
creates the partitions of the coming days, deletes expired rows of the vendor answers, typed
results, ops and dq tables, and prunes old Data Docs pages. Defaults and how to change them:
docs/privacy.md.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, dag

from phonecheck_airflow.operators.privacy import PhoneDataRetentionOperator


@dag(
    dag_id="phone_data_retention",
    schedule=CronTriggerTimetable("30 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["privacy"],
    default_args={"owner": "data-platform", "retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    doc_md=__doc__,
)
def phone_data_retention():
    PhoneDataRetentionOperator(task_id="enforce_retention")


phone_data_retention()
