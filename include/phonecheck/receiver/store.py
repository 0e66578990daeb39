"""Durable inbox writes: one ``INSERT ... ON CONFLICT ... RETURNING`` per delivery (asyncpg).

The pool is created lazily on first use, inside the event loop that serves requests (the
Airflow api-server mounts the app in its own loop; nothing may connect at import time), and
re-created after a failure. Sessions force ``synchronous_commit = on``: an answered push is on
disk even if the server's default says otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from phonecheck.receiver.intake import InboxEvent

log = logging.getLogger(__name__)

# raw.webhook_event is partitioned by day (docs/privacy.md), so its dedupe key lives in
# raw.webhook_event_key and raw.store_webhook_event(s) do what INSERT ... ON CONFLICT did: a
# duplicate counts one more delivery and keeps the first body (retries are identical, and the
# first delivery is what was processed).
INSERT_EVENT_SQL = """
SELECT event_id, inserted
FROM raw.store_webhook_event($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11)
"""

# Spool replay: the delivery was already counted when it was spooled. A stored key means the
# write that timed out had committed after all (or a replay is being repeated): keep one row.
REPLAY_EVENT_SQL = """
SELECT 1 FROM raw.store_webhook_event($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, 0)
"""


# Group commit: the deliveries waiting at the same moment go in one statement and one commit
# (one WAL flush instead of one per request). A key repeated inside the batch is inserted once
# with its delivery count; each waiting request is answered after that commit.
BATCH_INSERT_SQL = """
SELECT endpoint, dedupe_key, event_id, inserted
FROM raw.store_webhook_events($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[],
                              $7::text[], $8::text[], $9::text[], $10::timestamptz[])
"""


class WarehouseUnavailable(Exception):
    """The inbox write did not happen (server down, refused, timed out, schema missing...)."""


@dataclass(frozen=True, slots=True)
class StoreResult:
    event_id: int
    inserted: bool  # False: a duplicate delivery, counted on the existing row


def event_args(event: InboxEvent, *, via_spool: bool = False) -> tuple:
    return (
        event.endpoint,
        event.vendor,
        event.dedupe_key,
        event.content_type,
        event.body,
        event.query_string,
        event.payload,
        event.parse_status,
        event.parse_error,
        event.received_at,
        via_spool,
    )


# Errors that say "the data cannot be stored as given", as opposed to "the server is gone":
# the delivery is then kept as an unparseable row (body intact) instead of being refused forever.
_DATA_ERRORS = (asyncpg.DataError, asyncpg.exceptions.UntranslatableCharacterError)


class InboxStore:
    """Writes inbox rows through a small asyncpg pool."""

    def __init__(
        self,
        dsn_provider: Callable[[], str],
        *,
        min_size: int = 2,
        max_size: int = 8,
        connect_timeout: float = 3.0,
        command_timeout: float = 5.0,
        reconnect_backoff: float = 0.5,
        group_commit: bool = True,
        max_batch: int = 256,
    ) -> None:
        self._dsn_provider = dsn_provider
        self._min_size = min_size
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._reconnect_backoff = reconnect_backoff
        self._pool: asyncpg.Pool | None = None
        self._pool_lock: asyncio.Lock | None = None
        self._last_failed_connect = 0.0
        self._group_commit = group_commit
        self._max_batch = max_batch
        self._queue: list[tuple[InboxEvent, asyncio.Future]] = []
        self._flushers = 0

    async def _get_pool(self) -> asyncpg.Pool:
        pool = self._pool
        if pool is not None:
            return pool
        if self._pool_lock is None:
            self._pool_lock = asyncio.Lock()
        async with self._pool_lock:
            if self._pool is not None:
                return self._pool
            # Do not hammer a server that just refused us: one attempt per backoff window.
            if time.monotonic() - self._last_failed_connect < self._reconnect_backoff:
                raise WarehouseUnavailable("warehouse connection failed recently")
            try:
                self._pool = await asyncpg.create_pool(
                    self._dsn_provider(),
                    min_size=self._min_size,
                    max_size=self._max_size,
                    timeout=self._connect_timeout,
                    command_timeout=self._command_timeout,
                    server_settings={
                        "synchronous_commit": "on",
                        "application_name": "phonecheck-receiver",
                    },
                    reset=_keep_session,
                )
            except Exception as exc:  # noqa: BLE001 - any failure to connect means unavailable
                self._last_failed_connect = time.monotonic()
                raise WarehouseUnavailable(_describe(exc)) from None
            return self._pool

    async def insert(self, event: InboxEvent) -> StoreResult:
        """Commit one delivery and return its row id (answered only after the commit)."""
        if not self._group_commit:
            return await self.insert_one(event)
        future = asyncio.get_running_loop().create_future()
        self._queue.append((event, future))
        # one flusher per pool connection at most; each takes whatever is waiting
        if self._flushers < self._max_size:
            self._flushers += 1
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                try:
                    results = await self._insert_batch([event for event, _ in batch])
                except BaseException as exc:  # noqa: BLE001 - every waiter must be answered
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(
                                exc if isinstance(exc, Exception) else WarehouseUnavailable("cancelled")
                            )
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._flushers -= 1

    async def _insert_batch(self, events: list[InboxEvent]) -> list[StoreResult]:
        if len(events) == 1:
            return [await self.insert_one(events[0])]
        pool = await self._get_pool()
        columns = list(zip(*(event_args(e)[:10] for e in events), strict=True))
        try:
            rows = await pool.fetch(BATCH_INSERT_SQL, *map(list, columns), timeout=self._command_timeout)
        except _DATA_ERRORS:
            # one payload the warehouse refuses spoils the statement: store them one by one
            return [await self.insert_one(e) for e in events]
        except Exception as exc:  # noqa: BLE001
            raise WarehouseUnavailable(_describe(exc)) from None
        by_key = {(r["endpoint"], r["dedupe_key"]): r for r in rows}
        results, seen = [], set()
        for e in events:
            key = (e.endpoint, e.dedupe_key)
            row = by_key[key]
            results.append(
                StoreResult(event_id=row["event_id"], inserted=row["inserted"] and key not in seen)
            )
            seen.add(key)
        return results

    async def insert_one(self, event: InboxEvent) -> StoreResult:
        """One delivery, one autocommit statement."""
        pool = await self._get_pool()
        try:
            try:
                row = await pool.fetchrow(INSERT_EVENT_SQL, *event_args(event), timeout=self._command_timeout)
            except _DATA_ERRORS as exc:
                # e.g. a lone surrogate escape PostgreSQL's jsonb refuses: keep the body.
                kept = event.as_error(f"warehouse refused the payload: {_describe(exc)}")
                row = await pool.fetchrow(INSERT_EVENT_SQL, *event_args(kept), timeout=self._command_timeout)
        except Exception as exc:  # noqa: BLE001 - connection loss, timeout, missing schema...
            raise WarehouseUnavailable(_describe(exc)) from None
        return StoreResult(event_id=row["event_id"], inserted=row["inserted"])

    async def replay(self, spool_file: str, events: Sequence[InboxEvent]) -> bool:
        """Insert spooled events and record the spool file, in one transaction.

        Returns False when this file was already replayed (a crash between commit and unlink).
        """
        pool = await self._get_pool()
        try:
            async with pool.acquire(timeout=self._connect_timeout) as conn, conn.transaction():
                done = await conn.fetchval(
                    "SELECT true FROM ops.receiver_spool_replay WHERE spool_file = $1", spool_file
                )
                if done:
                    return False
                for event in events:
                    try:
                        async with conn.transaction():  # savepoint: one bad payload spoils nothing
                            await conn.execute(REPLAY_EVENT_SQL, *event_args(event, via_spool=True))
                    except _DATA_ERRORS as exc:
                        kept = event.as_error(f"warehouse refused the payload: {_describe(exc)}")
                        await conn.execute(REPLAY_EVENT_SQL, *event_args(kept, via_spool=True))
                await conn.execute(
                    "INSERT INTO ops.receiver_spool_replay (spool_file, record_count) VALUES ($1, $2)",
                    spool_file,
                    len(events),
                )
                return True
        except Exception as exc:  # noqa: BLE001
            raise WarehouseUnavailable(_describe(exc)) from None

    async def ping(self) -> bool:
        try:
            pool = await self._get_pool()
            return await pool.fetchval("SELECT true", timeout=2.0) is True
        except Exception:  # noqa: BLE001 - health check: any failure is "not reachable"
            return False

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=5)
            except Exception:  # noqa: BLE001
                pool.terminate()


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """Pool release without asyncpg's reset query (advisory unlock, CLOSE ALL, UNLISTEN, RESET
    ALL): one more round trip per batch for session state this store never creates. asyncpg
    still rolls back an open transaction before calling this, which is the part that matters."""


def _describe(exc: BaseException) -> str:
    """Exception text safe for logs: type and first line only (no DSN: asyncpg never puts the
    password in its messages, and we never format the DSN)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}"
