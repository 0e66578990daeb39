"""One NXCLOUD HTTP exchange read into an answer or an :mod:`.errors` exception (no Airflow).

Transport failures are sorted by :func:`phonecheck.vendor_errors.never_sent` (exception types and
their cause chain): a connection that never opened reached nothing; anything else may have
reached the vendor (``may_have_landed``), which makes a lost paid submit "in doubt"
(docs/vendors/nxcloud.md). Messages never carry a header, the body, the secret or the signature.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from phonecheck.nxcloud.errors import (
    NxCloudError,
    NxCloudRateLimited,
    NxCloudServerError,
    NxCloudUnknownError,
    error_for_code,
)
from phonecheck.vendor_errors import never_sent

if TYPE_CHECKING:
    import requests


@dataclass(frozen=True)
class VendorAnswer:
    """One answer as received: kept verbatim (``raw.vendor_answer``) before anything is parsed."""

    http_status: int
    content_type: str | None
    body: bytes
    payload: dict[str, Any]  # the parsed JSON object (code 0)


def transport_error(action: str, exc: BaseException, read_timeout_s: float) -> NxCloudServerError:
    """The error for an exchange that brought no (complete) answer (a ``requests`` exception)."""
    import requests

    if isinstance(exc, requests.ConnectTimeout):
        detail = "connection timed out"
    elif isinstance(exc, requests.Timeout):
        detail = f"no answer within {read_timeout_s} s"
    elif isinstance(exc, requests.ConnectionError):
        detail = f"connection failed ({type(exc).__name__})"
    else:  # e.g. ChunkedEncodingError: closed mid-answer
        detail = f"answer cut off ({type(exc).__name__})"
    err = NxCloudServerError(action, f"NXCLOUD {action}: {detail}")
    err.may_have_landed = not never_sent(exc)
    return err


def read_answer(action: str, response: requests.Response, content: bytes) -> VendorAnswer:
    """The answer of a completed exchange; raises the :class:`NxCloudError` it means."""
    status = response.status_code
    try:
        answer = json.loads(content)
    except ValueError:
        answer = None
    code = answer.get("code") if isinstance(answer, dict) else None
    msg = (answer.get("msg") or answer.get("message")) if isinstance(answer, dict) else None
    if status == 429:
        limited = NxCloudRateLimited(
            action, f"NXCLOUD {action}: HTTP 429 rate limited", code=code, http_status=status
        )
        retry_after = response.headers.get("Retry-After", "")
        limited.retry_after = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else None
        raise limited
    if status >= 500:
        err: NxCloudError = NxCloudServerError(
            action, f"NXCLOUD {action}: HTTP {status}", code=code, http_status=status
        )
        err.may_have_landed = True
        raise err
    if not isinstance(answer, dict) or not isinstance(code, int) or isinstance(code, bool):
        raise NxCloudUnknownError(
            action,
            f"NXCLOUD {action}: unreadable answer (HTTP {status}, not a JSON object with a code)",
            http_status=status,
        )
    if code != 0:
        raise error_for_code(action, code, msg if isinstance(msg, str) else None, http_status=status)
    if status >= 400:
        raise NxCloudUnknownError(action, f"NXCLOUD {action}: HTTP {status} with code 0", http_status=status)
    return VendorAnswer(status, response.headers.get("Content-Type"), content, answer)
