"""Alerts: Airflow notifiers for failed runs, failed data-quality checks and missed deadlines."""

from phonecheck_airflow.notifiers.alerts import (
    ALERT_EMAILS_VARIABLE,
    EmailAlertNotifier,
    WebhookNotifier,
    alert_notifiers,
)

__all__ = [
    "ALERT_EMAILS_VARIABLE",
    "EmailAlertNotifier",
    "WebhookNotifier",
    "alert_notifiers",
]
