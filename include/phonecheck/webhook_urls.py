"""Where vendors should send their result pushes: the receiver's public URLs (architecture §5).

Shared by the NXCLOUD submit (``drUrl``) and the AccuAuth submit (``callback``). The base URL
is the receiver as the vendor reaches it (``https://hooks.example.com/telco-webhooks``) and the
token is the receiver's secret path token; both come from the environment
(``TELCO_WEBHOOK_BASE_URL``, ``TELCO_WEBHOOK_TOKEN``) unless the caller passes them (an Airflow
task may read them from Variables and pass them in). No base URL means "no callback": the
pipelines then rely on polling / the query API alone.

The token is a secret: never log a URL built here (use :func:`redact`).
"""

from __future__ import annotations

import os
from urllib.parse import quote

BASE_URL_ENV = "TELCO_WEBHOOK_BASE_URL"
TOKEN_ENV = "TELCO_WEBHOOK_TOKEN"

#: Shortest token the receiver accepts (docs/receiver.md, "Token rules").
MIN_TOKEN_LENGTH = 24
#: Sample values of the repository (``.env.example``): never a real secret.
SAMPLE_TOKENS = frozenset({"change-me-webhook-token"})

NXCLOUD_NUMBER_CHECK = "/nxcloud/number-check/{token}"
NXCLOUD_VOICE = "/nxcloud/voice/{token}"
NXCLOUD_CALL = "/nxcloud/call/{token}"
ACCUAUTH_PHONE_NUMBER = "/accuauth/phone-number/{token}"


def webhook_url(path: str, *, base_url: str | None = None, token: str | None = None) -> str | None:
    """The receiver URL for ``path`` (one of the constants above), or None when no base URL is
    configured. A base URL without a token is a configuration error (the receiver would 404)."""
    base = (base_url if base_url is not None else os.environ.get(BASE_URL_ENV, "")).strip()
    if not base:
        return None
    secret = normalise_token(token if token is not None else os.environ.get(TOKEN_ENV))
    if not secret:
        raise ValueError(
            f"{BASE_URL_ENV} is set but {TOKEN_ENV} is empty: the receiver would refuse the pushes"
        )
    return base.rstrip("/") + path.format(token=quote(secret, safe=""))


def normalise_token(token: str | None) -> str:
    """The token as both the URL builder and the receiver use it: surrounding whitespace (a
    trailing newline from a secrets file) is not part of it."""
    return (token or "").strip()


def token_problem(token: str | None) -> str | None:
    """Why a configured token must not be used (None when it is fine)."""
    secret = normalise_token(token)
    if not secret:
        return f"{TOKEN_ENV} is not set"
    if secret in SAMPLE_TOKENS:
        return f"{TOKEN_ENV} is the sample value from .env.example: generate a secret one"
    if len(secret) < MIN_TOKEN_LENGTH:
        return f"{TOKEN_ENV} is shorter than {MIN_TOKEN_LENGTH} characters"
    return None


def redact(url: str | None) -> str | None:
    """The URL with its last path segment (the token) masked, for logs."""
    if not url:
        return url
    head, _, _ = url.rpartition("/")
    return f"{head}/***"
