"""Where vendors should send their result pushes: the receiver's public URLs, and the one place
the webhook base URL and token are read (docs/development.md, "Settings: one source each").

Shared by the NXCLOUD submit (``drUrl``), the AccuAuth submit (``callback``) and the receiver.
The base URL is the receiver as the vendor reaches it (``https://hooks.example.com/telco-webhooks``)
and the token is the receiver's secret path token. Each is one setting with two spellings:

* the Airflow Variable (``telco_webhook_base_url`` / ``telco_webhook_token``), which a process
  outside Airflow sees in its env form (``AIRFLOW_VAR_TELCO_WEBHOOK_BASE_URL`` /
  ``AIRFLOW_VAR_TELCO_WEBHOOK_TOKEN``), as Airflow itself reads Variables from the environment;
* the contract env var (``TELCO_WEBHOOK_BASE_URL`` / ``TELCO_WEBHOOK_TOKEN``).

:func:`resolve` reads both for the pipelines (with Airflow's ``Variable.get``, which also sees
the metadata database) and for the receiver (environment only). Both spellings set to different
values is refused, loudly and by name, on both sides: otherwise the pipelines would hand vendors
a token the receiver answers with 404. No base URL means "no callback": the pipelines then rely
on polling / the query API alone.

The token is a secret: never log a URL built here (use :func:`redact`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

BASE_URL_ENV = "TELCO_WEBHOOK_BASE_URL"
TOKEN_ENV = "TELCO_WEBHOOK_TOKEN"
BASE_URL_VARIABLE = "telco_webhook_base_url"
TOKEN_VARIABLE = "telco_webhook_token"

#: Shortest token the receiver accepts (docs/receiver.md, "Token rules").
MIN_TOKEN_LENGTH = 24
#: Sample values of the repository (``.env.example``): never a real secret.
SAMPLE_TOKENS = frozenset({"change-me-webhook-token"})

NXCLOUD_NUMBER_CHECK = "/nxcloud/number-check/{token}"
NXCLOUD_VOICE = "/nxcloud/voice/{token}"
NXCLOUD_CALL = "/nxcloud/call/{token}"
ACCUAUTH_PHONE_NUMBER = "/accuauth/phone-number/{token}"
#: The receiver answers 204 here when ``token`` is its own, 404 when not (with the header below).
TOKEN_CHECK_PATH = "/token-check/{token}"
TOKEN_CHECK_HEADER = "x-phonecheck-receiver"


class WebhookSettingsError(ValueError):
    """The webhook settings cannot work: both spellings set and different, or no usable token."""


def variable_env(variable: str) -> str:
    """The environment form of an Airflow Variable (how Airflow reads Variables from env)."""
    return "AIRFLOW_VAR_" + variable.upper()


def token_settings() -> str:
    """Both names of the token setting, for messages."""
    return f"the Airflow Variable {TOKEN_VARIABLE} (env {variable_env(TOKEN_VARIABLE)}) or {TOKEN_ENV}"


def base_url_settings() -> str:
    return (
        f"the Airflow Variable {BASE_URL_VARIABLE} (env {variable_env(BASE_URL_VARIABLE)}) or {BASE_URL_ENV}"
    )


@dataclass(frozen=True)
class WebhookSettings:
    base_url: str | None  # without a trailing slash; None: no callbacks
    token: str | None  # normalised; None: not set
    token_from: str | None  # which spelling gave the token (a name, never the value)


def _env_variable(name: str) -> str | None:
    return os.environ.get(variable_env(name))


def _one(
    variable: str, env: str, variable_get: Callable[[str], str | None], normalise: Callable[[str], str]
) -> tuple[str | None, str | None]:
    as_variable = normalise(variable_get(variable) or "")
    as_env = normalise(os.environ.get(env) or "")
    if as_variable and as_env and as_variable != as_env:
        raise WebhookSettingsError(
            f"the Airflow Variable {variable} (env {variable_env(variable)}) and {env} are both set "
            f"and differ: the pipelines and the receiver would disagree (every push answered 404). "
            f"Set one of them, or give both the same value"
        )
    if as_variable:
        return as_variable, f"Airflow Variable {variable}"
    if as_env:
        return as_env, env
    return None, None


def resolve(variable_get: Callable[[str], str | None] | None = None) -> WebhookSettings:
    """The webhook base URL and token as every process reads them.

    ``variable_get``: how to read an Airflow Variable (``Variable.get`` inside Airflow: env form,
    secrets backends, metadata DB); default, outside Airflow: the Variable's env form only.
    Raises :class:`WebhookSettingsError` when a setting's two spellings differ."""
    get = variable_get or _env_variable
    base, _ = _one(BASE_URL_VARIABLE, BASE_URL_ENV, get, lambda v: v.strip().rstrip("/"))
    token, source = _one(TOKEN_VARIABLE, TOKEN_ENV, get, normalise_token)
    return WebhookSettings(base_url=base, token=token, token_from=source)


def webhook_url(path: str, *, base_url: str | None = None, token: str | None = None) -> str | None:
    """The receiver URL for ``path`` (one of the constants above), or None when no base URL is
    configured. ``base_url`` / ``token`` default to :func:`resolve` (environment). A base URL
    without a token is a configuration error (the receiver would 404)."""
    if base_url is None or token is None:
        settings = resolve()
        base_url = settings.base_url if base_url is None else base_url
        token = settings.token if token is None else token
    base = (base_url or "").strip()
    if not base:
        return None
    secret = normalise_token(token)
    if not secret:
        raise WebhookSettingsError(
            f"the webhook base URL is set but no token is: set {token_settings()}; "
            "the receiver would refuse the pushes"
        )
    return base.rstrip("/") + path.format(token=quote(secret, safe=""))


def receiver_takes_token(base_url: str, token: str, timeout_s: float = 5.0) -> bool | None:
    """Ask the receiver at ``base_url`` whether ``token`` is its own: True / False, or None when
    no receiver of ours answered (unreachable, another server, an older receiver)."""
    import urllib.error
    import urllib.request

    url = base_url.rstrip("/") + TOKEN_CHECK_PATH.format(token=quote(normalise_token(token), safe=""))
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:  # noqa: S310 - our own URL
            status, ours = answer.status, answer.headers.get(TOKEN_CHECK_HEADER)
    except urllib.error.HTTPError as refused:
        status, ours = refused.code, refused.headers.get(TOKEN_CHECK_HEADER)
    except (OSError, ValueError):
        return None
    if not ours:
        return None
    return {204: True, 404: False}.get(status)


def normalise_token(token: str | None) -> str:
    """The token as both the URL builder and the receiver use it: surrounding whitespace (a
    trailing newline from a secrets file) is not part of it."""
    return (token or "").strip()


def token_problem(token: str | None) -> str | None:
    """Why a configured token must not be used (None when it is fine)."""
    secret = normalise_token(token)
    if not secret:
        return f"the webhook token is not set: set {token_settings()}"
    if secret in SAMPLE_TOKENS:
        return f"the webhook token ({token_settings()}) is the sample value from .env.example: generate a secret one"
    if len(secret) < MIN_TOKEN_LENGTH:
        return f"the webhook token ({token_settings()}) is shorter than {MIN_TOKEN_LENGTH} characters"
    return None


def redact(url: str | None) -> str | None:
    """The URL with its last path segment (the token) masked, for logs."""
    if not url:
        return url
    head, _, _ = url.rpartition("/")
    return f"{head}/***"
