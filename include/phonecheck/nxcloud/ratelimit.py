"""A minimum interval between calls, shared by every thread of one client.

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
