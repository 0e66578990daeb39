"""What an AccuAuth answer means: the error taxonomy and the one classification of vendor answers
shared by the sync and async clients (:mod:`phonecheck.accuauth.api`).

* ``OK`` and ``PENDING`` are states (``PENDING`` comes with HTTP 400, docs/vendors/accuauth.md).
* Each documented failure status raises its own :class:`AccuAuthError` subclass carrying the
  vendor's ``reason``; ``retryable`` says whether the call may be repeated.
* A 5xx on the paid submit is an unknown outcome (:class:`AccuAuthOutcomeUnknown`), never retried.

Every class derives from :class:`phonecheck.vendor_errors.VendorError`: whether a failure is
final, transient or maybe charged is decided by :func:`phonecheck.vendor_errors.classify`, the
same classifier the NXCLOUD client uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from phonecheck.vendor_errors import Failure, VendorError
from phonecheck.vendor_errors import classify as classify_failure

SUBMIT_PATH = "/check/phone_number/o1"
TASK_RESULT_PATH = "/check/phone_number/task_result/o1"


# ---- errors -----------------------------------------------------------------------------------
class AccuAuthError(VendorError):
    """A vendor answer that is neither ``OK`` nor ``PENDING``.

    :param status: the vendor ``status`` (e.g. ``UNAUTHORIZED``), or ``HTTP_<code>`` when the body
        was not a vendor answer.
    :param reason: the vendor ``reason`` text, as received.
    """

    retryable = False

    def __init__(
        self,
        status: str,
        reason: str | None,
        *,
        http_status: int | None = None,
        request_id: str | None = None,
        path: str = "",
    ) -> None:
        self.status = status
        self.reason = reason
        self.http_status = http_status
        self.request_id = request_id
        self.path = path
        self.raw: RawAnswer | None = None
        where = f" on {path}" if path else ""
        rid = f" [request_id {request_id}]" if request_id else ""
        super().__init__(f"AccuAuth {status} (HTTP {http_status}){where}: {reason or 'no reason given'}{rid}")


class AccuAuthUnauthorized(AccuAuthError):
    """401 UNAUTHORIZED: wrong API id or secret (fix the ``accuauth`` connection)."""


class AccuAuthKeyExpired(AccuAuthError):
    """401 KEY_EXPIRED: the API id has expired (ask AccuAuth support for a new one)."""


class AccuAuthNoPermission(AccuAuthError):
    """403 NO_PERMISSION: the account may not use this API."""


class AccuAuthOutOfQuota(AccuAuthError):
    """403 OUT_OF_QUOTA: the account's call quota is used up."""


class AccuAuthInvalidArgument(AccuAuthError):
    """400 INVALID_ARGUMENT: a bad phone number / task id (also seen for expired task ids)."""


class AccuAuthNotFound(AccuAuthError):
    """404 NOT_FOUND: the API (path) does not exist: check the connection's base URL."""


class AccuAuthRateLimited(AccuAuthError):
    """403 RATE_LIMIT_EXCEEDED: retried with backoff (the vendor did not process the call)."""

    retryable = True
    rate_limited = True


class AccuAuthServerError(AccuAuthError):
    """500 INTERNAL_ERROR or any 5xx / non-vendor answer from a 5xx: retried with backoff, except
    on the paid submit, where the vendor may have processed the call before failing."""

    retryable = True
    may_have_landed = True


class AccuAuthTransportError(AccuAuthError):
    """The request did not complete (connection refused, reset, timeout): retried; ``may_have_landed``
    says whether it went out before the exchange broke."""

    retryable = True


class AccuAuthOutcomeUnknown(AccuAuthError):
    """A paid call went out but no usable answer came back (read timeout, connection dropped
    mid-answer, 5xx): the vendor may have processed and charged it. Never retried."""

    may_have_landed = True


ERRORS_BY_STATUS: dict[str, type[AccuAuthError]] = {
    "UNAUTHORIZED": AccuAuthUnauthorized,
    "KEY_EXPIRED": AccuAuthKeyExpired,
    "NO_PERMISSION": AccuAuthNoPermission,
    "OUT_OF_QUOTA": AccuAuthOutOfQuota,
    "INVALID_ARGUMENT": AccuAuthInvalidArgument,
    "NOT_FOUND": AccuAuthNotFound,
    "RATE_LIMIT_EXCEEDED": AccuAuthRateLimited,
    "INTERNAL_ERROR": AccuAuthServerError,
}

#: Errors that concern the account or configuration, not one task: stop everything.
FATAL_ERRORS: tuple[type[AccuAuthError], ...] = (
    AccuAuthUnauthorized,
    AccuAuthKeyExpired,
    AccuAuthNoPermission,
    AccuAuthOutOfQuota,
    AccuAuthNotFound,
)


# ---- answers ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RawAnswer:
    """One HTTP exchange as received: the body byte for byte, or why none (complete) came."""

    path: str
    fields: dict[str, str]
    http_status: int | None
    content_type: str | None
    body: bytes
    error: str | None = None

    @property
    def api(self) -> str:
        return "accuauth_submit" if self.path == SUBMIT_PATH else "accuauth_poll"


OnAnswer = Callable[[RawAnswer], None]


@dataclass(frozen=True)
class Answer:
    """An ``OK`` or ``PENDING`` vendor answer."""

    http_status: int
    payload: dict[str, Any]
    raw: RawAnswer | None = None

    @property
    def status(self) -> str:
        return str(self.payload.get("status"))

    @property
    def pending(self) -> bool:
        return self.status == "PENDING"


def classify(http_status: int, body: bytes | str, path: str = "") -> Answer:
    """Turn one HTTP answer into an :class:`Answer` or raise the matching :class:`AccuAuthError`."""
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    if not isinstance(payload, Mapping) or not isinstance(payload.get("status"), str):
        cls = AccuAuthServerError if http_status >= 500 else AccuAuthError
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        raise cls(
            f"HTTP_{http_status}", f"not a vendor answer: {text[:200]!r}", http_status=http_status, path=path
        )
    payload = dict(payload)
    status = payload["status"]
    if status == "OK" and http_status < 300:
        return Answer(http_status, payload)
    if status == "PENDING":
        return Answer(http_status, payload)
    cls = ERRORS_BY_STATUS.get(status)
    if cls is None:
        cls = AccuAuthServerError if http_status >= 500 else AccuAuthError
    raise cls(
        status,
        payload.get("reason"),
        http_status=http_status,
        request_id=payload.get("request_id"),
        path=path,
    )


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, AccuAuthError) and exc.retryable


def maybe_charged(exc: AccuAuthError, *, idempotent: bool, raw: RawAnswer | None) -> AccuAuthError:
    """``exc`` as raised by a call: an :class:`AccuAuthOutcomeUnknown` when the call is paid and
    may have landed (:func:`phonecheck.vendor_errors.classify`), else ``exc`` itself."""
    exc.raw = raw
    if isinstance(exc, AccuAuthOutcomeUnknown):
        return exc
    if classify_failure(exc, paid=not idempotent) is not Failure.MAYBE_CHARGED:
        return exc
    reason = exc.reason if exc.http_status else f"{exc.reason}: the request may have been processed"
    unknown = AccuAuthOutcomeUnknown(
        exc.status, reason, http_status=exc.http_status, request_id=exc.request_id, path=exc.path
    )
    unknown.raw = raw
    return unknown


def _classify_raw(raw: RawAnswer, *, idempotent: bool) -> Answer:
    """:func:`classify` plus the submit rule: a 5xx on a paid call is an unknown outcome."""
    try:
        answer = classify(raw.http_status or 0, raw.body, raw.path)
    except AccuAuthError as exc:
        error = maybe_charged(exc, idempotent=idempotent, raw=raw)
        if error is exc:
            raise
        raise error from None
    return Answer(answer.http_status, answer.payload, raw)
