"""NXCLOUD number check, daily reconciliation through the query API.

A run is labelled by the vendor day it syncs: the run of logical date D (data interval
[D, D+1) in UTC) syncs vendor day D, in the ``nxcloud_default`` connection's ``query_timezone``
(default UTC). It is scheduled when D has ended and waits ``late_push_grace_hours`` more (in
reschedule mode: no worker slot held) so pushes the vendor retries late are in before missing
ones are reported. A manual run without a logical date syncs run_after - 1 day; the
``vendor_date`` param names a day directly (and skips the wait).

Every batch we submitted or saw in pushes that day, every page of the query API, upserted into
``telco.nxcloud_number_check``; pushes that never arrived (query rows without a push) are
logged and written to ``ops.query_sync_report``. NXCLOUD keeps 14 days: an older date fails at
once with a message saying what we hold for it.

Backfill days A..B (both included): ``airflow backfill create --dag-id nxcloud_number_check_daily
--from-date A --to-date B``; the DAG must be unpaused for the scheduler to run them (see
docs/getting-started.md "Backfills").
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.sensors.date_time import DateTimeSensor
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from phonecheck_airflow.assets import NXCLOUD_RESULTS
from phonecheck_airflow.notifiers import alert_notifiers


@dag(
    dag_id="nxcloud_number_check_daily",
    # Data intervals of one UTC day: logical date D = vendor day D, so a backfill of A..B syncs A..B.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # the query API allows one call every few seconds: one day at a time
    tags=["nxcloud", "number-check", "daily", "reconciliation"],
    default_args={
        "owner": "telco-data",
        "retries": 2,
        "retry_delay": pendulum.duration(minutes=5),
        "on_failure_callback": alert_notifiers("task_failed"),
    },
    doc_md=__doc__,
    # queued when the UTC day ends, it waits the 4 h grace and syncs: due by 08:00 UTC, which
    # nxcloud_number_check_daily_deadline checks (a task: dag.test() runs it, unlike a DeadlineAlert)
    params={
        "vendor_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Vendor date",
            description="Sync this date instead of the run's data interval (yyyy-mm-dd, within 14 days).",
        ),  # fmt: skip
        "late_push_grace_hours": Param(
            4,
            type="integer",
            minimum=0,
            title="Wait after the day (hours)",
            description="A scheduled run waits so long after its day ends: late push retries (up to 60 min) are in.",
        ),  # fmt: skip
    },
)
def nxcloud_number_check_daily():
    @task
    def plan(params=None, **context) -> dict:
        from phonecheck_airflow.tasks import nxcloud_daily

        return nxcloud_daily.plan_day(params, context)

    @task(outlets=[NXCLOUD_RESULTS])
    def sync(day: dict, **context) -> dict:
        from phonecheck_airflow.assets import announce
        from phonecheck_airflow.tasks import nxcloud_daily

        synced = nxcloud_daily.sync_day(day, context)
        announce(context, NXCLOUD_RESULTS, synced)  # the Asset event: vendor day and counts
        return synced

    @task(on_failure_callback=alert_notifiers("dq_failed"))
    def validate(synced: dict, **context) -> dict:
        """Great Expectations over the batches this run synced (read from ops.query_sync_report)."""
        from phonecheck_airflow.tasks import nxcloud_daily

        return nxcloud_daily.validate_day(synced, context)

    # Past days (backfills) pass at once; a scheduled run waits until D+1 plus the grace.
    wait = DateTimeSensor(
        task_id="wait_for_day_end",
        target_time="{{ (data_interval_end + macros.timedelta(hours=params.late_push_grace_hours)) "
        "if (data_interval_end and not params.vendor_date) else dag_run.run_after }}",
        mode="reschedule",
        poke_interval=600,
    )
    planned = plan()
    wait >> planned
    validate(sync(planned))


nxcloud_number_check_daily()
