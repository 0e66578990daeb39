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

# A duplicate counts one more delivery and keeps the first body: retries are identical, and
# the first delivery is what was processed.
INSERT_EVENT_SQL = """
INSERT INTO raw.webhook_event AS e
    (endpoint, vendor, dedupe_key, content_type, body, query_string, payload,
     parse_status, parse_error, received_at, last_received_at, via_spool)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $10, $11)
ON CONFLICT (endpoint, dedupe_key) DO UPDATE
    SET delivery_count = e.delivery_count + 1,
        last_received_at = GREATEST(e.last_received_at, EXCLUDED.last_received_at)
RETURNING event_id, (xmax = 0) AS inserted
"""

# Spool replay: the delivery was already counted when it was spooled. A conflict means the
# write that timed out had committed after all (or a replay is being repeated): keep one row.
REPLAY_EVENT_SQL = """
INSERT INTO raw.webhook_event
    (endpoint, vendor, dedupe_key, content_type, body, query_string, payload,
     parse_status, parse_error, received_at, last_received_at, via_spool)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $10, $11)
ON CONFLICT (endpoint, dedupe_key) DO NOTHING
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
                )
            except Exception as exc:  # noqa: BLE001 - any failure to connect means unavailable
                self._last_failed_connect = time.monotonic()
                raise WarehouseUnavailable(_describe(exc)) from None
            return self._pool

    async def insert(self, event: InboxEvent) -> StoreResult:
        """Commit one delivery (autocommit statement) and return its row id."""
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


def _describe(exc: BaseException) -> str:
    """Exception text safe for logs: type and first line only (no DSN: asyncpg never puts the
    password in its messages, and we never format the DSN)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}"
