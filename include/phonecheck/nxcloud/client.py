"""The NXCLOUD number-check wire client: signed submit and query calls, plain Python (no Airflow).

Every attempt is signed on its own (a fresh ``ts``) over the body serialised once with
:func:`phonecheck.signing.canonical_json` and sent as those very bytes. Retries use tenacity
with full-jitter exponential backoff, and only for failures a retry can fix without risking a
second charge: connection failures before anything was sent, HTTP 429 and the vendor's
rate-limit refusals, and (for the free query API only) 5xx, read timeouts and dropped
connections. A paid submit whose answer was lost after it was sent (5xx, read timeout, a
connection closed mid-answer) is never retried here: it raises an ``ambiguous``
:class:`~phonecheck.nxcloud.errors.NxCloudServerError` and :mod:`.submissions` settles it
("in doubt", docs/vendors/nxcloud.md). Vendor codes become :mod:`.errors` exceptions whose
messages never carry the secret, the signature or the body (which holds the webhook token).

Airflow's :class:`~phonecheck_airflow.hooks.nxcloud.NxCloudHook` only turns a connection into
:class:`NxCloudSettings` and a client.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from phonecheck.nxcloud.errors import (
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
#: How many days back the query API answers (docs/vendors/nxcloud.md, "Query API").
QUERY_WINDOW_DAYS = 14
#: The vendor does not say in which timezone the query API's ``date`` is. These are the
#: candidates we look a batch up under (docs/vendors/nxcloud.md, "what the vendor leaves open").
CANDIDATE_TIMEZONES = ("UTC", "Asia/Shanghai")
#: Results are pushed "10 s to 5 min" after a submit (docs/vendors/nxcloud.md, "Result push").
PUSH_WINDOW_S = 300.0
#: What we add to that window before a batch in doubt is submitted again.
IN_DOUBT_MARGIN_S = 300.0


@dataclass(frozen=True)
class NxCloudSettings:
    """What the client needs from a connection. ``repr`` never shows the secret."""

    base_url: str
    access_key: str = field(repr=False)
    access_secret: str = field(repr=False)
    appkey: str | None = field(default=None, repr=False)
    sign_algorithm: SignAlgorithm = "md5"
    query_timezone: str = "UTC"
    query_min_interval_s: float = 3.0
    push_window_s: float = PUSH_WINDOW_S
    in_doubt_margin_s: float = IN_DOUBT_MARGIN_S

    @property
    def in_doubt_after_s(self) -> float:
        """Seconds after a lost submit answer before that batch may be submitted again."""
        return self.push_window_s + self.in_doubt_margin_s


class Limiter(Protocol):
    def acquire(self) -> float: ...


@dataclass
class QueryStats:
    """Filled by :meth:`NxCloudClient.iter_query_pages` while it pages."""

    pages: int = 0
    total_pages: int = 0
    total_size: int = 0
    rows: int = 0
    api_calls: int = 0  # query calls made for this iteration, retries included


@dataclass(frozen=True)
class VendorAnswer:
    """One answer as received: kept verbatim (``raw.vendor_answer``) before anything is parsed."""

    http_status: int
    content_type: str | None
    body: bytes
    payload: dict[str, Any]  # the parsed JSON object (code 0)


@dataclass(frozen=True)
class QueryPage:
    """One page of the query API: the verbatim answer and its ``data``."""

    batch_no: str | None
    date: date
    page: int
    answer: VendorAnswer

    @property
    def data(self) -> dict[str, Any]:
        return self.answer.payload["data"]

    @property
    def rows(self) -> list[Any]:
        return self.data["result"]

    @property
    def request_ref(self) -> str:
        return f"{self.batch_no}|{self.date.isoformat()}|page {self.page}"


def candidate_dates(
    submitted_at: datetime, query_timezone: str, *, now: datetime | None = None
) -> list[date]:
    """Vendor dates a batch submitted at ``submitted_at`` may be listed under, most likely first.

    The configured timezone's dates come first (submission day up to its today), then the
    dates only another candidate timezone gives (e.g. 23:30 UTC is already tomorrow in China).
    For most of the day every candidate agrees, so a batch is looked up on one date only.
    """
    now = now or datetime.now(UTC)
    if submitted_at.tzinfo is None:
        submitted_at = submitted_at.replace(tzinfo=UTC)
    zones = [query_timezone, *(z for z in CANDIDATE_TIMEZONES if z != query_timezone)]
    seen: list[date] = []
    for zone in zones:
        tz = ZoneInfo(zone)
        day, today = submitted_at.astimezone(tz).date(), now.astimezone(tz).date()
        day = max(day, today - timedelta(days=QUERY_WINDOW_DAYS))
        while day <= today:
            if day not in seen:
                seen.append(day)
            day += timedelta(days=1)
    return seen


class NxCloudClient:
    """Signs and sends NXCLOUD number-check calls (submit and query); thread-safe.

    :param settings: base URL, credentials, signing algorithm, query timezone and spacing.
    :param query_limiter: spaces query calls; pass one shared by every process using the same
        access key (:class:`phonecheck.nxcloud.ratelimit.WarehouseIntervalLimiter`). Default:
        an in-process :class:`IntervalLimiter` of ``settings.query_min_interval_s``.
    :param max_attempts: attempts per call, the first included.
    :param rate_limit_attempts: attempts per query call refused for its rate (429, code 88).
    :param backoff_multiplier: full-jitter base in seconds (attempt n waits up to base * 2**n).
    :param backoff_max: longest wait between attempts, seconds.
    :param timeout: ``(connect, read)`` timeout in seconds for one attempt.
    :param query_concurrency: query pages fetched at once; the limiter still spaces them.
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
    ) -> None:
        if max_attempts < 1 or query_concurrency < 1 or rate_limit_attempts < 1:
            raise ValueError("max_attempts, rate_limit_attempts and query_concurrency must be >= 1")
        self.settings = settings
        self.query_limiter: Limiter = query_limiter or IntervalLimiter(settings.query_min_interval_s)
        self.max_attempts = max_attempts
        self.rate_limit_attempts = rate_limit_attempts
        self.backoff_multiplier = backoff_multiplier
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.query_concurrency = query_concurrency
        #: calls sent, retries included, per action ("submit", "query").
        self.api_calls: Counter[str] = Counter()
        #: query calls the vendor refused for their rate (retried).
        self.rate_limited: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._local = threading.local()

    # ---- plumbing -----------------------------------------------------------------------------
    @property
    def query_timezone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.query_timezone)

    def vendor_today(self) -> date:
        return datetime.now(self.query_timezone).date()

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
        except requests.ConnectTimeout:
            raise NxCloudServerError(action, f"NXCLOUD {action}: connection timed out") from None
        except requests.Timeout:
            err = NxCloudServerError(action, f"NXCLOUD {action}: no answer within {self.timeout[1]} s")
            err.ambiguous = True
            raise err from None
        except requests.ConnectionError as exc:
            err = NxCloudServerError(action, f"NXCLOUD {action}: connection failed ({type(exc).__name__})")
            # refused / unresolvable: nothing reached the vendor; anything else may have
            err.ambiguous = not any(w in str(exc) for w in ("Connection refused", "NameResolution"))
            raise err from None
        except requests.RequestException as exc:  # e.g. ChunkedEncodingError: closed mid-answer
            err = NxCloudServerError(action, f"NXCLOUD {action}: answer cut off ({type(exc).__name__})")
            err.ambiguous = True
            raise err from None
        return self._read_answer(action, response, content)

    @staticmethod
    def _read_answer(action: str, response: requests.Response, content: bytes) -> VendorAnswer:
        import json

        status = response.status_code
        try:
            answer = json.loads(content)
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
        return VendorAnswer(status, response.headers.get("Content-Type"), content, answer)

    def _wait_seconds(self, attempt: int, exc: BaseException | None) -> float:
        from tenacity import wait_random_exponential

        class _State:  # the only attribute the tenacity wait strategy reads
            attempt_number = attempt

        wait = wait_random_exponential(multiplier=self.backoff_multiplier, max=self.backoff_max)(_State())
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            wait = max(wait, min(float(retry_after), self.backoff_max))
        return wait

    def _call(self, action: str, path: str, payload: dict[str, Any]) -> VendorAnswer:
        """Send ``payload`` with retries (see the module docstring for which failures)."""
        from tenacity import RetryCallState, Retrying, retry_if_exception, stop_any

        body = canonical_json(payload).encode("utf-8")  # serialised once; every attempt sends these bytes

        def retryable(exc: BaseException) -> bool:
            if not isinstance(exc, NxCloudTransientError):
                return False
            return action != "submit" or not exc.ambiguous  # a paid call that may have landed: never

        def give_up(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            limit = self.rate_limit_attempts if isinstance(exc, NxCloudRateLimited) else self.max_attempts
            return state.attempt_number >= limit

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, NxCloudRateLimited):
                self._count(self.rate_limited, action)
            log.warning(
                "NXCLOUD %s attempt %d failed: %s; retrying in %.2f s with a new signature",
                action, state.attempt_number, exc, state.next_action.sleep if state.next_action else 0.0,
            )  # fmt: skip

        retrying = Retrying(
            stop=stop_any(give_up),
            wait=lambda s: self._wait_seconds(s.attempt_number, s.outcome.exception() if s.outcome else None),
            retry=retry_if_exception(retryable),
            before_sleep=log_retry,
            reraise=True,
        )
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
        """The query body, keys in the order of the vendor's example."""
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
        self, phones: Sequence[str], *, batch_no: str, check_level: int, dr_url: str | None = None
    ) -> dict[str, Any]:
        """Submit one batch (one country, at most 5,000 numbers: the caller chunks); PAID.

        Returns the vendor answer (``data.messageId``/``requestId``, ``batchNo``, 2024
        ``failNumber``). An answer lost after the request was sent raises an ``ambiguous``
        :class:`NxCloudServerError` and is not retried: the caller settles it.
        """
        payload = self.submit_payload(phones, batch_no=batch_no, check_level=check_level, dr_url=dr_url)
        return self._call("submit", SUBMIT_PATH, payload).payload

    def query_page(
        self,
        *,
        date: date,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        batch_no: str | None = None,
        message_id: str | None = None,
        phone: str | None = None,
    ) -> QueryPage:
        """One page of the query API, verbatim and parsed (``data``: page, totalPage, totalSize, result)."""
        payload = self.query_payload(
            date=date, page=page, page_size=page_size, batch_no=batch_no, message_id=message_id, phone=phone
        )
        answer = self._call("query", QUERY_PATH, payload)
        data = answer.payload.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("result", []), list):
            raise NxCloudUnknownError("query", "NXCLOUD query: answer without data.result")
        data.setdefault("result", [])
        return QueryPage(batch_no, date, page, answer)

    def iter_query_pages(
        self,
        batch_no: str,
        day: date,
        *,
        page_size: int = MAX_PAGE_SIZE,
        concurrency: int | None = None,
        stats: QueryStats | None = None,
        progress_every: int = 10,
    ) -> Iterator[QueryPage]:
        """Every page of ``batch_no`` on vendor date ``day``, in page order.

        Page 1 tells how many pages exist; the others are fetched ``concurrency`` at a time,
        each still waiting its turn at the query limiter. Pages that appear while paging (late
        results) are fetched too. Progress is logged every ``progress_every`` pages.
        """
        stats = stats if stats is not None else QueryStats()
        workers = max(1, concurrency or self.query_concurrency)
        calls_before = self.api_calls["query"]
        started = time.monotonic()

        def fetch(page: int) -> QueryPage:
            return self.query_page(date=day, page=page, page_size=page_size, batch_no=batch_no)

        def account(page: QueryPage) -> QueryPage:
            stats.pages += 1
            stats.rows += len(page.rows)
            stats.total_pages = max(stats.total_pages, int(page.data.get("totalPage") or 0))
            stats.total_size = max(stats.total_size, int(page.data.get("totalSize") or 0))
            stats.api_calls = self.api_calls["query"] - calls_before
            if stats.pages % progress_every == 0 or stats.pages == stats.total_pages:
                elapsed = max(time.monotonic() - started, 1e-6)
                log.info(
                    "NXCLOUD query %s %s: pages %d/%d, rows %d/%d, %.0f rows/s, %d calls",
                    batch_no, day, stats.pages, stats.total_pages, stats.rows, stats.total_size,
                    stats.rows / elapsed, stats.api_calls,
                )  # fmt: skip
            return page

        yield account(fetch(1))
        next_page = 2
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nxcloud-query") as pool:
            while next_page <= stats.total_pages:
                pages = range(next_page, stats.total_pages + 1)
                for page in pool.map(fetch, pages):
                    yield account(page)
                next_page = pages.stop
        stats.api_calls = self.api_calls["query"] - calls_before

    def iter_query_results(self, batch_no: str, day: date, **kwargs: Any) -> Iterator[list[dict[str, Any]]]:
        """The rows of every page (see :meth:`iter_query_pages`)."""
        for page in self.iter_query_pages(batch_no, day, **kwargs):
            yield page.rows

    def batch_dates_listed(self, batch_no: str, since: datetime) -> list[date]:
        """The vendor dates (of :func:`candidate_dates`) on which the query API lists ``batch_no``.

        Costs one small query per candidate date; stops at the first date that lists it.
        """
        from phonecheck.nxcloud.errors import NxCloudBadRequestError

        for day in candidate_dates(since, self.settings.query_timezone):
            try:
                page = self.query_page(date=day, page=1, page_size=1, batch_no=batch_no)
            except NxCloudBadRequestError as exc:
                if exc.code != 88:
                    raise
                log.info("NXCLOUD query: %s is not a date the vendor answers for (%s)", day, exc)
                continue
            if int(page.data.get("totalSize") or 0) > 0 or page.rows:
                return [day]
        return []

    def batch_known_to_vendor(self, batch_no: str, since: datetime) -> bool:
        """Whether the query API lists any result of ``batch_no`` (any candidate date since ``since``)."""
        return bool(self.batch_dates_listed(batch_no, since))
