"""NXCLOUD hook (connection type ``nxcloud``): signed number-check submit and query calls.

Written in the style of ``airflow.providers.http.hooks.http.HttpHook``, but it cannot reuse
``HttpHook.run``: every attempt needs a fresh ``ts`` and signature over the exact body bytes, and
the vendor reports most errors as HTTP 200 with a ``code`` (api-facts.md §1).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow.sdk import BaseHook

from phonecheck.nxcloud.errors import (
    NxCloudError,
    NxCloudRateLimited,
    NxCloudServerError,
    NxCloudTransientError,
    NxCloudUnknownError,
    error_for_code,
)
from phonecheck.nxcloud.ratelimit import IntervalLimiter
from phonecheck.signing import SignAlgorithm, canonical_json, signed_headers

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

NUMBER_CHECK_BIZ_TYPE = "1"
NUMBER_CHECK_ACTION = "numbercheck"
SUBMIT_PATH = "/api/number/check"
QUERY_PATH = "/api/number/query"
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class NxCloudSettings:
    """What the hook reads from the connection. ``repr`` never shows the secret."""

    base_url: str
    access_key: str
    access_secret: str = field(repr=False)
    appkey: str | None = field(default=None, repr=False)
    sign_algorithm: SignAlgorithm = "md5"
    query_timezone: str = "UTC"
    query_min_interval_s: float = 3.0


@dataclass
class QueryStats:
    """Filled by :meth:`NxCloudHook.iter_query_results` while it pages."""

    pages: int = 0
    total_pages: int = 0
    total_size: int = 0
    rows: int = 0
    api_calls: int = 0  # query calls made for this iteration, retries included


def _extra(extras: dict[str, Any], name: str) -> Any:
    """Connection-form fields may be stored plain or as ``extra__nxcloud__<name>``."""
    value = extras.get(name)
    if value in (None, ""):
        value = extras.get(f"extra__nxcloud__{name}")
    return None if value == "" else value


class NxCloudHook(BaseHook):
    """Signs and sends NXCLOUD open-platform calls (number check submit and query).

    Every attempt is signed on its own (fresh ``ts``; api-facts.md §1.2) over the body serialised
    once with :func:`phonecheck.signing.canonical_json` and sent as those very bytes. Retries use
    tenacity with full-jitter exponential backoff and only for failures a retry can fix: HTTP 5xx,
    timeouts and connection errors, HTTP 429 and the vendor's rate-limit answers. Vendor codes
    become :mod:`phonecheck.nxcloud.errors` exceptions whose messages never carry the secret,
    the signature or the body (which holds the webhook token).

    :param nxcloud_conn_id: connection of type ``nxcloud``: host = base URL, login = access
        key, password = access secret; extras ``appkey``, ``sign_algorithm`` (md5/sha256),
        ``query_timezone`` (timezone of the query API ``date``, default UTC) and
        ``query_min_interval_s`` (seconds between query calls, default 3).
    :param max_attempts: attempts per call, the first included.
    :param backoff_multiplier: full-jitter base in seconds (attempt n waits up to base * 2**n).
    :param backoff_max: longest wait between attempts, seconds.
    :param timeout: ``(connect, read)`` timeout in seconds for one attempt.
    :param query_concurrency: query pages fetched at once by :meth:`iter_query_results`; the
        minimum interval between query calls still holds across all of them.
    """

    conn_name_attr = "nxcloud_conn_id"
    default_conn_name = "nxcloud_default"
    conn_type = "nxcloud"
    hook_name = "NXCLOUD (signed API)"

    def __init__(
        self,
        nxcloud_conn_id: str = default_conn_name,
        *,
        max_attempts: int = 6,
        backoff_multiplier: float = 0.5,
        backoff_max: float = 30.0,
        timeout: tuple[float, float] = (5.0, 30.0),
        query_concurrency: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_attempts < 1 or query_concurrency < 1:
            raise ValueError("max_attempts and query_concurrency must be >= 1")
        self.nxcloud_conn_id = nxcloud_conn_id
        self.max_attempts = max_attempts
        self.backoff_multiplier = backoff_multiplier
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.query_concurrency = query_concurrency
        #: calls sent, retries included, per action ("submit", "query").
        self.api_calls: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._local = threading.local()

    # ---- connection ---------------------------------------------------------------------------
    @cached_property
    def settings(self) -> NxCloudSettings:
        conn = self.get_connection(self.nxcloud_conn_id)
        extras = conn.extra_dejson or {}
        host = (conn.host or "").strip()
        if not host:
            raise ValueError(f"connection {self.nxcloud_conn_id!r}: host (the NXCLOUD base URL) is empty")
        if "://" not in host:
            host = f"https://{host}"
        if not conn.login or not conn.password:
            raise ValueError(
                f"connection {self.nxcloud_conn_id!r}: access key (login) and secret (password) are required"
            )
        algorithm = str(_extra(extras, "sign_algorithm") or "md5").lower()
        if algorithm not in ("md5", "sha256"):
            raise ValueError(f"connection {self.nxcloud_conn_id!r}: sign_algorithm must be md5 or sha256")
        tz_name = str(_extra(extras, "query_timezone") or "UTC")
        try:
            ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"connection {self.nxcloud_conn_id!r}: unknown query_timezone {tz_name!r}"
            ) from None
        interval = _extra(extras, "query_min_interval_s")
        return NxCloudSettings(
            base_url=host.rstrip("/"),
            access_key=conn.login,
            access_secret=conn.password,
            appkey=_extra(extras, "appkey"),
            sign_algorithm=algorithm,  # type: ignore[arg-type]
            query_timezone=tz_name,
            query_min_interval_s=3.0 if interval is None else float(interval),
        )

    @cached_property
    def query_limiter(self) -> IntervalLimiter:
        return IntervalLimiter(self.settings.query_min_interval_s)

    @property
    def query_timezone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.query_timezone)

    def vendor_today(self) -> date:
        return datetime.now(self.query_timezone).date()

    def get_conn(self) -> requests.Session:
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
        return signed_headers(
            access_key=s.access_key,
            secret=s.access_secret,
            action=NUMBER_CHECK_ACTION,
            biz_type=NUMBER_CHECK_BIZ_TYPE,
            body=body,
            algorithm=s.sign_algorithm,
            ts=ts,
        )

    # ---- one call, with retries -----------------------------------------------------------------
    def _count(self, action: str) -> None:
        with self._count_lock:
            self.api_calls[action] += 1

    def _send_once(self, action: str, path: str, body: bytes) -> dict[str, Any]:
        """One signed attempt. Raises an :class:`NxCloudError`; returns the answer when code is 0."""
        import requests

        if action == "query":
            self.query_limiter.acquire()
        headers = self.signed_headers(body.decode("utf-8"))  # signed here: a fresh ts per attempt
        self._count(action)
        try:
            response = self.get_conn().post(
                self.settings.base_url + path, data=body, headers=headers, timeout=self.timeout
            )
        except requests.ConnectTimeout:
            raise NxCloudServerError(action, f"NXCLOUD {action}: connection timed out") from None
        except requests.Timeout:
            err = NxCloudServerError(action, f"NXCLOUD {action}: no answer within {self.timeout[1]} s")
            err.ambiguous = True
            raise err from None
        except requests.ConnectionError as exc:
            err = NxCloudServerError(action, f"NXCLOUD {action}: connection failed ({type(exc).__name__})")
            err.ambiguous = "RemoteDisconnected" in str(exc) or "reset" in str(exc).lower()
            raise err from None
        return self._read_answer(action, response)

    @staticmethod
    def _read_answer(action: str, response: requests.Response) -> dict[str, Any]:
        status = response.status_code
        try:
            answer = response.json()
        except ValueError:
            answer = None
        code = answer.get("code") if isinstance(answer, dict) else None
        msg = (answer.get("msg") or answer.get("message")) if isinstance(answer, dict) else None
        if status == 429:
            err: NxCloudTransientError = NxCloudRateLimited(
                action, f"NXCLOUD {action}: HTTP 429 rate limited", code=code, http_status=status
            )
            retry_after = response.headers.get("Retry-After", "")
            err.retry_after = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else None
            raise err
        if status >= 500:
            err = NxCloudServerError(
                action, f"NXCLOUD {action}: HTTP {status}", code=code, http_status=status
            )
            err.ambiguous = True
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
            raise NxCloudUnknownError(
                action, f"NXCLOUD {action}: HTTP {status} with code 0", http_status=status
            )
        return answer

    def _wait_seconds(self, attempt: int, exc: BaseException | None) -> float:
        from tenacity import wait_random_exponential

        class _State:  # the only attribute the tenacity wait strategy reads
            attempt_number = attempt

        wait = wait_random_exponential(multiplier=self.backoff_multiplier, max=self.backoff_max)(_State())
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            wait = max(wait, min(float(retry_after), self.backoff_max))
        return wait

    def _call(
        self,
        action: str,
        path: str,
        payload: dict[str, Any],
        *,
        before_retry: Callable[[NxCloudTransientError], dict[str, Any] | None] | None = None,
    ) -> dict[str, Any]:
        """Send ``payload`` with retries. ``before_retry`` may end the retries with an answer."""
        from tenacity import (
            RetryCallState,
            Retrying,
            retry_if_exception_type,
            stop_after_attempt,
        )

        body = canonical_json(payload).encode("utf-8")  # serialised once; every attempt sends these bytes

        def wait(state: RetryCallState) -> float:
            return self._wait_seconds(
                state.attempt_number, state.outcome.exception() if state.outcome else None
            )

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "NXCLOUD %s attempt %d/%d failed: %s; retrying in %.2f s with a new signature",
                action, state.attempt_number, self.max_attempts, exc,
                state.next_action.sleep if state.next_action else 0.0,
            )  # fmt: skip

        last_error: list[NxCloudTransientError] = []

        def attempt() -> dict[str, Any]:
            if last_error and before_retry is not None:
                settled = before_retry(last_error[-1])
                if settled is not None:
                    return settled
            try:
                return self._send_once(action, path, body)
            except NxCloudTransientError as exc:
                last_error.append(exc)
                raise

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait,
            retry=retry_if_exception_type(NxCloudTransientError),
            before_sleep=log_retry,
            reraise=True,
        )
        return retrying(attempt)

    # ---- number check -------------------------------------------------------------------------
    def submit_payload(
        self, phones: Sequence[str], *, batch_no: str, check_level: int, dr_url: str | None = None
    ) -> dict[str, Any]:
        """The submit body, keys in the documented order (api-facts.md §2.1)."""
        if not phones:
            raise ValueError("submit_numbers needs at least one number")
        if not self.settings.appkey:
            raise ValueError(f"connection {self.nxcloud_conn_id!r}: the appkey extra is required to submit")
        payload: dict[str, Any] = {"phone": ",".join(phones), "batchNo": batch_no, "checkLevel": check_level}
        if dr_url:
            payload["drUrl"] = dr_url
        payload["appkey"] = self.settings.appkey
        return payload

    @staticmethod
    def query_payload(
        *,
        date: date | str,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        batch_no: str | None = None,
        message_id: str | None = None,
        phone: str | None = None,
    ) -> dict[str, Any]:
        """The query body, keys in the order of SEED 001's example."""
        if not batch_no and not message_id:
            raise ValueError("the query API needs batch_no or message_id")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}")
        if page < 1:
            raise ValueError("page starts at 1")
        payload: dict[str, Any] = {}
        if batch_no:
            payload["batchNo"] = batch_no
        if message_id:
            payload["messageId"] = message_id
        if phone:
            payload["phone"] = phone
        payload.update({"page": page, "date": str(date), "pageSize": page_size})
        return payload

    def submit_numbers(
        self,
        phones: Sequence[str],
        *,
        batch_no: str,
        check_level: int,
        dr_url: str | None = None,
    ) -> dict[str, Any]:
        """Submit one batch (one country, at most 5,000 numbers: the caller chunks).

        Returns the vendor answer (``data.messageId``/``requestId``, ``batchNo``, 2024
        ``failNumber``). After an ambiguous failure (5xx, read timeout) a retry first asks the
        query API whether the vendor knows ``batch_no``; if it does, no second (paid) submit is
        sent and ``{"code": 0, "recovered": True, ...}`` is returned.
        """
        payload = self.submit_payload(phones, batch_no=batch_no, check_level=check_level, dr_url=dr_url)
        started = datetime.now(UTC)

        def probe(exc: NxCloudTransientError) -> dict[str, Any] | None:
            if not exc.ambiguous:
                return None
            if self.batch_known_to_vendor(batch_no, since=started):
                log.warning(
                    "NXCLOUD submit of %s: the failed attempt reached the vendor; not sending it again",
                    batch_no,
                )
                return {"code": 0, "recovered": True, "data": {"batchNo": batch_no}}
            return None

        return self._call("submit", SUBMIT_PATH, payload, before_retry=probe)

    def query_page(
        self,
        *,
        date: date | str,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        batch_no: str | None = None,
        message_id: str | None = None,
        phone: str | None = None,
    ) -> dict[str, Any]:
        """One page of the query API; returns its ``data`` (``page, pageSize, totalPage, totalSize, result``)."""
        payload = self.query_payload(
            date=date, page=page, page_size=page_size, batch_no=batch_no, message_id=message_id, phone=phone
        )
        answer = self._call("query", QUERY_PATH, payload)
        data = answer.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("result", []), list):
            raise NxCloudUnknownError("query", "NXCLOUD query: answer without data.result")
        data.setdefault("result", [])
        return data

    def iter_query_results(
        self,
        batch_no: str,
        date: date | str,
        *,
        page_size: int = MAX_PAGE_SIZE,
        concurrency: int | None = None,
        stats: QueryStats | None = None,
        progress_every: int = 10,
    ) -> Iterator[list[dict[str, Any]]]:
        """Every result row of ``batch_no`` on ``date``, one list per page, in page order.

        Page 1 tells how many pages exist; the others are fetched ``concurrency`` at a time,
        each still waiting its turn at the shared minimum interval. Pages that appear while
        paging (late results) are fetched too. Progress is logged every ``progress_every`` pages.
        """
        stats = stats if stats is not None else QueryStats()
        workers = max(1, concurrency or self.query_concurrency)
        calls_before = self.api_calls["query"]
        started = time.monotonic()

        def fetch(page: int) -> dict[str, Any]:
            return self.query_page(date=date, page=page, page_size=page_size, batch_no=batch_no)

        def account(data: dict[str, Any]) -> list[dict[str, Any]]:
            rows = data["result"]
            stats.pages += 1
            stats.rows += len(rows)
            stats.total_pages = max(stats.total_pages, int(data.get("totalPage") or 0))
            stats.total_size = max(stats.total_size, int(data.get("totalSize") or 0))
            stats.api_calls = self.api_calls["query"] - calls_before
            if stats.pages % progress_every == 0 or stats.pages == stats.total_pages:
                elapsed = max(time.monotonic() - started, 1e-6)
                log.info(
                    "NXCLOUD query %s %s: pages %d/%d, rows %d/%d, %.0f rows/s, %d calls",
                    batch_no, date, stats.pages, stats.total_pages, stats.rows, stats.total_size,
                    stats.rows / elapsed, stats.api_calls,
                )  # fmt: skip
            return rows

        first = fetch(1)
        yield account(first)
        next_page = 2
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nxcloud-query") as pool:
            while next_page <= stats.total_pages:
                pages = range(next_page, stats.total_pages + 1)
                for data in pool.map(fetch, pages):
                    yield account(data)
                next_page = pages.stop
        stats.api_calls = self.api_calls["query"] - calls_before

    def batch_known_to_vendor(self, batch_no: str, since: datetime) -> bool:
        """Whether the query API lists any result of ``batch_no`` on a date from ``since`` to today."""
        tz = self.query_timezone
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        day, today = since.astimezone(tz).date() - timedelta(days=1), self.vendor_today()
        day = max(day, today - timedelta(days=14))
        while day <= today:
            try:
                data = self.query_page(date=day, page=1, page_size=1, batch_no=batch_no)
            except NxCloudError as exc:
                log.warning("NXCLOUD query for %s on %s failed while probing: %s", batch_no, day, exc)
                raise
            if int(data.get("totalSize") or 0) > 0 or data["result"]:
                return True
            day += timedelta(days=1)
        return False
