"""A minimum interval between query calls: per client (threads) or per access key (warehouse).

The query API allows one call every 3 s in the newer vendor documents: concurrent page fetches
must still be spaced by that interval, so every thread takes its turn from one
:class:`IntervalLimiter` (a token bucket of size one). Concurrency then only helps to overlap
the network round trip with the wait, which is what we want when the interval is small or 0.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


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
    """The same minimum interval, shared by every process that uses one NXCLOUD access key.

    The vendor limits the query API per account, not per worker: concurrent runs, the daily sync
    and the in-doubt probe on other workers all draw from one slot, kept in the warehouse
    (``ops.nxcloud_query_slot``, one row per access key, stored as a SHA-256 so the key itself
    is not in the table). ``acquire()`` reserves the next free slot in one statement (the row
    lock serialises callers; the database clock is the only clock) and sleeps until it.

    :param dsn: libpq URI of the warehouse.
    :param access_key: the NXCLOUD access key the calls are made with.
    :param min_interval_s: seconds between two query calls of that key.
    """

    _RESERVE = """
        INSERT INTO ops.nxcloud_query_slot AS s (key_hash, next_at, updated_at)
        VALUES (%(key)s, clock_timestamp() + make_interval(secs => %(interval)s), clock_timestamp())
        ON CONFLICT (key_hash) DO UPDATE
            SET next_at = GREATEST(s.next_at, clock_timestamp()) + make_interval(secs => %(interval)s),
                updated_at = clock_timestamp(),
                calls = s.calls + 1
        RETURNING GREATEST(EXTRACT(EPOCH FROM (s.next_at - make_interval(secs => %(interval)s)
                                               - clock_timestamp())), 0)::float8"""

    def __init__(
        self,
        dsn: str,
        access_key: str,
        min_interval_s: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import hashlib

        if min_interval_s < 0:
            raise ValueError("min_interval_s must be >= 0")
        self.dsn = dsn
        self.key_hash = hashlib.sha256(access_key.encode("utf-8")).hexdigest()
        self.min_interval_s = float(min_interval_s)
        self._sleep = sleep
        self._lock = threading.Lock()
        self._conn = None
        self.waited_s = 0.0

    def _connection(self):
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True)
        return self._conn

    def acquire(self) -> float:
        """Reserve this key's next slot in the warehouse and wait for it; returns the seconds waited."""
        if self.min_interval_s == 0:
            return 0.0
        with self._lock:  # one statement at a time on this process's connection
            row = (
                self._connection()
                .execute(self._RESERVE, {"key": self.key_hash, "interval": self.min_interval_s})
                .fetchone()
            )
            delay = float(row[0]) if row else 0.0
            self.waited_s += delay
        if delay > 0:
            self._sleep(delay)
        return delay

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
