"""Alert notifiers, configured by connection (docs/operations.md).

* :class:`WebhookNotifier` posts one JSON message (``text`` plus the event, DAG, run, task and a
  link to the run) through the http provider's ``HttpNotifier`` to the URL of an HTTP
  connection, ``phonecheck_alerts_webhook`` by default:
  chat tools (Slack/Mattermost/Teams incoming webhooks) read ``text``; anything else can use the
  fields. Extra ``headers`` (a JSON object) are sent too.
* :class:`EmailAlertNotifier` sends the same message by mail with the smtp provider's
  ``SmtpNotifier`` through ``smtp_default``, to the addresses in the Airflow Variable
  ``phonecheck_alert_emails``.

Both do nothing (one log line) while their connection or recipients are not configured, so a
deployment without alerting runs unchanged, and an alert that cannot be delivered never fails a
run. :func:`alert_notifiers` gives the pair for an event; the daily reconciliation's deadline check
(``phonecheck_airflow.tasks.deadline``) posts ``deadline_missed`` through :class:`WebhookNotifier`.
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


def _run_url(context: Any) -> str | None:
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback=None)
    dag, run_id = context.get("dag"), context.get("run_id")
    if not base or dag is None or not run_id:
        return None
    from urllib.parse import quote

    return f"{base.rstrip('/')}/dags/{quote(dag.dag_id, safe='')}/runs/{quote(run_id, safe='')}"


class WebhookNotifier(BaseNotifier):
    """Post an alert as JSON to the URL of an HTTP connection, through the http provider's
    ``HttpNotifier``.

    What this class adds to ``HttpNotifier``: the message fields from the context, silence while
    the connection does not exist, a delivery failure logged instead of raised (an alert never
    fails a run), and the connection shape of docs/operations.md (extra ``headers`` as a JSON
    object, extra ``endpoint``, https when no schema), which ``HttpHook`` would otherwise send
    as headers named ``headers`` and ``endpoint``. The provider is imported when an alert is
    sent, not when a DAG file builds its callbacks.

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
        conn = self._connection()
        if conn is None:
            return
        from airflow.providers.http.notifications.http import HttpNotifier

        sender = HttpNotifier(
            http_conn_id=self.webhook_conn_id,
            json=self.payload(context),
            extra_options={"timeout": self.timeout},
        )
        sender.hook = _hook_over(as_http_hook_reads_it(conn))  # replaces the cached property
        try:
            sender.notify(context)
        except Exception as exc:  # noqa: BLE001 - an undeliverable alert never fails the run
            log.warning("alert %s could not be delivered to %r: %s", self.event, self.webhook_conn_id, exc)

    async def async_notify(self, context: Any) -> None:
        import asyncio

        await asyncio.to_thread(self.notify, context)


def as_http_hook_reads_it(conn: Any) -> Any:
    """The connection in ``HttpHook``'s shape: the whole URL as host, every extra that is no
    request option a header (the extra ``headers`` object spread out, ``endpoint`` gone)."""
    from airflow.sdk import Connection

    extra = dict(conn.extra_dejson or {})
    headers = extra.pop("headers", None) or {}
    extra.pop("endpoint", None)
    extra.update({str(k): str(v) for k, v in headers.items()})
    return Connection(
        conn_id=conn.conn_id,
        conn_type="http",
        host=_url(conn),
        login=conn.login,
        password=conn.password,
        extra=json.dumps(extra) if extra else None,
    )


def _hook_over(conn: Any):
    from airflow.providers.http.hooks.http import HttpHook

    class _Hook(HttpHook):
        def get_connection(self, conn_id: str) -> Any:  # type: ignore[override]
            return conn

    return _Hook(method="POST", http_conn_id=conn.conn_id)


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
