"""The NXCLOUD query API (free, rate-limited): pages, paging, and the vendor dates a batch is
listed under (no Airflow). :class:`QueryCalls` is mixed into
:class:`~phonecheck.nxcloud.client.NxCloudClient`, which sends the calls."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from phonecheck.nxcloud.errors import NxCloudBadRequestError, NxCloudUnknownError
from phonecheck.nxcloud.settings import (
    CANDIDATE_TIMEZONES,
    MAX_PAGE_SIZE,
    QUERY_PATH,
    QUERY_WINDOW_DAYS,
    NxCloudSettings,
)
from phonecheck.nxcloud.wire import VendorAnswer

log = logging.getLogger(__name__)


@dataclass
class QueryStats:
    """Filled by :meth:`QueryCalls.iter_query_pages` while it pages."""

    pages: int = 0
    total_pages: int = 0
    total_size: int = 0
    rows: int = 0
    api_calls: int = 0  # query calls made for this iteration, retries included


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


class QueryCalls:
    """Query-API calls of :class:`~phonecheck.nxcloud.client.NxCloudClient` (which provides
    ``settings``, ``api_calls``, ``query_concurrency`` and ``_call``)."""

    settings: NxCloudSettings
    api_calls: Counter[str]
    query_concurrency: int
    query_payload = staticmethod(query_payload)

    def _call(self, action: str, path: str, payload: dict[str, Any]) -> VendorAnswer:
        raise NotImplementedError

    @property
    def query_timezone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.query_timezone)

    def vendor_today(self) -> date:
        return datetime.now(self.query_timezone).date()

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
        payload = query_payload(
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
