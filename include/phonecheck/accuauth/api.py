"""AccuAuth wire clients: ``/check/phone_number/o1`` (submit) and ``task_result/o1`` (poll).

One classification of vendor answers (:func:`classify`) is shared by the sync client (requests,
used by tasks) and the async client (aiohttp, used by the trigger), so both agree on what is a
state, what is retried and what is fatal:

* ``OK`` and ``PENDING`` are states. ``PENDING`` comes with HTTP 400 (docs/vendors/accuauth.md) and is returned,
  never raised.
* ``RATE_LIMIT_EXCEEDED`` (HTTP 403!) and a connection that could not be opened are retried
  with full-jitter exponential backoff (tenacity ``wait_random_exponential``): the vendor did not
  process the call.
* ``INTERNAL_ERROR`` / any 5xx, a read timeout and a connection dropped after the request went out
  are retried for polls (a poll is free and repeatable) but NOT for the paid submit: there the
  vendor may have processed and charged the call, so it raises :class:`AccuAuthOutcomeUnknown`
  and the caller decides (docs/vendors/accuauth.md, "what the vendor leaves open").
* ``UNAUTHORIZED``, ``KEY_EXPIRED``, ``NO_PERMISSION``, ``OUT_OF_QUOTA``, ``INVALID_ARGUMENT``,
  ``NOT_FOUND`` raise their own exception class carrying the vendor's ``reason``.

Credentials travel only in the ``X-DF-API-ID`` / ``X-DF-API-SECRET`` headers of each request:
they are never part of an exception message, a log line or a ``repr``.

Bodies are form-encoded (docs/vendors/accuauth.md: the vendor's public clients post forms).

Every HTTP answer (retried ones included) can be handed, byte for byte, to an ``on_answer``
callback as a :class:`RawAnswer`, so callers keep what the vendor said verbatim.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import tenacity

log = logging.getLogger(__name__)

SUBMIT_PATH = "/check/phone_number/o1"
TASK_RESULT_PATH = "/check/phone_number/task_result/o1"


# ---- errors -----------------------------------------------------------------------------------
class AccuAuthError(Exception):
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
    """403 RATE_LIMIT_EXCEEDED: retried with backoff."""

    retryable = True


class AccuAuthServerError(AccuAuthError):
    """500 INTERNAL_ERROR or any 5xx / non-vendor answer from a 5xx: retried with backoff."""

    retryable = True


class AccuAuthTransportError(AccuAuthError):
    """The request did not complete (connection refused, reset, timeout): retried."""

    retryable = True


class AccuAuthOutcomeUnknown(AccuAuthError):
    """A paid call went out but no usable answer came back (read timeout, connection dropped
    mid-answer, 5xx): the vendor may have processed and charged it. Never retried."""


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


def _classify_raw(raw: RawAnswer, *, idempotent: bool) -> Answer:
    """:func:`classify` plus the submit rule: a 5xx on a paid call is an unknown outcome."""
    try:
        answer = classify(raw.http_status or 0, raw.body, raw.path)
    except AccuAuthError as exc:
        exc.raw = raw
        if isinstance(exc, AccuAuthServerError) and not idempotent:
            unknown = AccuAuthOutcomeUnknown(
                exc.status, exc.reason, http_status=exc.http_status, request_id=exc.request_id, path=raw.path
            )
            unknown.raw = raw
            raise unknown from None
        raise
    return Answer(answer.http_status, answer.payload, raw)


def _lost(path: str, status: str, detail: str, *, sent: bool, idempotent: bool) -> AccuAuthError:
    """The error for an exchange without a (complete) answer."""
    if sent and not idempotent:
        return AccuAuthOutcomeUnknown(status, f"{detail}: the request may have been processed", path=path)
    return AccuAuthTransportError(status, detail, path=path)


def _no_answer(
    path: str,
    fields: dict[str, str],
    kind: str,
    exc: BaseException,
    *,
    sent: bool,
    idempotent: bool,
    on_answer: OnAnswer | None,
) -> AccuAuthError:
    """The error for an exchange that brought no (complete) answer, recorded when it was sent."""
    error = _lost(path, kind, type(exc).__name__, sent=sent, idempotent=idempotent)
    error.raw = RawAnswer(path, fields, None, None, b"", f"{kind}: {type(exc).__name__}")
    if on_answer is not None and sent:
        on_answer(error.raw)
    return error


def _answered(raw: RawAnswer, *, idempotent: bool, on_answer: OnAnswer | None) -> Answer:
    if on_answer is not None:
        on_answer(raw)
    return _classify_raw(raw, idempotent=idempotent)


def _never_sent(exc: BaseException) -> bool:
    """True when the connection could not even be opened (refused, DNS, connect timeout)."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NewConnectionError | ConnectTimeoutError):
            return True
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        todo.extend(
            getattr(current, attr)
            for attr in ("reason", "__cause__", "__context__")
            if isinstance(getattr(current, attr, None), BaseException)
        )
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """Full-jitter exponential backoff: wait U(0, min(max_wait_s, multiplier_s * 2**n))."""

    attempts: int = 6
    multiplier_s: float = 0.5
    max_wait_s: float = 30.0

    def kwargs(self) -> dict[str, Any]:
        return {
            "retry": tenacity.retry_if_exception(is_retryable),
            "wait": tenacity.wait_random_exponential(multiplier=self.multiplier_s, max=self.max_wait_s),
            "stop": tenacity.stop_after_attempt(self.attempts),
            "reraise": True,
            "before_sleep": _log_retry,
        }


def _log_retry(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning("AccuAuth call retried (attempt %d, next in %.2fs): %s", state.attempt_number, wait, exc)


def _headers(api_id: str, api_secret: str) -> dict[str, str]:
    return {"X-DF-API-ID": api_id, "X-DF-API-SECRET": api_secret, "Accept": "application/json"}


class _Credentials:
    """Holds the API id and secret; its repr never shows the secret."""

    __slots__ = ("api_id", "_secret")

    def __init__(self, api_id: str, api_secret: str) -> None:
        if not api_id or not api_secret:
            raise ValueError("AccuAuth needs an API id (login) and an API secret (password)")
        self.api_id = api_id
        self._secret = api_secret

    def headers(self) -> dict[str, str]:
        return _headers(self.api_id, self._secret)

    def __repr__(self) -> str:
        return f"<AccuAuth credentials id={self.api_id!r} secret=***>"


# ---- what both transports share ------------------------------------------------------------------
class _ClientSettings:
    """Endpoint, credentials, timeout and retry policy of a client; the two transports below
    (requests for tasks, aiohttp for the trigger) differ only in how one call is sent.

    :param base_url: e.g. ``https://cloudapi.mexico.accuauth.com`` (paths are appended).
    :param timeout_s: connect/read timeout of one attempt.
    """

    def __init__(
        self,
        base_url: str,
        api_id: str,
        api_secret: str,
        *,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = _Credentials(api_id, api_secret)
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.calls = 0  # HTTP attempts made, retries included

    def __repr__(self) -> str:  # the secret never appears (see _Credentials)
        return f"{type(self).__name__}({self.base_url!r}, {self._credentials!r})"

    @staticmethod
    def _submit_fields(phone_number: str, callback: str | None) -> dict[str, str]:
        fields = {"phone_number": phone_number}
        if callback:
            fields["callback"] = callback
        return fields


# ---- sync client (tasks) ------------------------------------------------------------------------
class AccuAuthClient(_ClientSettings):
    """Blocking client (requests) for tasks: submit and task_result with retries (the client
    may be shared by threads)."""

    def __init__(
        self,
        base_url: str,
        api_id: str,
        api_secret: str,
        *,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        pool_size: int = 16,
    ) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        super().__init__(base_url, api_id, api_secret, timeout_s=timeout_s, retry=retry)
        self._calls_lock = threading.Lock()
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> AccuAuthClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post_once(
        self, path: str, fields: dict[str, str], *, idempotent: bool, on_answer: OnAnswer | None
    ) -> Answer:
        import requests

        with self._calls_lock:
            self.calls += 1
        url = self.base_url + path
        try:
            response = self._session.post(
                url, data=fields, headers=self._credentials.headers(), timeout=self.timeout_s
            )
        except requests.RequestException as exc:
            # The message names the exception class, never the headers.
            kind = "TIMEOUT" if isinstance(exc, requests.Timeout) else "TRANSPORT"
            raise _no_answer(
                path, fields, kind, exc, sent=not _never_sent(exc), idempotent=idempotent, on_answer=on_answer
            ) from None
        raw = RawAnswer(
            path, fields, response.status_code, response.headers.get("content-type"), response.content
        )
        return _answered(raw, idempotent=idempotent, on_answer=on_answer)

    def post(
        self,
        path: str,
        fields: dict[str, str],
        *,
        idempotent: bool = True,
        on_answer: OnAnswer | None = None,
    ) -> Answer:
        """One call with retries. ``idempotent=False`` (the paid submit): an answer lost after
        the request went out raises :class:`AccuAuthOutcomeUnknown` and is never retried."""
        for attempt in tenacity.Retrying(**self.retry.kwargs()):
            with attempt:
                return self._post_once(path, fields, idempotent=idempotent, on_answer=on_answer)
        raise AssertionError("unreachable")  # pragma: no cover - reraise=True

    def submit(
        self, phone_number: str, callback: str | None = None, *, on_answer: OnAnswer | None = None
    ) -> Answer:
        """Start a check (paid). ``phone_number``: digits with the country code (52...).
        Never retried once the request may have reached the vendor."""
        fields = self._submit_fields(phone_number, callback)
        return self.post(SUBMIT_PATH, fields, idempotent=False, on_answer=on_answer)

    def task_result(self, task_id: str, *, on_answer: OnAnswer | None = None) -> Answer:
        """The state of a pending check: ``OK`` with a result, or ``PENDING``."""
        return self.post(TASK_RESULT_PATH, {"task_id": task_id}, on_answer=on_answer)


# ---- async client (trigger) -----------------------------------------------------------------------
class AsyncAccuAuthClient(_ClientSettings):
    """Non-blocking client (aiohttp) for the trigger; same classification and retries.

    Use as ``async with AsyncAccuAuthClient(...) as client``.
    """

    def __init__(
        self,
        base_url: str,
        api_id: str,
        api_secret: str,
        *,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 16,
    ) -> None:
        super().__init__(base_url, api_id, api_secret, timeout_s=timeout_s, retry=retry)
        self.max_connections = max_connections
        self.retried = 0
        self._session = None

    async def __aenter__(self) -> AsyncAccuAuthClient:
        import aiohttp

        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.max_connections),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers=self._credentials.headers(),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post_once(
        self, path: str, fields: dict[str, str], *, idempotent: bool, on_answer: OnAnswer | None
    ) -> Answer:
        import aiohttp

        assert self._session is not None, "use 'async with AsyncAccuAuthClient(...)'"
        self.calls += 1
        try:
            async with self._session.post(self.base_url + path, data=fields) as response:
                body = await response.read()
                status = response.status
                content_type = response.headers.get("content-type")
        except (TimeoutError, aiohttp.ClientError) as exc:
            sent = not isinstance(exc, aiohttp.ClientConnectorError)
            kind = "TIMEOUT" if isinstance(exc, TimeoutError) else "TRANSPORT"
            raise _no_answer(
                path, fields, kind, exc, sent=sent, idempotent=idempotent, on_answer=on_answer
            ) from None
        return _answered(
            RawAnswer(path, fields, status, content_type, body), idempotent=idempotent, on_answer=on_answer
        )

    async def post(
        self,
        path: str,
        fields: dict[str, str],
        *,
        idempotent: bool = True,
        on_answer: OnAnswer | None = None,
    ) -> Answer:
        async for attempt in tenacity.AsyncRetrying(**self.retry.kwargs()):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.retried += 1
                return await self._post_once(path, fields, idempotent=idempotent, on_answer=on_answer)
        raise AssertionError("unreachable")  # pragma: no cover

    async def submit(
        self, phone_number: str, callback: str | None = None, *, on_answer: OnAnswer | None = None
    ) -> Answer:
        fields = self._submit_fields(phone_number, callback)
        return await self.post(SUBMIT_PATH, fields, idempotent=False, on_answer=on_answer)

    async def task_result(self, task_id: str, *, on_answer: OnAnswer | None = None) -> Answer:
        return await self.post(TASK_RESULT_PATH, {"task_id": task_id}, on_answer=on_answer)
