"""Alert notifiers, configured by connection (docs/operations.md).

* :class:`WebhookNotifier` posts one JSON message (``text`` plus the event, DAG, run, task and a
  link to the run) to the URL of an HTTP connection, ``phonecheck_alerts_webhook`` by default:
  chat tools (Slack/Mattermost/Teams incoming webhooks) read ``text``; anything else can use the
  fields. Extra ``headers`` (a JSON object) are sent too.
* :class:`EmailAlertNotifier` sends the same message by mail with the smtp provider's
  ``SmtpNotifier`` through ``smtp_default``, to the addresses in the Airflow Variable
  ``phonecheck_alert_emails``.

Both do nothing (one log line) while their connection or recipients are not configured, so a
deployment without alerting runs unchanged, and an alert that cannot be delivered never fails a
run. :func:`alert_notifiers` gives the pair for an event; :func:`deadline_missed` is the async
callback of the daily reconciliation's deadline alert (it runs in the triggerer).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

log = logging.getLogger(__name__)

WEBHOOK_CONN_ID = "phonecheck_alerts_webhook"
SMTP_CONN_ID = "smtp_default"
ALERT_EMAILS_VARIABLE = "phonecheck_alert_emails"

MESSAGES = {
    "task_failed": "Phone checks: {{ dag.dag_id }} run {{ run_id }} failed at task {{ ti.task_id }}",
    "dq_failed": "Phone checks: data-quality check failed in {{ dag.dag_id }} run {{ run_id }} "
    "(task {{ ti.task_id }}): the rows are kept; see the task log and the Phone checks page",
}


def _url(conn: Any) -> str:
    """The webhook URL of an HTTP connection: a host holding the whole URL, or schema/host/port + the
    extra ``endpoint``."""
    host = conn.host or ""
    if "://" in host:
        return host
    scheme = conn.schema or "https"
    port = f":{conn.port}" if conn.port else ""
    endpoint = (conn.extra_dejson or {}).get("endpoint", "")
    return f"{scheme}://{host}{port}{endpoint}"


def _headers(conn: Any) -> dict[str, str]:
    headers = (conn.extra_dejson or {}).get("headers") or {}
    return {"Content-Type": "application/json", **{str(k): str(v) for k, v in headers.items()}}


def _run_url(context: Any) -> str | None:
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback=None)
    dag, run_id = context.get("dag"), context.get("run_id")
    if not base or dag is None or not run_id:
        return None
    from urllib.parse import quote

    return f"{base.rstrip('/')}/dags/{quote(dag.dag_id, safe='')}/runs/{quote(run_id, safe='')}"


class WebhookNotifier(BaseNotifier):
    """Post an alert as JSON to the URL of an HTTP connection.

    :param text: the message (templated).
    :param event: what happened (``task_failed``, ``dq_failed``, ``deadline_missed``...).
    :param webhook_conn_id: the HTTP connection holding the URL (and optional extra ``headers``).
    :param timeout: seconds for the POST.
    """

    template_fields: Sequence[str] = ("text",)

    def __init__(
        self, *, text: str, event: str, webhook_conn_id: str = WEBHOOK_CONN_ID, timeout: float = 10, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.text = text
        self.event = event
        self.webhook_conn_id = webhook_conn_id
        self.timeout = timeout

    def payload(self, context: Any) -> dict[str, Any]:
        ti = context.get("ti") or context.get("task_instance")
        dag = context.get("dag")
        exception = context.get("exception")
        return {
            "text": self.text,
            "event": self.event,
            "dag_id": getattr(dag, "dag_id", None),
            "run_id": context.get("run_id"),
            "task_id": getattr(ti, "task_id", None),
            "try_number": getattr(ti, "try_number", None),
            "error": str(exception)[:2000] if exception else None,
            "url": _run_url(context),
        }

    def _connection(self):
        from airflow.sdk import BaseHook

        try:
            return BaseHook.get_connection(self.webhook_conn_id)
        except Exception:  # noqa: BLE001 - not configured: alerts are optional
            log.info("alert %s not sent: no connection %r", self.event, self.webhook_conn_id)
            return None

    def notify(self, context: Any) -> None:
        import requests

        conn = self._connection()
        if conn is None:
            return
        try:
            answer = requests.post(
                _url(conn),
                data=json.dumps(self.payload(context)),
                headers=_headers(conn),
                timeout=self.timeout,
            )
            answer.raise_for_status()
        except requests.RequestException as exc:  # an undeliverable alert never fails the run
            log.warning("alert %s could not be delivered to %r: %s", self.event, self.webhook_conn_id, exc)

    async def async_notify(self, context: Any) -> None:
        import aiohttp
        from airflow.sdk import BaseHook

        try:
            conn = await BaseHook.aget_connection(self.webhook_conn_id)
        except Exception:  # noqa: BLE001
            log.info("alert %s not sent: no connection %r", self.event, self.webhook_conn_id)
            return
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
                async with session.post(
                    _url(conn), data=json.dumps(self.payload(context)), headers=_headers(conn)
                ) as answer:
                    answer.raise_for_status()
        except aiohttp.ClientError as exc:
            log.warning("alert %s could not be delivered to %r: %s", self.event, self.webhook_conn_id, exc)


class EmailAlertNotifier(BaseNotifier):
    """Mail the alert through the smtp provider's ``SmtpNotifier`` (``smtp_default``) to the
    addresses in the Variable ``phonecheck_alert_emails`` (comma-separated); nothing when unset."""

    template_fields: Sequence[str] = ("text",)

    def __init__(self, *, text: str, event: str, smtp_conn_id: str = SMTP_CONN_ID, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text = text
        self.event = event
        self.smtp_conn_id = smtp_conn_id

    def notify(self, context: Any) -> None:
        from airflow.sdk import Variable

        recipients = [
            a.strip() for a in str(Variable.get(ALERT_EMAILS_VARIABLE, default="")).split(",") if a.strip()
        ]
        if not recipients:
            log.info("alert %s not mailed: Variable %s is not set", self.event, ALERT_EMAILS_VARIABLE)
            return
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        try:
            SmtpNotifier(
                to=recipients,
                subject=self.text[:150],
                html_content=f"<p>{self.text}</p>",
                smtp_conn_id=self.smtp_conn_id,
            ).notify(context)
        except Exception as exc:  # noqa: BLE001 - an undeliverable alert never fails the run
            log.warning("alert %s could not be mailed: %s", self.event, exc)


def alert_notifiers(event: str) -> list[BaseNotifier]:
    """The webhook and email notifiers for ``event`` (``task_failed`` or ``dq_failed``)."""
    text = MESSAGES[event]
    return [WebhookNotifier(text=text, event=event), EmailAlertNotifier(text=text, event=event)]


async def deadline_missed(text: str, webhook_conn_id: str = WEBHOOK_CONN_ID, context: Any = None) -> None:
    """Deadline-alert callback (runs in the triggerer with the run's context): post ``text`` to the
    alerts webhook."""
    context = dict(context or {})
    dag_run = context.get("dag_run") or {}
    run_id = dag_run.get("run_id") if isinstance(dag_run, dict) else getattr(dag_run, "run_id", None)
    context.setdefault("run_id", run_id)
    notifier = WebhookNotifier(text=text, event="deadline_missed", webhook_conn_id=webhook_conn_id)
    await notifier.async_notify(context)
