"""Mounts the webhook receiver (``phonecheck.receiver``) in the Airflow api-server.

Airflow applies no authentication to plugin apps (docs/airflow.md): the receiver checks
its own path token. Behaviour: docs/receiver.md.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


def _receiver_apps() -> list[dict]:
    try:
        from phonecheck.receiver.app import create_app
    except ImportError:  # receiver not built yet
        return []
    return [{"app": create_app(mount_prefix=""), "url_prefix": "/telco-webhooks", "name": "telco_webhooks"}]


class TelcoWebhooksPlugin(AirflowPlugin):
    name = "telco_webhooks"
    fastapi_apps = _receiver_apps()
