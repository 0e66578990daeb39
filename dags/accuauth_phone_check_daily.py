"""AccuAuth phone status, daily re-poll: every task still open (of any run) polled, loaded, expired.

One job: a run whose wait ended early (failed, timed out, or the triggerer restarted) leaves
``PENDING`` tasks; each day at 06:00 UTC this DAG waits for all open tasks in ONE deferrable
trigger (callbacks that arrived in the meantime finish tasks without a poll), loads what came,
marks tasks past their 24 h validity ``EXPIRED`` and validates the rows. It submits nothing and
spends nothing. Rate and polling are extras of the ``accuauth_default`` connection
(docs/pipelines.md). The on-demand check is ``accuauth_phone_check``.
"""

from __future__ import annotations

import airflow.sdk.bases.sensor  # noqa: F401  # the sensor's base, pre-imported by the dag-processor (docs/development.md)
import pendulum
from airflow.sdk import dag, task

from phonecheck_airflow.assets import ACCUAUTH_RESULTS
from phonecheck_airflow.conn_ids import ACCUAUTH_CONN_ID, ACCUAUTH_WAIT_SETTINGS, WAREHOUSE_CONN_ID
from phonecheck_airflow.notifiers import alert_notifiers
from phonecheck_airflow.sensors.accuauth import AccuAuthTasksSensor

#: The wait's tuning, as ``select_open_tasks`` handed it on (read from the connection's extras).
WAIT = "{{{{ ti.xcom_pull(task_ids='select_open_tasks')['wait']['{}'] }}}}"


@dag(
    dag_id="accuauth_phone_check_daily",
    schedule="0 6 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["accuauth", "phone-check", "daily"],
    default_args={
        "owner": "data-platform",
        "retries": 1,
        "retry_delay": pendulum.duration(seconds=30),
        "on_failure_callback": alert_notifiers("task_failed"),
    },
    doc_md=__doc__,
)
def accuauth_phone_check_daily():
    @task
    def select_open_tasks(**context) -> dict:
        """Every open task submitted so far (keys only: the wait reads them from the warehouse)."""
        from phonecheck_airflow.tasks import accuauth

        return accuauth.open_tasks(context)

    selected = select_open_tasks()
    wait = AccuAuthTasksSensor(
        task_id="wait_for_tasks",
        selector=selected,
        accuauth_conn_id=ACCUAUTH_CONN_ID,
        warehouse_conn_id=WAREHOUSE_CONN_ID,
        wait_settings={k: WAIT.format(k) for k in ACCUAUTH_WAIT_SETTINGS},
        deferrable=True,  # Airflow's default_deferrable is False (docs/airflow.md)
    )

    @task(outlets=[ACCUAUTH_RESULTS])
    def load_results(event: dict, **context) -> dict:
        """Load what the wait left in the warehouse, callbacks included; close submissions."""
        from phonecheck_airflow.assets import announce
        from phonecheck_airflow.tasks import accuauth

        loaded = accuauth.load_results(event, context)
        announce(context, ACCUAUTH_RESULTS, loaded)  # the Asset event: counts
        return loaded

    @task
    def expire_stale_tasks(loaded: dict, **context) -> dict:
        """Tasks past their 24 h validity end as EXPIRED: never polled forever."""
        from phonecheck_airflow.tasks import accuauth

        return accuauth.expire_stale_tasks(loaded, context)

    @task(on_failure_callback=alert_notifiers("dq_failed"))
    def validate(expired: dict, **context) -> dict:
        """Validate the rows the re-poll wrote."""
        from phonecheck_airflow.tasks import accuauth

        return accuauth.validate(expired, context)

    validate(expire_stale_tasks(load_results(wait.output)))


accuauth_phone_check_daily()
