"""Apply pending warehouse migrations through the ``warehouse`` connection.

Deployments run it once after an upgrade (the compose init service does the same from the CLI);
it is safe to run at any time: applied migrations are skipped, concurrent runs serialise.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="warehouse_migrate",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["warehouse", "ops"],
    default_args={"owner": "data-platform", "retries": 1},
    doc_md=__doc__,
)
def warehouse_migrate():
    @task
    def apply_migrations() -> list[str]:
        from phonecheck import warehouse
        from phonecheck_airflow.warehouse import warehouse_dsn

        applied = warehouse.migrate(warehouse_dsn())
        names = [f"V{m.version:04d}__{m.name}" for m in applied]
        print(f"applied {len(names)} migration(s): {names}")
        return names

    apply_migrations()


warehouse_migrate()
