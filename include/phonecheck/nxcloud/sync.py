"""The one query-API loop: the pages of our batches, stored verbatim and upserted.

The query API is the fallback for results the pushes did not bring, not a second copy of
them: at the vendor's documented limit (one call every 3 s per access key, 100 rows a page) each
page costs 3 s of a budget every run shares. So both callers (the on-demand DAG's ``reconcile``
and the daily sync) look a batch up only while it still has numbers without a result
(:func:`missing_by_batch`), and a lookup stops paging, on whichever candidate date, as soon as
every one of those numbers is listed (:attr:`BatchLookup.missing`). A batch whose pushes all
arrived costs no call. Each batch is one :class:`BatchLookup`; :func:`query_batches` yields one
:class:`BatchQuery` per batch, after its pages are loaded and its missing pushes counted, so a
caller reports per batch without holding the whole run in memory.

What the vendor leaves open (docs/vendors/nxcloud.md, "what the vendor leaves open"):

* the timezone of the query ``date``: a lookup names several dates, tried in order, and stops
  once its missing numbers (or ``expected`` numbers) are listed, or after its last date;
* code 88 (its text is free; a date the vendor will not answer for) and rate-limit refusals
  that outlast the client's retries end that date's lookup: what was read is kept, the reason
  is returned in :attr:`BatchQuery.stopped` and the next date is still tried. They never fail a
  run on their own. Any other vendor refusal (credentials, permissions, other bad requests)
  propagates: the caller fails its task without retrying;
* every page is kept byte for byte in ``raw.vendor_answer`` before its rows are upserted
  (:func:`phonecheck.nxcloud.results.load_query_page`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from phonecheck.nxcloud.client import QueryStats
from phonecheck.nxcloud.errors import NxCloudBadRequestError, NxCloudTransientError
from phonecheck.nxcloud.results import load_query_page, missing_counts, missing_numbers, pushes_missing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchLookup:
    """One batch to look up: the vendor dates to try, in order, and how many numbers end it early.

    :param expected: stop trying further dates once this many distinct numbers are listed
        (None: every date is tried).
    :param missing: the numbers of the batch still without a result: paging stops, on any
        date, as soon as all of them are listed, and an empty set costs no call at all (None:
        every page of every date until ``expected``, for a batch we did not submit and so
        cannot tell what it lacks). Pages are then fetched one at a time, so no call is made
        past the page that lists the last missing number.
    """

    batch_no: str
    days: Sequence[date]
    expected: int | None = None
    missing: frozenset[str] | None = None

    def found(self, listed: set[str]) -> bool:
        """Whether ``listed`` holds what this lookup is for (no further page or date needed)."""
        if self.missing is not None:
            return self.missing <= listed
        return self.expected is not None and len(listed) >= self.expected


@dataclass
class BatchQuery:
    """What the lookup of one batch read and loaded."""

    batch_no: str
    days_tried: list[date] = field(default_factory=list)
    rows: int = 0  # query rows read (readable or not), over every date tried
    pages: int = 0
    api_calls: int = 0
    inserted: int = 0
    updated: int = 0
    unreadable: int = 0
    incomplete: int = 0  # date lookups cut short by a refusal
    stopped: str | None = None  # why the last cut-short lookup stopped
    missing: int | None = None  # numbers without a result when the lookup started (None: not known)
    still_missing: int | None = None  # of those, how many no page listed
    listed: set[str] = field(default_factory=set)  # distinct numbers the vendor listed
    never_pushed: list[tuple[str, str]] = field(default_factory=list)  # listed, but no push in the inbox


@dataclass
class QueryTotals:
    """Sums over the batches of one call of :func:`query_batches` (for the SUMMARY lines)."""

    batches: int = 0
    queried_batches: int = 0  # batches that cost at least one call
    skipped_complete: int = 0  # batches every number of which had a result: no call
    missing: int = 0  # numbers without a result when their batch was looked up
    found: int = 0  # of those, listed by the query API
    rows: int = 0
    pages: int = 0
    api_calls: int = 0
    inserted: int = 0
    updated: int = 0
    unreadable: int = 0
    incomplete: int = 0
    never_pushed: int = 0

    def add(self, batch: BatchQuery) -> None:
        self.batches += 1
        self.queried_batches += batch.api_calls > 0
        self.skipped_complete += batch.missing == 0
        if batch.missing:
            self.missing += batch.missing
            self.found += batch.missing - (batch.still_missing or 0)
        self.never_pushed += len(batch.never_pushed)
        for name in ("rows", "pages", "api_calls", "inserted", "updated", "unreadable", "incomplete"):
            setattr(self, name, getattr(self, name) + getattr(batch, name))


def _pages_until_found(
    client: Any, lookup: BatchLookup, day: date, listed: set[str], stats: QueryStats
) -> Iterator[Any]:
    """The pages of ``lookup`` on ``day`` one at a time, none after the one that lists its last
    missing number (the caller adds each page's numbers to ``listed`` before asking for the next)."""
    calls_before = client.api_calls["query"]
    page_no = 1
    try:
        while True:
            page = client.query_page(date=day, page=page_no, batch_no=lookup.batch_no)
            stats.pages += 1
            stats.rows += len(page.rows)
            stats.total_pages = max(stats.total_pages, int(page.data.get("totalPage") or 0))
            stats.api_calls = client.api_calls["query"] - calls_before
            yield page
            if lookup.found(listed) or page_no >= stats.total_pages or not page.rows:
                return
            page_no += 1
    finally:
        stats.api_calls = client.api_calls["query"] - calls_before


def _query_day(
    client: Any, conn: psycopg.Connection, batch: BatchQuery, lookup: BatchLookup, day: date, *,
    dag_id: str | None, run_id: str | None, pairs: list[tuple[str, str]],
) -> None:  # fmt: skip
    """The pages of ``batch`` on ``day`` into the warehouse (all of them, or until its missing
    numbers are listed); a refusal that does not fail a run ends the lookup of that date (see
    the module docstring)."""
    stats = QueryStats()
    if lookup.missing is None:
        pages = client.iter_query_pages(batch.batch_no, day, stats=stats)
    else:
        pages = _pages_until_found(client, lookup, day, batch.listed, stats)
    try:
        for page in pages:
            part = load_query_page(conn, page, queried_at=datetime.now(UTC), dag_id=dag_id, run_id=run_id)
            batch.inserted += part.inserted
            batch.updated += part.updated
            batch.unreadable += part.unreadable
            items = [r for r in page.rows if isinstance(r, dict)]
            batch.rows += len(items)
            batch.listed.update(str(r.get("phone")) for r in items)
            pairs.extend((str(r.get("batchNo")), str(r.get("phone"))) for r in items)
    except (NxCloudTransientError, NxCloudBadRequestError) as exc:
        if isinstance(exc, NxCloudBadRequestError) and exc.code != 88:
            raise
        log.warning(
            "NXCLOUD query of %s on %s stopped: %s (rows read so far are kept)", batch.batch_no, day, exc
        )
        batch.incomplete += 1
        batch.stopped = str(exc)
    finally:
        batch.pages += stats.pages
        batch.api_calls += stats.api_calls


def query_batch(
    client: Any,
    conn: psycopg.Connection,
    lookup: BatchLookup,
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
) -> BatchQuery:
    """Look one batch up on its dates in turn (see the module docstring); then which of the
    numbers listed never had a push in the inbox. A lookup whose ``missing`` set is empty makes
    no call."""
    batch = BatchQuery(lookup.batch_no)
    if lookup.missing is not None:
        batch.missing = len(lookup.missing)
        if not lookup.missing:
            batch.still_missing = 0
            return batch  # every number has a result: the query API has nothing to add
    pairs: list[tuple[str, str]] = []
    for day in lookup.days:
        batch.days_tried.append(day)
        _query_day(client, conn, batch, lookup, day, dag_id=dag_id, run_id=run_id, pairs=pairs)
        if lookup.found(batch.listed):
            break
    if lookup.missing is not None:
        batch.still_missing = len(lookup.missing - batch.listed)
    batch.never_pushed = pushes_missing(conn, pairs)
    return batch


def query_batches(
    client: Any,
    conn: psycopg.Connection,
    lookups: Iterable[BatchLookup],
    *,
    totals: QueryTotals | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
) -> Iterator[BatchQuery]:
    """:func:`query_batch` for each lookup in turn, adding each to ``totals`` when given."""
    for lookup in lookups:
        batch = query_batch(client, conn, lookup, dag_id=dag_id, run_id=run_id)
        if totals is not None:
            totals.add(batch)
        yield batch


def lookups_for(conn: psycopg.Connection, batch_nos: Iterable[str], days_of: Any) -> Iterator[BatchLookup]:
    """One :class:`BatchLookup` per batch, read lazily (one batch's numbers in memory at a time),
    each with the numbers still without a result and the dates ``days_of(batch_no)`` names.

    How many each batch lacks is counted for all of them in one statement
    (:func:`phonecheck.nxcloud.results.missing_counts`); only a batch that lacks some has its
    numbers read (:func:`phonecheck.nxcloud.results.missing_numbers`), so a run whose pushes all
    arrived costs one query of the warehouse, not one per batch.
    """
    batch_nos = list(batch_nos)
    counts = missing_counts(conn, batch_nos)
    for batch_no in batch_nos:
        count = counts.get(batch_no)
        if count is None:
            missing = None  # not ours: what it lacks is not known
        elif count == 0:
            missing = frozenset()
        else:
            missing = missing_numbers(conn, batch_no)
        yield BatchLookup(batch_no, days_of(batch_no), missing=missing)
