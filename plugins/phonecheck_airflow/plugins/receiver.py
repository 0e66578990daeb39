"""Mounts the webhook receiver (``phonecheck.receiver``) in the Airflow api-server.

Airflow applies no authentication to plugin apps (docs/airflow.md): the receiver checks
its own path token. Behaviour: docs/receiver.md. Mounted here it reads its settings as the
pipelines do (docs/development.md, "Settings: one source each"): the token through Airflow's
Variables (``telco_webhook_token``, env ``TELCO_WEBHOOK_TOKEN`` as the other spelling), the
warehouse through the ``warehouse`` connection, or ``WAREHOUSE_DSN`` when set (as standalone).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


def _token() -> str | None:
    from phonecheck.webhook_urls import resolve
    from phonecheck_airflow.webhooks import airflow_variable

    return resolve(airflow_variable).token


def _dsn() -> str:
    import os

    from phonecheck import warehouse

    try:
        from airflow.exceptions import AirflowNotFoundException

        from phonecheck_airflow.warehouse import warehouse_dsn

        from_connection = warehouse_dsn()
    except AirflowNotFoundException:
        from_connection = None
    dsn = warehouse.pick(from_connection, os.environ.get(warehouse.DSN_ENV), "the warehouse connection")
    return dsn or warehouse.resolve_dsn()


def _receiver_apps() -> list[dict]:
    try:
        from phonecheck.receiver.app import ReceiverConfig, create_app
    except ImportError:  # receiver not built yet
        return []
    config = ReceiverConfig.from_env(token_provider=_token, dsn_provider=_dsn)
    return [
        {
            "app": create_app(mount_prefix="", config=config),
            "url_prefix": "/telco-webhooks",
            "name": "telco_webhooks",
        }
    ]


class TelcoWebhooksPlugin(AirflowPlugin):
    name = "telco_webhooks"
    fastapi_apps = _receiver_apps()
