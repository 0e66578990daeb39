"""A minimum interval between query calls: per client (threads) or per access key (warehouse).

The query API allows one call every 3 s in the newer vendor documents: concurrent page fetches
must still be spaced by that interval, so every thread takes its turn from one
:class:`IntervalLimiter` (a token bucket of size one). Concurrency then only helps to overlap
the network round trip with the wait, which is what we want when the interval is small or 0.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from phonecheck.nxcloud.settings import NxCloudSettings


class IntervalLimiter:
    """``acquire()`` blocks until at least ``min_interval_s`` passed since the previous grant."""

    def __init__(
        self,
        min_interval_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if min_interval_s < 0:
            raise ValueError("min_interval_s must be >= 0")
        self.min_interval_s = float(min_interval_s)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_at: float | None = None
        self.waited_s = 0.0

    def acquire(self) -> float:
        """Reserve the next slot and wait for it; returns the seconds waited."""
        with self._lock:  # reserve under the lock, sleep outside it
            now = self._clock()
            slot = now if self._next_at is None else max(now, self._next_at)
            self._next_at = slot + self.min_interval_s
            self.waited_s += slot - now
        delay = slot - now
        if delay > 0:
            self._sleep(delay)
        return delay


class WarehouseIntervalLimiter:
    """The same minimum interval, shared fairly by every process that uses one NXCLOUD access key.

    The vendor limits the query API per account, not per worker: concurrent runs, the daily sync
    and the in-doubt probes on other workers all draw from one slot, kept in the warehouse
    (``ops.nxcloud_query_slot``, one row per access key, stored as a SHA-256 so the key itself
    is not in the table; the database clock is the only clock). A slot is not handed out first
    come first served: each waiting call has a row in ``ops.nxcloud_query_waiter`` and the free
    slot goes to the waiting *taker* (one limiter: one task of one run) served least recently
    (``ops.nxcloud_query_taker``), oldest request first within a taker. Turns rotate round-robin,
    so a small run's few pages wait at most one call of each other waiting run, never behind a
    big run's thousands. Every grant is numbered (the slot's ``calls``), so the order is
    observable: :attr:`grants` holds ``(grant number, calls granted to others while waiting)``.

    A waiter refreshes its row while it waits; a row not refreshed for ``stale_after_s`` (its
    process died) is dropped, so it never blocks the key.

    :param dsn: libpq URI of the warehouse.
    :param access_key: the NXCLOUD access key the calls are made with.
    :param min_interval_s: seconds between two query calls of that key.
    :param taker: who waits (default: unique per limiter, i.e. per task run).
    """

    _NEW_SLOT = """
        INSERT INTO ops.nxcloud_query_slot (key_hash, next_at, calls, updated_at)
        VALUES (%(key)s, clock_timestamp(), 0, clock_timestamp())
        ON CONFLICT (key_hash) DO NOTHING"""
    _READ_SLOT = """
        SELECT calls, GREATEST(EXTRACT(EPOCH FROM (next_at - clock_timestamp())), 0)::float8
        FROM ops.nxcloud_query_slot WHERE key_hash = %(key)s FOR UPDATE"""
    _ENQUEUE = """
        INSERT INTO ops.nxcloud_query_waiter (key_hash, taker, grants_at_request)
        VALUES (%(key)s, %(taker)s, %(calls)s) RETURNING ticket"""
    _REFRESH = """
        UPDATE ops.nxcloud_query_waiter SET seen_at = clock_timestamp() WHERE ticket = %(ticket)s
        RETURNING grants_at_request"""
    _DROP_STALE = """
        DELETE FROM ops.nxcloud_query_waiter
        WHERE key_hash = %(key)s AND seen_at < clock_timestamp() - make_interval(secs => %(stale)s)"""
    _NEXT_TURN = """
        SELECT w.ticket FROM ops.nxcloud_query_waiter w
        LEFT JOIN ops.nxcloud_query_taker t ON t.key_hash = w.key_hash AND t.taker = w.taker
        WHERE w.key_hash = %(key)s
        ORDER BY t.last_grant NULLS FIRST, w.ticket LIMIT 1"""
    _GRANT = """
        WITH slot AS (
            UPDATE ops.nxcloud_query_slot
            SET next_at = clock_timestamp() + make_interval(secs => %(interval)s),
                calls = calls + 1, updated_at = clock_timestamp()
            WHERE key_hash = %(key)s RETURNING calls),
        gone AS (DELETE FROM ops.nxcloud_query_waiter WHERE ticket = %(ticket)s),
        turn AS (
            INSERT INTO ops.nxcloud_query_taker AS t (key_hash, taker, last_grant, last_granted_at)
            SELECT %(key)s, %(taker)s, calls, clock_timestamp() FROM slot
            ON CONFLICT (key_hash, taker) DO UPDATE
                SET last_grant = EXCLUDED.last_grant, last_granted_at = EXCLUDED.last_granted_at)
        SELECT calls FROM slot"""
    _FORGET_TAKERS = """
        DELETE FROM ops.nxcloud_query_taker
        WHERE key_hash = %(key)s AND last_granted_at < clock_timestamp() - interval '1 day'"""

    def __init__(
        self,
        dsn: str,
        access_key: str,
        min_interval_s: float,
        *,
        taker: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        poll_s: float = 0.02,
        max_nap_s: float = 1.0,
        stale_after_s: float = 15.0,
    ) -> None:
        import hashlib
        import os
        import socket
        import uuid

        if min_interval_s < 0:
            raise ValueError("min_interval_s must be >= 0")
        self.dsn = dsn
        self.key_hash = hashlib.sha256(access_key.encode("utf-8")).hexdigest()
        self.min_interval_s = float(min_interval_s)
        self.taker = taker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._sleep = sleep
        self._poll_s, self._max_nap_s, self._stale_after_s = poll_s, max_nap_s, stale_after_s
        self._lock = threading.Lock()
        self._conn = None
        self.waited_s = 0.0
        self.grants: deque[tuple[int, int]] = deque(maxlen=10_000)

    @classmethod
    def for_account(cls, dsn: str, settings: NxCloudSettings, **kwargs: Any) -> WarehouseIntervalLimiter:
        """The limiter of ``settings``' access key as every caller builds it (tasks through the hook,
        the in-doubt trigger's probes): spaced by ``settings.query_spacing_s``, the vendor's interval plus
        the arrival margin, so that no caller of the shared slot spaces its calls closer."""
        return cls(dsn, settings.access_key, settings.query_spacing_s, **kwargs)

    def _connection(self):
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True)
        return self._conn

    def _turn(self, ticket: int | None) -> tuple[int, int, int | None, float]:
        """One look at the queue in one transaction: ``(ticket, the key's grant count when it
        was queued, grant number or None, seconds until the slot is free)``; grants the slot when
        it is free and this is the chosen ticket."""
        conn = self._connection()
        args: dict[str, Any] = {
            "key": self.key_hash, "taker": self.taker, "interval": self.min_interval_s,
            "stale": self._stale_after_s,
        }  # fmt: skip
        with conn.transaction():
            conn.execute(self._NEW_SLOT, args)
            calls, free_in = conn.execute(self._READ_SLOT, args).fetchone()
            conn.execute(self._DROP_STALE, args)
            queued = None
            if ticket is not None:
                queued = conn.execute(self._REFRESH, {"ticket": ticket}).fetchone()
            if queued is None:  # first look, or dropped as stale after a long pause: queue again
                ticket, queued = conn.execute(self._ENQUEUE, {**args, "calls": calls}).fetchone()[0], (calls,)
            chosen = conn.execute(self._NEXT_TURN, args).fetchone()
            if free_in > 0 or chosen is None or chosen[0] != ticket:
                return ticket, int(queued[0]), None, float(free_in)
            [grant] = conn.execute(self._GRANT, {**args, "ticket": ticket}).fetchone()
            if grant % 1000 == 0:
                conn.execute(self._FORGET_TAKERS, args)
        return ticket, int(queued[0]), int(grant), 0.0

    def acquire(self) -> float:
        """Wait for this taker's turn at the key's next free slot; returns the seconds waited."""
        if self.min_interval_s == 0:
            return 0.0
        started = time.monotonic()
        ticket: int | None = None
        while True:
            with self._lock:  # one transaction at a time on this process's connection
                ticket, queued_at, grant, free_in = self._turn(ticket)
                if grant is not None:
                    self.grants.append((grant, grant - 1 - queued_at))
                    waited = time.monotonic() - started
                    self.waited_s += waited
                    return waited
            self._sleep(min(max(free_in, self._poll_s), self._max_nap_s))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
