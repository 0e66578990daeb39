"""Where vendors push to: the receiver URL as the pipelines send it (``drUrl``, ``callback``)."""

from __future__ import annotations

WEBHOOK_BASE_URL_VARIABLE = "telco_webhook_base_url"
WEBHOOK_TOKEN_VARIABLE = "telco_webhook_token"


def receiver_url(path: str) -> str | None:
    """The receiver URL for ``path`` (a :mod:`phonecheck.webhook_urls` constant): Airflow
    Variables ``telco_webhook_base_url`` / ``telco_webhook_token`` when set, else env
    ``TELCO_WEBHOOK_BASE_URL`` / ``TELCO_WEBHOOK_TOKEN``. None = no base URL configured: the
    pipelines then rely on the query API / polling alone. The URL holds a secret: log it only
    through :func:`phonecheck.webhook_urls.redact`."""
    from airflow.sdk import Variable

    from phonecheck.webhook_urls import webhook_url

    base = Variable.get(WEBHOOK_BASE_URL_VARIABLE, default=None)
    token = Variable.get(WEBHOOK_TOKEN_VARIABLE, default=None)
    return webhook_url(path, base_url=base, token=token)
