"""Wait for many AccuAuth tasks at once, in one coroutine (run by one Airflow trigger).

Each task is polled on its own schedule: first ``poll_interval_s`` after submission, then the
interval grows by ``backoff_factor`` up to ``max_poll_interval_s``. All polls share one rate
limiter (at most ``max_requests_per_second`` calls start per second) and at most
``max_in_flight`` calls are open at once, so 10,000 waiting tasks cost a bounded, predictable
load on the vendor. Before polling, the warehouse is asked which tasks finished elsewhere (the
AccuAuth callback landed in the inbox, or another wait loaded them): those are never polled again.
A task whose 24 h validity passed is not polled either: it is reported as expired.

The waiter only reads and calls the vendor; it returns what it learnt (:class:`WaitOutcome`)
and the caller (an Airflow task) writes it. It may run twice for the same tasks (triggerer
restart): that costs polls, never data.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from phonecheck.accuauth.api import (
    FATAL_ERRORS,
    AccuAuthError,
    AsyncAccuAuthClient,
)
from phonecheck.accuauth.store import OpenTask

log = logging.getLogger(__name__)

FinishedElsewhere = Callable[[Sequence[str]], Awaitable[set[str]]]


@dataclass(frozen=True)
class WaitSettings:
    poll_interval_s: float = 30.0
    max_poll_interval_s: float = 900.0
    backoff_factor: float = 2.0
    max_requests_per_second: float = 10.0
    max_in_flight: int = 16
    #: How often to ask the warehouse for callbacks (at most; also right before each round).
    warehouse_check_interval_s: float = 30.0
    #: Right before a polling round the warehouse is asked again unless it was asked less than
    #: this long ago: a callback older than this is never followed by a poll.
    min_check_gap_s: float = 1.0

    def __post_init__(self) -> None:
        if self.poll_interval_s <= 0 or self.max_poll_interval_s < self.poll_interval_s:
            raise ValueError("need 0 < poll_interval_s <= max_poll_interval_s")
        if self.backoff_factor < 1 or self.max_requests_per_second <= 0 or self.max_in_flight < 1:
            raise ValueError("need backoff_factor >= 1, max_requests_per_second > 0, max_in_flight >= 1")


class RateLimiter:
    """Spaces call starts at least ``1 / rate`` seconds apart (no bursts)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / rate
        self.clock = clock
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            now = self.clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


@dataclass
class _Waiting:
    task: OpenTask
    expires_at: float  # epoch seconds
    next_poll_at: float  # epoch seconds
    interval: float
    polls: int = 0  # polls by this wait


@dataclass
class WaitOutcome:
    """What a wait learnt. ``results``: one per task finished by polling (OK or a per-task vendor
    error such as INVALID_ARGUMENT), compact lists for a small trigger payload."""

    results: list[dict[str, Any]] = field(default_factory=list)
    finished_elsewhere: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    polls: int = 0
    vendor_calls: int = 0
    retried_calls: int = 0
    rounds: int = 0
    started_at: float = 0.0
    ended_at: float = 0.0

    def to_payload(self) -> dict[str, Any]:
        fields = ("task_id", "status", "phone_status", "request_id", "reason", "poll_count", "polled_at")
        return {
            "status": "done",
            "result_fields": list(fields),
            "results": [[r.get(f) for f in fields] for r in self.results],
            "finished_elsewhere": self.finished_elsewhere,
            "expired": self.expired,
            "stats": {
                "tasks": len(self.results) + len(self.finished_elsewhere) + len(self.expired),
                "polls": self.polls,
                "vendor_calls": self.vendor_calls,
                "retried_calls": self.retried_calls,
                "rounds": self.rounds,
                "seconds": round(self.ended_at - self.started_at, 3),
            },
        }

    @staticmethod
    def results_from_payload(payload: dict[str, Any]) -> list[dict[str, Any]]:
        fields = payload.get("result_fields") or []
        return [dict(zip(fields, values, strict=True)) for values in payload.get("results", [])]


class TaskWaiter:
    """Polls ``tasks`` until each is finished (OK / per-task error), finished elsewhere, or
    expired. Raises the fatal :class:`AccuAuthError` (bad credentials, quota...) at once."""

    def __init__(
        self,
        client: AsyncAccuAuthClient,
        tasks: Sequence[OpenTask],
        settings: WaitSettings,
        finished_elsewhere: FinishedElsewhere | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.settings = settings
        self.finished_elsewhere = finished_elsewhere
        self.wall_clock = wall_clock
        self.limiter = RateLimiter(settings.max_requests_per_second)
        now = wall_clock()
        self.waiting: dict[str, _Waiting] = {}
        for t in tasks:
            first = max(now, t.submitted_at.timestamp() + settings.poll_interval_s)
            self.waiting[t.task_id] = _Waiting(t, t.expires_at.timestamp(), first, settings.poll_interval_s)
        self.outcome = WaitOutcome()
        self._last_check = float("-inf")

    async def _check_elsewhere(self) -> None:
        if self.finished_elsewhere is None or not self.waiting:
            return
        self._last_check = self.wall_clock()
        done = await self.finished_elsewhere(list(self.waiting))
        for task_id in done:
            if self.waiting.pop(task_id, None) is not None:
                self.outcome.finished_elsewhere.append(task_id)

    def _expire(self, now: float) -> None:
        for task_id in [k for k, w in self.waiting.items() if w.expires_at <= now]:
            del self.waiting[task_id]
            self.outcome.expired.append(task_id)

    async def _poll(self, w: _Waiting) -> None:
        await self.limiter.acquire()
        try:
            answer = await self.client.task_result(w.task.task_id)
        except FATAL_ERRORS:
            raise
        except AccuAuthError as exc:
            now = self.wall_clock()
            if exc.retryable:  # retries exhausted (rate limit / 5xx / network): try later
                w.interval = min(w.interval * self.settings.backoff_factor, self.settings.max_poll_interval_s)
                w.next_poll_at = now + w.interval
                return
            # A per-task refusal (INVALID_ARGUMENT: unknown or expired task id): final, kept as received.
            w.polls += 1
            self.outcome.polls += 1
            self._finish(w, exc.status, None, exc.request_id, exc.reason, now)
            return
        now = self.wall_clock()
        w.polls += 1
        self.outcome.polls += 1
        payload = answer.payload
        if answer.pending:
            w.interval = min(w.interval * self.settings.backoff_factor, self.settings.max_poll_interval_s)
            w.next_poll_at = now + w.interval
            return
        result = payload.get("result") if isinstance(payload.get("result"), dict) else {}
        self._finish(w, "OK", result.get("phone_status"), payload.get("request_id"), None, now)

    def _finish(
        self,
        w: _Waiting,
        status: str,
        phone_status: str | None,
        request_id: str | None,
        reason: str | None,
        now: float,
    ) -> None:
        self.waiting.pop(w.task.task_id, None)
        self.outcome.results.append(
            {
                "task_id": w.task.task_id,
                "status": status,
                "phone_status": phone_status,
                "request_id": request_id,
                "reason": reason,
                "poll_count": w.task.poll_count + w.polls,
                "polled_at": round(now, 3),
            }
        )

    async def _poll_round(self, due: list[_Waiting]) -> None:
        queue: asyncio.Queue[_Waiting] = asyncio.Queue()
        for w in due:
            queue.put_nowait(w)

        async def worker() -> None:
            while True:
                try:
                    w = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if w.task.task_id in self.waiting:
                    await self._poll(w)

        workers = [asyncio.create_task(worker()) for _ in range(min(self.settings.max_in_flight, len(due)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for t in workers:
                t.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise

    async def run(self) -> WaitOutcome:
        self.outcome.started_at = self.wall_clock()
        calls_before, retried_before = self.client.calls, self.client.retried
        try:
            while True:
                now = self.wall_clock()
                self._expire(now)
                if now - self._last_check >= self.settings.warehouse_check_interval_s:
                    await self._check_elsewhere()
                if not self.waiting:
                    break
                due = [w for w in self.waiting.values() if w.next_poll_at <= now]
                if due:
                    # a callback may have landed while we slept: never poll a finished task
                    if now - self._last_check >= self.settings.min_check_gap_s:
                        await self._check_elsewhere()
                        due = [w for w in due if w.task.task_id in self.waiting]
                    self.outcome.rounds += 1
                    await self._poll_round(due)
                    continue
                wake = min(
                    min(w.next_poll_at for w in self.waiting.values()),
                    min(w.expires_at for w in self.waiting.values()),
                    self._last_check + self.settings.warehouse_check_interval_s,
                )
                await asyncio.sleep(max(0.0, wake - self.wall_clock()))
        finally:
            self.outcome.vendor_calls = self.client.calls - calls_before
            self.outcome.retried_calls = self.client.retried - retried_before
            self.outcome.ended_at = self.wall_clock()
        return self.outcome
