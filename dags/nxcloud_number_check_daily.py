"""NXCLOUD number check, daily reconciliation through the query API.

For the run's vendor date (the data interval start in the ``nxcloud_default`` connection's
``query_timezone``, default UTC; a manual run without a logical date takes run_after - 1 day, or
the ``vendor_date`` param): every batch we submitted or saw in pushes that day, every page of the
query API, upserted into ``telco.nxcloud_number_check``; pushes that never arrived (query rows
without a push) are logged and written to ``ops.query_sync_report``. NXCLOUD keeps 14 days: an
older date fails at once with a message saying what we hold for it.

Backfill: ``airflow backfill create --dag-id nxcloud_number_check_daily --from-date D1 --to-date D2``
(with this 1-day-interval trigger timetable, run times D1..D2 cover the days before them).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, dag, task

from phonecheck_airflow.operators.quality import ValidateLoadedRowsOperator


@dag(
    dag_id="nxcloud_number_check_daily",
    # 04:00 UTC: the previous UTC day is over and its late pushes (retried up to 60 min) are in.
    schedule=CronTriggerTimetable("0 4 * * *", timezone="UTC", interval=timedelta(days=1)),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # the query API allows one call every few seconds: one day at a time
    tags=["nxcloud", "number-check", "daily", "reconciliation"],
    default_args={"owner": "telco-data", "retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    doc_md=__doc__,
    params={
        "vendor_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Vendor date",
            description="Sync this date instead of the run's data interval (yyyy-mm-dd, within 14 days).",
        ),  # fmt: skip
    },
)
def nxcloud_number_check_daily():
    @task
    def plan(params=None, **context) -> dict:
        from phonecheck_airflow.operators import nxcloud

        return nxcloud.plan_day(params, context)

    @task
    def sync(day: dict, **context) -> list[str]:
        from phonecheck_airflow.operators import nxcloud

        return nxcloud.sync_day(day, context)

    loaded = sync(plan())
    ValidateLoadedRowsOperator(
        task_id="validate", table="telco.nxcloud_number_check", key_column="batch_no", key_values=loaded
    )


nxcloud_number_check_daily()
