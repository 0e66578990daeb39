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

# Spool replay: the delivery was answered but not yet counted, so a stored key counts it, unless
# the row already carries this very delivery's receive time (the write that timed out had
# committed after all): then nothing changes (p_replay). ``ops.receiver_spool_record`` makes each
# spooled record count once, however often its file is replayed.
REPLAY_EVENT_SQL = """
SELECT 1 FROM raw.store_webhook_event($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, 1, NULL, true)
"""

CLAIM_RECORD_SQL = """
INSERT INTO ops.receiver_spool_record (record_id, spool_file) VALUES ($1, $2)
ON CONFLICT (record_id) DO NOTHING RETURNING true
"""

REPLAY_CHUNK = 200  # records per replay transaction (one savepoint each)


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


# SQLSTATE classes that say "the warehouse refuses this payload as given", as opposed to "the
# server is gone": 22 data exception (bad encoding, out of range), 23 integrity constraint
# violation, 54 program limit exceeded (e.g. an index row too large). A retry cannot fix them.
# Everything else (connection loss, timeouts, 08/53/57 classes, a missing schema) is "retry later".
_PAYLOAD_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})


def is_payload_error(exc: BaseException) -> bool:
    """True when the warehouse refused the data itself (retrying would fail the same way)."""
    sqlstate = getattr(exc, "sqlstate", None)
    return (
        isinstance(exc, asyncpg.PostgresError)
        and bool(sqlstate)
        and sqlstate[:2] in _PAYLOAD_SQLSTATE_CLASSES
    )


class PayloadRefused(Exception):
    """The warehouse refuses this delivery even kept as an unparseable row: quarantine it."""


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    stored: int = 0  # records that reached the inbox now
    already: int = 0  # records an earlier replay had stored (ledger)
    refused: tuple = ()  # (SpoolRecord, reason) pairs the warehouse will never take


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
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._flushers -= 1

    async def _insert_batch(self, events: list[InboxEvent]) -> list[StoreResult | BaseException]:
        if len(events) == 1:
            return [await self.insert_one(events[0])]
        pool = await self._get_pool()
        columns = list(zip(*(event_args(e)[:10] for e in events), strict=True))
        try:
            rows = await pool.fetch(BATCH_INSERT_SQL, *map(list, columns), timeout=self._command_timeout)
        except Exception as exc:  # noqa: BLE001
            if not is_payload_error(exc):
                raise WarehouseUnavailable(_describe(exc)) from None
            # one payload the warehouse refuses spoils the statement: store them one by one, so
            # it alone is kept as an error row (or refused) and the others are stored as usual
            results: list[StoreResult | BaseException] = []
            for e in events:
                try:
                    results.append(await self.insert_one(e))
                except (PayloadRefused, WarehouseUnavailable) as one:
                    results.append(one)
            return results
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
        """One delivery, one autocommit statement. Raises ``WarehouseUnavailable`` (retry later)
        or ``PayloadRefused`` (never storable: quarantine it)."""
        pool = await self._get_pool()
        try:
            try:
                row = await pool.fetchrow(INSERT_EVENT_SQL, *event_args(event), timeout=self._command_timeout)
            except Exception as exc:  # noqa: BLE001
                if not is_payload_error(exc):
                    raise
                # e.g. a lone surrogate escape PostgreSQL's jsonb refuses: keep the body.
                kept = event.as_error(f"warehouse refused the payload: {_describe(exc)}")
                try:
                    row = await pool.fetchrow(
                        INSERT_EVENT_SQL, *event_args(kept), timeout=self._command_timeout
                    )
                except Exception as again:  # noqa: BLE001
                    if is_payload_error(again):
                        raise PayloadRefused(_describe(again)) from None
                    raise
        except PayloadRefused:
            raise
        except Exception as exc:  # noqa: BLE001 - connection loss, timeout, missing schema...
            raise WarehouseUnavailable(_describe(exc)) from None
        return StoreResult(event_id=row["event_id"], inserted=row["inserted"])

    async def replay(self, spool_file: str, records: Sequence, *, legacy: bool = False) -> ReplayOutcome:
        """Insert spooled records, each exactly once (ledger ``ops.receiver_spool_record``, in the
        same transaction as its inbox row), isolated by a savepoint each: a record the warehouse
        refuses comes back in ``refused`` and the others are stored. Erased records are skipped.

        Raises ``WarehouseUnavailable`` when the warehouse is gone (committed chunks stay done).
        """
        pool = await self._get_pool()
        stored = already = 0
        refused: list[tuple] = []
        live = [r for r in records if r.event is not None]
        try:
            async with pool.acquire(timeout=self._connect_timeout) as conn:
                if legacy and await conn.fetchval(
                    "SELECT true FROM ops.receiver_spool_replay WHERE spool_file = $1", spool_file
                ):
                    return ReplayOutcome(already=len(live))  # replayed by an earlier receiver version
                for start in range(0, len(live), REPLAY_CHUNK):
                    async with conn.transaction():
                        for record in live[start : start + REPLAY_CHUNK]:
                            outcome = await self._replay_record(conn, spool_file, record)
                            if outcome is True:
                                stored += 1
                            elif outcome is False:
                                already += 1
                            else:
                                refused.append((record, outcome))
        except Exception as exc:  # noqa: BLE001
            raise WarehouseUnavailable(_describe(exc)) from None
        return ReplayOutcome(stored=stored, already=already, refused=tuple(refused))

    @staticmethod
    async def _replay_record(conn: asyncpg.Connection, spool_file: str, record) -> bool | str:
        """True stored, False already stored, or the reason the warehouse refuses it (even
        kept as an unparseable row)."""
        attempt: InboxEvent = record.event
        reason = ""
        for last in (False, True):
            try:
                async with conn.transaction():  # savepoint: one bad record spoils nothing
                    if not await conn.fetchval(CLAIM_RECORD_SQL, record.record_id, spool_file):
                        return False
                    await conn.execute(REPLAY_EVENT_SQL, *event_args(attempt, via_spool=True))
                    return True
            except Exception as exc:  # noqa: BLE001
                if not is_payload_error(exc):
                    raise
                reason = _describe(exc)
                if not last:
                    attempt = record.event.as_error(f"warehouse refused the payload: {reason}")
        return reason

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
