"""Where vendors push to: the receiver URL as the pipelines send it (``drUrl``, ``callback``).

The settings are read by :func:`phonecheck.webhook_urls.resolve`, the same function the receiver
uses (docs/development.md, "Settings: one source each"); here Variables are read through
Airflow, so a Variable kept in the metadata database or a secrets backend counts too.
"""

from __future__ import annotations

import functools
import logging

log = logging.getLogger(__name__)


def airflow_variable(name: str) -> str | None:
    """A Variable as Airflow reads it (env form, secrets backends, metadata database)."""
    from airflow.sdk import Variable

    return Variable.get(name, default=None)


def receiver_url(path: str) -> str | None:
    """The receiver URL for ``path`` (a :mod:`phonecheck.webhook_urls` constant), or None when no
    base URL is configured (the pipelines then rely on the query API / polling alone).

    Fails before anything is sent to a vendor when the settings cannot work: the Variable and
    the env var both set and different, or a token the receiver refuses to start with (missing,
    the sample value, too short). The URL holds a secret: log it only through
    :func:`phonecheck.webhook_urls.redact`."""
    from phonecheck.webhook_urls import WebhookSettingsError, resolve, token_problem, webhook_url

    settings = resolve(airflow_variable)
    if not settings.base_url:
        return None
    problem = token_problem(settings.token)
    if problem:
        raise WebhookSettingsError(f"{problem}; the receiver would refuse every push (404)")
    _check_receiver(settings.base_url, settings.token, settings.token_from)
    return webhook_url(path, base_url=settings.base_url, token=settings.token)


@functools.cache
def _check_receiver(base_url: str, token: str, token_from: str | None) -> None:
    """Once per process and setting: a receiver that answers and refuses our token fails the
    submit before the vendor is paid; one that cannot be asked (not reachable from here, an
    older receiver) is logged and the run goes on."""
    from phonecheck.webhook_urls import WebhookSettingsError, receiver_takes_token, token_settings

    takes = receiver_takes_token(base_url, token)
    if takes is False:
        raise WebhookSettingsError(
            f"the receiver at {base_url} refuses the webhook token the pipelines read (from "
            f"{token_from}): the receiver and the pipelines disagree, every push would be answered "
            f"404. Give both the same value in {token_settings()}"
        )
    if takes is None:
        log.info(
            "the receiver at %s could not confirm the webhook token (not reachable from here?)", base_url
        )
