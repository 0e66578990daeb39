"""AccuAuth wire clients: ``/check/phone_number/o1`` (submit) and ``task_result/o1`` (poll).

One classification of vendor answers (:func:`~phonecheck.accuauth.answers.classify`) is shared by the sync client (requests,
used by tasks) and the async client (aiohttp, used by the trigger), so both agree on what is a
state, what is retried and what is fatal:

* ``OK`` and ``PENDING`` are states. ``PENDING`` comes with HTTP 400 (docs/vendors/accuauth.md) and is returned,
  never raised.
* ``RATE_LIMIT_EXCEEDED`` (HTTP 403!) and a connection that could not be opened are retried
  with full-jitter exponential backoff: the vendor did not process the call. Retries are the one
  :class:`~phonecheck.vendor_errors.RetryPolicy` both vendors' clients use, over
  :func:`~phonecheck.vendor_errors.classify` (final / transient / maybe charged).
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

import logging
import threading
from typing import TYPE_CHECKING, Any

from phonecheck.accuauth.answers import (
    ERRORS_BY_STATUS,
    FATAL_ERRORS,
    SUBMIT_PATH,
    TASK_RESULT_PATH,
    AccuAuthError,
    AccuAuthInvalidArgument,
    AccuAuthKeyExpired,
    AccuAuthNoPermission,
    AccuAuthNotFound,
    AccuAuthOutcomeUnknown,
    AccuAuthOutOfQuota,
    AccuAuthRateLimited,
    AccuAuthServerError,
    AccuAuthTransportError,
    AccuAuthUnauthorized,
    Answer,
    OnAnswer,
    RawAnswer,
    _classify_raw,
    classify,
    is_retryable,
    maybe_charged,
)
from phonecheck.vendor_errors import RetryPolicy, never_sent

if TYPE_CHECKING:
    import aiohttp
    import requests

log = logging.getLogger(__name__)


__all__ = [
    "SUBMIT_PATH",
    "TASK_RESULT_PATH",
    "AccuAuthError",
    "AccuAuthUnauthorized",
    "AccuAuthKeyExpired",
    "AccuAuthNoPermission",
    "AccuAuthOutOfQuota",
    "AccuAuthInvalidArgument",
    "AccuAuthNotFound",
    "AccuAuthRateLimited",
    "AccuAuthServerError",
    "AccuAuthTransportError",
    "AccuAuthOutcomeUnknown",
    "ERRORS_BY_STATUS",
    "FATAL_ERRORS",
    "RawAnswer",
    "OnAnswer",
    "Answer",
    "classify",
    "is_retryable",
    "AccuAuthClient",
    "AsyncAccuAuthClient",
    "RetryPolicy",
]


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
class _ClientBase:
    """Endpoint, credentials, timeout, retry policy and the reading of one exchange; the two
    transports below (requests for tasks, aiohttp for the trigger) differ only in how one
    attempt is sent.

    :param base_url: e.g. ``https://cloudapi.mexico.accuauth.com`` (paths are appended).
    :param timeout_s: connect/read timeout of one attempt.
    :param retry: retry policy (default: 6 attempts, full jitter, at most 30 s between attempts).
    :param max_connections: connections kept open to the vendor at once.
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
        self.base_url = base_url.rstrip("/")
        self._credentials = _Credentials(api_id, api_secret)
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.max_connections = max_connections
        self.calls = 0  # HTTP attempts made, retries included
        self.retried = 0  # attempts that were retries
        self._count_lock = threading.Lock()
        self._session = self._open()

    def _open(self) -> Any:
        """The transport's session, or None when it is opened later (``async with``)."""
        return None

    def __repr__(self) -> str:  # the secret never appears (see _Credentials)
        return f"{type(self).__name__}({self.base_url!r}, {self._credentials!r})"

    @staticmethod
    def _submit_fields(phone_number: str, callback: str | None) -> dict[str, str]:
        fields = {"phone_number": phone_number}
        if callback:
            fields["callback"] = callback
        return fields

    def _count_call(self) -> None:
        with self._count_lock:
            self.calls += 1

    def _count_retry(self, exc: BaseException | None) -> None:
        with self._count_lock:
            self.retried += 1

    def _retry_kwargs(self, path: str, idempotent: bool) -> dict[str, Any]:
        return {"paid": not idempotent, "vendor": f"AccuAuth {path}", "on_retry": self._count_retry}

    @staticmethod
    def _answered(raw: RawAnswer, *, idempotent: bool, on_answer: OnAnswer | None) -> Answer:
        """The answer of a completed exchange (recorded first), or the error it means."""
        if on_answer is not None:
            on_answer(raw)
        return _classify_raw(raw, idempotent=idempotent)

    @staticmethod
    def _no_answer(
        path: str,
        fields: dict[str, str],
        exc: BaseException,
        *,
        timed_out: bool,
        idempotent: bool,
        on_answer: OnAnswer | None,
    ) -> AccuAuthError:
        """The error for an exchange that brought no (complete) answer, recorded when it was sent.
        The message names the exception class, never the headers."""
        kind = "TIMEOUT" if timed_out else "TRANSPORT"
        sent = not never_sent(exc)
        error = AccuAuthTransportError(kind, type(exc).__name__, path=path)
        error.may_have_landed = sent
        raw = RawAnswer(path, fields, None, None, b"", f"{kind}: {type(exc).__name__}")
        error = maybe_charged(error, idempotent=idempotent, raw=raw)
        if on_answer is not None and sent:
            on_answer(raw)
        return error


# ---- sync client (tasks) ------------------------------------------------------------------------
class AccuAuthClient(_ClientBase):
    """Blocking client (requests) for tasks: submit and task_result with retries (the client
    may be shared by threads)."""

    _session: requests.Session

    def _open(self) -> requests.Session:
        import requests
        from requests.adapters import HTTPAdapter

        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.max_connections)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

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

        self._count_call()
        try:
            response = self._session.post(
                self.base_url + path, data=fields, headers=self._credentials.headers(), timeout=self.timeout_s
            )
        except requests.RequestException as exc:
            timed_out = isinstance(exc, requests.Timeout)
            raise self._no_answer(
                path, fields, exc, timed_out=timed_out, idempotent=idempotent, on_answer=on_answer
            ) from None
        raw = RawAnswer(
            path, fields, response.status_code, response.headers.get("content-type"), response.content
        )
        return self._answered(raw, idempotent=idempotent, on_answer=on_answer)

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
        retrying = self.retry.retrying(**self._retry_kwargs(path, idempotent))
        return retrying(self._post_once, path, fields, idempotent=idempotent, on_answer=on_answer)

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
class AsyncAccuAuthClient(_ClientBase):
    """Non-blocking client (aiohttp) for the trigger; same classification and retries.

    Use as ``async with AsyncAccuAuthClient(...) as client``.
    """

    _session: aiohttp.ClientSession | None

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
        self._count_call()
        try:
            async with self._session.post(self.base_url + path, data=fields) as response:
                body = await response.read()
                status = response.status
                content_type = response.headers.get("content-type")
        except (TimeoutError, aiohttp.ClientError) as exc:
            timed_out = isinstance(exc, TimeoutError)
            raise self._no_answer(
                path, fields, exc, timed_out=timed_out, idempotent=idempotent, on_answer=on_answer
            ) from None
        raw = RawAnswer(path, fields, status, content_type, body)
        return self._answered(raw, idempotent=idempotent, on_answer=on_answer)

    async def post(
        self,
        path: str,
        fields: dict[str, str],
        *,
        idempotent: bool = True,
        on_answer: OnAnswer | None = None,
    ) -> Answer:
        """As :meth:`AccuAuthClient.post`, without blocking."""
        retrying = self.retry.async_retrying(**self._retry_kwargs(path, idempotent))
        return await retrying(self._post_once, path, fields, idempotent=idempotent, on_answer=on_answer)

    async def submit(
        self, phone_number: str, callback: str | None = None, *, on_answer: OnAnswer | None = None
    ) -> Answer:
        fields = self._submit_fields(phone_number, callback)
        return await self.post(SUBMIT_PATH, fields, idempotent=False, on_answer=on_answer)

    async def task_result(self, task_id: str, *, on_answer: OnAnswer | None = None) -> Answer:
        return await self.post(TASK_RESULT_PATH, {"task_id": task_id}, on_answer=on_answer)
