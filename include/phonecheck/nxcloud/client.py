"""The NXCLOUD number-check wire client: signed submit and query calls, plain Python (no Airflow).

Every attempt is signed on its own (a fresh ``ts``) over the body serialised once with
:func:`phonecheck.signing.canonical_json` and sent as those very bytes. Retries follow the one
:class:`~phonecheck.vendor_errors.RetryPolicy` both vendors' clients use: transient failures
(a connection that never opened, HTTP 429 and the vendor's rate-limit refusals, and for the free
query API also 5xx, read timeouts and dropped connections) are retried with full-jitter backoff.
A paid submit whose answer was lost after it was sent is "maybe charged": never retried here, it
raises an :class:`~phonecheck.nxcloud.errors.NxCloudServerError` with ``may_have_landed`` and
:mod:`.submissions` settles it ("in doubt", docs/vendors/nxcloud.md).

The job is split in files: :mod:`.settings` (constants, :class:`NxCloudSettings`), :mod:`.wire`
(one exchange read into an answer or an error), :mod:`.query` (query pages and vendor dates),
this module (signing, sending with retries, the paid submit). Their public names are re-exported
here. Airflow's :class:`~phonecheck_airflow.hooks.nxcloud.NxCloudHook` only turns a connection
into :class:`NxCloudSettings` and a client.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from phonecheck.nxcloud.query import QueryCalls, QueryPage, QueryStats, candidate_dates, query_payload
from phonecheck.nxcloud.ratelimit import IntervalLimiter
from phonecheck.nxcloud.settings import (
    CANDIDATE_TIMEZONES,
    IN_DOUBT_MARGIN_S,
    MAX_PAGE_SIZE,
    NUMBER_CHECK_ACTION,
    NUMBER_CHECK_BIZ_TYPE,
    PUSH_WINDOW_S,
    QUERY_ARRIVAL_MARGIN,
    QUERY_PATH,
    QUERY_WINDOW_DAYS,
    SUBMIT_PATH,
    TS_WINDOW_S,
    Limiter,
    NxCloudSettings,
)
from phonecheck.nxcloud.wire import VendorAnswer, read_answer, transport_error
from phonecheck.signing import canonical_json, signed_headers
from phonecheck.vendor_errors import RetryPolicy

if TYPE_CHECKING:
    import requests

__all__ = [
    "CANDIDATE_TIMEZONES",
    "IN_DOUBT_MARGIN_S",
    "MAX_PAGE_SIZE",
    "NUMBER_CHECK_ACTION",
    "NUMBER_CHECK_BIZ_TYPE",
    "PUSH_WINDOW_S",
    "QUERY_ARRIVAL_MARGIN",
    "QUERY_PATH",
    "QUERY_WINDOW_DAYS",
    "SUBMIT_PATH",
    "TS_WINDOW_S",
    "Limiter",
    "NxCloudClient",
    "NxCloudSettings",
    "QueryPage",
    "QueryStats",
    "VendorAnswer",
    "candidate_dates",
    "query_payload",
]


class NxCloudClient(QueryCalls):
    """Signs and sends NXCLOUD number-check calls (submit and query); thread-safe.

    :param settings: base URL, credentials, signing algorithm, query timezone and spacing.
    :param query_limiter: spaces query calls; pass one shared by every process using the same
        access key (:class:`phonecheck.nxcloud.ratelimit.WarehouseIntervalLimiter`). Default:
        an in-process :class:`IntervalLimiter` of ``settings.query_spacing_s``.
    :param max_attempts: attempts per call, the first included.
    :param rate_limit_attempts: attempts per query call refused for its rate (429, code 88).
    :param backoff_multiplier: full-jitter base in seconds (attempt n waits up to base * 2**n).
    :param backoff_max: longest wait between attempts, seconds.
    :param timeout: ``(connect, read)`` timeout in seconds for one attempt.
    :param query_concurrency: query pages fetched at once; the limiter still spaces them.
    :param clock: epoch seconds each attempt is signed at (``ts``); default the system clock.
    """

    def __init__(
        self,
        settings: NxCloudSettings,
        *,
        query_limiter: Limiter | None = None,
        max_attempts: int = 6,
        rate_limit_attempts: int = 10,
        backoff_multiplier: float = 0.5,
        backoff_max: float = 30.0,
        timeout: tuple[float, float] = (5.0, 30.0),
        query_concurrency: int = 4,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if query_concurrency < 1:
            raise ValueError("query_concurrency must be >= 1")
        self.settings = settings
        self.query_limiter: Limiter = query_limiter or IntervalLimiter(settings.query_spacing_s)
        self.retry = RetryPolicy(max_attempts, backoff_multiplier, backoff_max, rate_limit_attempts)
        self.timeout = timeout
        self.query_concurrency = query_concurrency
        self.clock = clock
        #: calls sent, retries included, per action ("submit", "query").
        self.api_calls: Counter[str] = Counter()
        #: query calls the vendor refused for their rate (retried).
        self.rate_limited: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._local = threading.local()

    # ---- plumbing -----------------------------------------------------------------------------
    def session(self) -> requests.Session:
        """A ``requests.Session`` for the calling thread (sessions are not shared across threads)."""
        session = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = requests.Session()
            self._local.session = session
        return session

    def signed_headers(self, body: str, *, ts: str | None = None) -> dict[str, str]:
        """The headers of one number-check call over ``body`` (exactly the string sent)."""
        s = self.settings
        if ts is None and self.clock is not None:
            ts = str(int(self.clock() * 1000))
        return signed_headers(
            access_key=s.access_key,
            secret=s.access_secret,
            action=NUMBER_CHECK_ACTION,
            biz_type=NUMBER_CHECK_BIZ_TYPE,
            body=body,
            algorithm=s.sign_algorithm,
            ts=ts,
        )

    def _count(self, counter: Counter[str], action: str) -> None:
        with self._count_lock:
            counter[action] += 1

    def _send_once(self, action: str, path: str, body: bytes) -> VendorAnswer:
        """One signed attempt. Raises an :class:`NxCloudError`; returns the answer when code is 0."""
        import requests

        if action == "query":
            self.query_limiter.acquire()
        headers = self.signed_headers(body.decode("utf-8"))  # signed here: a fresh ts per attempt
        self._count(self.api_calls, action)
        try:
            response = self.session().post(
                self.settings.base_url + path, data=body, headers=headers, timeout=self.timeout
            )
            content = response.content  # read here: a connection dropped mid-answer raises now
        except requests.RequestException as exc:
            raise transport_error(action, exc, self.timeout[1]) from None
        return read_answer(action, response, content)

    def _call(self, action: str, path: str, payload: dict[str, Any]) -> VendorAnswer:
        """Send ``payload`` with the retry policy; the submit is the one paid call."""
        body = canonical_json(payload).encode("utf-8")  # serialised once; every attempt sends these bytes

        def on_retry(exc: BaseException | None) -> None:
            if getattr(exc, "rate_limited", False):
                self._count(self.rate_limited, action)

        retrying = self.retry.retrying(paid=action == "submit", vendor=f"NXCLOUD {action}", on_retry=on_retry)
        return retrying(self._send_once, action, path, body)

    # ---- number check -------------------------------------------------------------------------
    def submit_payload(
        self, phones: Sequence[str], *, batch_no: str, check_level: int, dr_url: str | None = None
    ) -> dict[str, Any]:
        """The submit body, keys in the documented order."""
        if not phones:
            raise ValueError("submit_numbers needs at least one number")
        if not self.settings.appkey:
            raise ValueError("the NXCLOUD connection needs the appkey extra to submit")
        payload: dict[str, Any] = {"phone": ",".join(phones), "batchNo": batch_no, "checkLevel": check_level}
        if dr_url:
            payload["drUrl"] = dr_url
        payload["appkey"] = self.settings.appkey
        return payload

    def submit_numbers(
        self, phones: Sequence[str], *, batch_no: str, check_level: int, dr_url: str | None = None
    ) -> dict[str, Any]:
        """Submit one batch (one country, at most 5,000 numbers: the caller chunks); PAID.

        Returns the vendor answer (``data.messageId``/``requestId``, ``batchNo``, 2024
        ``failNumber``). An answer lost after the request was sent raises an
        :class:`NxCloudServerError` with ``may_have_landed`` and is not retried: the caller settles it.
        """
        payload = self.submit_payload(phones, batch_no=batch_no, check_level=check_level, dr_url=dr_url)
        return self._call("submit", SUBMIT_PATH, payload).payload
