"""Turn stored vendor pushes (``raw.webhook_event``) into typed rows in ``telco.*``.

Scheduled by events: an ``AssetWatcher`` on the inbox asset runs ``WebhookInboxTrigger`` in the
triggerer, which fires when the receiver has stored new decodable pushes; a 15-minute timetable
is the safety net (triggerer down, a watcher event lost). Processing is idempotent, so an extra
run only finds nothing to do. Rows that cannot be mapped are kept with ``process_error``.
"""

from __future__ import annotations

import airflow.triggers.base  # noqa: F401  # named so the dag-processor pre-imports it (docs/development.md)
import pendulum
from airflow.sdk import Asset, AssetOrTimeSchedule, AssetWatcher, CronTriggerTimetable, dag

from phonecheck_airflow.operators.push_processing import ProcessWebhookInboxOperator
from phonecheck_airflow.triggers.inbox import WebhookInboxTrigger

webhook_inbox = Asset(
    # A plain name, no URI scheme: a schemed URI makes Airflow load every provider's asset-URI
    # handler at parse time (the postgres one imports the ORM asset model: +60 ms per parse).
    name="telco_webhook_inbox",
    watchers=[
        AssetWatcher(
            name="telco_webhook_inbox_watcher",
            trigger=WebhookInboxTrigger(warehouse_conn_id="warehouse", poll_interval=5.0),
        )
    ],
)


@dag(
    dag_id="telco_push_processing",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("*/15 * * * *", timezone="UTC"), assets=[webhook_inbox]
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["telco", "webhooks", "nxcloud", "accuauth"],
    default_args={"owner": "data-platform", "retries": 2, "retry_delay": pendulum.duration(seconds=30)},
    doc_md=__doc__,
)
def telco_push_processing():
    ProcessWebhookInboxOperator(task_id="process_inbox", warehouse_conn_id="warehouse")


telco_push_processing()
