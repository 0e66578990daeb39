"""The one query-API loop: every page of our batches, stored verbatim and upserted.

Both callers use it: the on-demand DAG's ``reconcile`` (the run's batches, each on its candidate
vendor dates until every number we expect is listed) and the daily sync (the batches of one
vendor date). Each batch is one :class:`BatchLookup`; :func:`query_batches` yields one
:class:`BatchQuery` per batch, after its pages are loaded and its missing pushes counted, so a
caller reports per batch without holding the whole run in memory.

What the vendor leaves open (docs/vendors/nxcloud.md, "what the vendor leaves open"):

* the timezone of the query ``date``: a lookup names several dates, tried in order, and stops
  once ``expected`` numbers are listed (reconcile) or after its one date (daily);
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
from phonecheck.nxcloud.results import load_query_page, pushes_missing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchLookup:
    """One batch to look up: the vendor dates to try, in order, and how many numbers end it early.

    :param expected: stop trying further dates once this many distinct numbers are listed
        (None: every date is tried).
    """

    batch_no: str
    days: Sequence[date]
    expected: int | None = None


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
    listed: set[str] = field(default_factory=set)  # distinct numbers the vendor listed
    never_pushed: list[tuple[str, str]] = field(default_factory=list)  # listed, but no push in the inbox


@dataclass
class QueryTotals:
    """Sums over the batches of one call of :func:`query_batches` (for the SUMMARY lines)."""

    batches: int = 0
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
        self.never_pushed += len(batch.never_pushed)
        for name in ("rows", "pages", "api_calls", "inserted", "updated", "unreadable", "incomplete"):
            setattr(self, name, getattr(self, name) + getattr(batch, name))


def _query_day(
    client: Any, conn: psycopg.Connection, batch: BatchQuery, day: date, *, dag_id: str | None,
    run_id: str | None, pairs: list[tuple[str, str]],
) -> None:  # fmt: skip
    """Every page of ``batch`` on ``day`` into the warehouse; a refusal that does not fail a run
    ends the lookup of that date (see the module docstring)."""
    stats = QueryStats()
    try:
        for page in client.iter_query_pages(batch.batch_no, day, stats=stats):
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
    numbers listed never had a push in the inbox."""
    batch = BatchQuery(lookup.batch_no)
    pairs: list[tuple[str, str]] = []
    for day in lookup.days:
        batch.days_tried.append(day)
        _query_day(client, conn, batch, day, dag_id=dag_id, run_id=run_id, pairs=pairs)
        if lookup.expected is not None and len(batch.listed) >= lookup.expected:
            break
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
