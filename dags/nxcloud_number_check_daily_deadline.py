"""Deadline of the daily NXCLOUD reconciliation: at 08:00 UTC, is yesterday's sync done?

``nxcloud_number_check_daily`` syncs vendor day D once D has ended plus a 4 h grace for late
pushes, so its run for D is due by 08:00 UTC on D+1. This DAG runs then and checks that run
(``phonecheck_airflow.tasks.deadline``): not successful → ``deadline_missed`` is posted to the
alerts webhook (docs/operations.md "Alerts") and the check fails; no run for D (the daily DAG is
paused) → nothing was due. A task instead of an Airflow ``DeadlineAlert`` so that ``airflow dags
test`` runs every DAG of the project (docs/airflow.md).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task


@dag(
    dag_id="nxcloud_number_check_daily_deadline",
    schedule=CronTriggerTimetable("0 8 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["nxcloud", "daily", "alerts"],
    default_args={"owner": "telco-data", "retries": 1, "retry_delay": pendulum.duration(minutes=5)},
    doc_md=__doc__,
)
def nxcloud_number_check_daily_deadline():
    @task
    def check_daily_run(**context) -> dict:
        from phonecheck_airflow.tasks import deadline

        return deadline.check_daily_deadline(context)

    check_daily_run()


nxcloud_number_check_daily_deadline()
