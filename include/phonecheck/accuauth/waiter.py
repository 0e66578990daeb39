"""Wait for many AccuAuth tasks at once, in one coroutine (run by one Airflow trigger).

Each task is polled on its own schedule: first ``poll_interval_s`` after submission, then the
interval grows by ``backoff_factor`` up to ``max_poll_interval_s``. All polls share one rate
limiter (at most ``max_requests_per_second`` calls start per second) and at most
``max_in_flight`` calls are open at once, so 10,000 waiting tasks cost a bounded, predictable
load on the vendor. Before polling, the warehouse is asked which tasks finished elsewhere (the
AccuAuth callback landed in the inbox, or another wait loaded them): those are never polled again.
A task whose 24 h validity passed is not polled either: it is reported as expired.

Every poll answer (retried ones included) is handed to ``record`` verbatim after each round; the
trigger appends them to ``raw.vendor_answer`` and the task that resumes loads the typed rows from
there, so what the wait learnt never travels through the trigger event: :class:`WaitOutcome` is
counts only. The wait may run twice for the same tasks (triggerer restart): that costs polls and
adds raw rows, never changes data.

Per task, not for the whole wait: a 5xx or a lost answer on a poll is retried (the client's
backoff, then the task's own schedule); an unknown or expired task id (``INVALID_ARGUMENT``, or
``NOT_FOUND`` once the API is known to exist) ends that task with the vendor's reason. Only
account-wide errors (credentials, quota, a base URL where the API does not exist) stop the wait.

The wait also watches submits whose answer was lost (*in doubt*): it keeps going until a
callback carrying each such number arrived or its window passed (docs/vendors/accuauth.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from phonecheck.accuauth.api import (
    FATAL_ERRORS,
    AccuAuthError,
    AccuAuthNotFound,
    AsyncAccuAuthClient,
    RawAnswer,
)
from phonecheck.accuauth.store import Doubt, OpenTask, WaitSelector

log = logging.getLogger(__name__)

FinishedElsewhere = Callable[[Sequence[str]], Awaitable[set[str]]]
MatchedDoubts = Callable[[Sequence[Doubt]], Awaitable[set[str]]]
Record = Callable[[Sequence[RawAnswer]], Awaitable[None]]


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
    """What a wait did, as counts (the answers themselves were recorded verbatim)."""

    finished_by_poll: int = 0
    ended_by_vendor: int = 0  # unknown / expired task id: that task ends with the vendor's reason
    finished_elsewhere: int = 0
    expired: int = 0
    doubts_settled: int = 0
    doubts_unsettled: int = 0
    polls: int = 0
    vendor_calls: int = 0
    retried_calls: int = 0
    rounds: int = 0
    started_at: float = 0.0
    ended_at: float = 0.0

    def stats(self) -> dict[str, Any]:
        return {
            "tasks": self.finished_by_poll + self.ended_by_vendor + self.finished_elsewhere + self.expired,
            "finished_by_poll": self.finished_by_poll,
            "ended_by_vendor": self.ended_by_vendor,
            "finished_elsewhere": self.finished_elsewhere,
            "expired": self.expired,
            "doubts_settled": self.doubts_settled,
            "doubts_unsettled": self.doubts_unsettled,
            "polls": self.polls,
            "vendor_calls": self.vendor_calls,
            "retried_calls": self.retried_calls,
            "rounds": self.rounds,
            "seconds": round(self.ended_at - self.started_at, 3),
        }


class TaskWaiter:
    """Polls ``tasks`` until each is finished (OK / per-task error), finished elsewhere, or
    expired, and waits for the callbacks of ``doubts`` until each matched or its window passed.
    Raises the fatal :class:`AccuAuthError` (bad credentials, quota...) at once."""

    def __init__(
        self,
        client: AsyncAccuAuthClient,
        tasks: Sequence[OpenTask],
        settings: WaitSettings,
        finished_elsewhere: FinishedElsewhere | None = None,
        *,
        record: Record | None = None,
        doubts: Sequence[Doubt] = (),
        matched_doubts: MatchedDoubts | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.settings = settings
        self.finished_elsewhere = finished_elsewhere
        self.record = record
        self.matched_doubts = matched_doubts
        self.doubts = {d.e164: d for d in doubts}
        self._answers: list[RawAnswer] = []
        self._api_proven = False  # an answer showed the poll API exists at this base URL
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
        self._last_check = self.wall_clock()
        if self.finished_elsewhere is not None and self.waiting:
            done = await self.finished_elsewhere(list(self.waiting))
            for task_id in done:
                if self.waiting.pop(task_id, None) is not None:
                    self.outcome.finished_elsewhere += 1
        if self.matched_doubts is not None and self.doubts:
            for e164 in await self.matched_doubts(list(self.doubts.values())):
                if self.doubts.pop(e164, None) is not None:
                    self.outcome.doubts_settled += 1

    def _expire(self, now: float) -> None:
        for task_id in [k for k, w in self.waiting.items() if w.expires_at <= now]:
            del self.waiting[task_id]
            self.outcome.expired += 1
        for e164 in [k for k, d in self.doubts.items() if d.doubt_until.timestamp() <= now]:
            del self.doubts[e164]
            self.outcome.doubts_unsettled += 1

    async def _flush(self) -> None:
        answers, self._answers = self._answers, []
        if answers and self.record is not None:
            await self.record(answers)

    async def _api_exists(self) -> bool:
        """Whether a NOT_FOUND concerns the task or the whole API. Once any poll was answered
        the API exists; otherwise one free probe without a task id tells: the vendor answers a
        missing argument with INVALID_ARGUMENT when the API is there."""
        if not self._api_proven:
            try:
                await self.client.task_result("", on_answer=self._answers.append)
                self._api_proven = True
            except AccuAuthNotFound:
                return False
            except AccuAuthError:
                self._api_proven = True
        return True

    async def _poll(self, w: _Waiting) -> None:
        await self.limiter.acquire()
        try:
            answer = await self.client.task_result(w.task.task_id, on_answer=self._answers.append)
        except AccuAuthNotFound:
            if not await self._api_exists():
                raise
            # the API exists: this task id is unknown to the vendor (or expired): end the task
            w.polls += 1
            self.outcome.polls += 1
            self._finish(w, ended=True)
            return
        except FATAL_ERRORS:
            raise
        except AccuAuthError as exc:
            now = self.wall_clock()
            if exc.retryable:  # retries exhausted (rate limit / 5xx / network): try later
                w.interval = min(w.interval * self.settings.backoff_factor, self.settings.max_poll_interval_s)
                w.next_poll_at = now + w.interval
                return
            # A per-task refusal (INVALID_ARGUMENT: unknown or expired task id): final, kept as received.
            self._api_proven = True
            w.polls += 1
            self.outcome.polls += 1
            self._finish(w, ended=True)
            return
        self._api_proven = True
        now = self.wall_clock()
        w.polls += 1
        self.outcome.polls += 1
        if answer.pending:
            w.interval = min(w.interval * self.settings.backoff_factor, self.settings.max_poll_interval_s)
            w.next_poll_at = now + w.interval
            return
        self._finish(w, ended=False)

    def _finish(self, w: _Waiting, *, ended: bool) -> None:
        if self.waiting.pop(w.task.task_id, None) is None:
            return
        if ended:
            self.outcome.ended_by_vendor += 1
        else:
            self.outcome.finished_by_poll += 1

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

    async def run(self, *, once: bool = False) -> WaitOutcome:
        """Wait until nothing is left to wait for; ``once``: one pass only (check the warehouse,
        poll the tasks that are due, record), for a sensor poking without a trigger."""
        self.outcome.started_at = self.wall_clock()
        calls_before, retried_before = self.client.calls, self.client.retried
        try:
            if once:
                now = self.wall_clock()
                self._expire(now)
                await self._check_elsewhere()
                due = [w for w in self.waiting.values() if w.next_poll_at <= now]
                if due:
                    self.outcome.rounds += 1
                    try:
                        await self._poll_round(due)
                    finally:
                        await self._flush()
                return self.outcome
            while True:
                now = self.wall_clock()
                self._expire(now)
                if now - self._last_check >= self.settings.warehouse_check_interval_s:
                    await self._check_elsewhere()
                if not self.waiting and not self.doubts:
                    break
                due = [w for w in self.waiting.values() if w.next_poll_at <= now]
                if due:
                    # a callback may have landed while we slept: never poll a finished task
                    if now - self._last_check >= self.settings.min_check_gap_s:
                        await self._check_elsewhere()
                        due = [w for w in due if w.task.task_id in self.waiting]
                    self.outcome.rounds += 1
                    try:
                        await self._poll_round(due)
                    finally:
                        await self._flush()
                    continue
                wake = min(
                    [w.next_poll_at for w in self.waiting.values()]
                    + [w.expires_at for w in self.waiting.values()]
                    + [d.doubt_until.timestamp() for d in self.doubts.values()]
                    + [self._last_check + self.settings.warehouse_check_interval_s]
                )
                await asyncio.sleep(max(0.0, wake - self.wall_clock()))
        finally:
            self.outcome.vendor_calls = self.client.calls - calls_before
            self.outcome.retried_calls = self.client.retried - retried_before
            self.outcome.ended_at = self.wall_clock()
        return self.outcome


async def run_wait(
    client: AsyncAccuAuthClient,
    dsn: str,
    selector: WaitSelector,
    settings: WaitSettings,
    *,
    dag_id: str | None = None,
    once: bool = False,
) -> WaitOutcome:
    """Wait for the open tasks and in-doubt submits of ``selector``, recording every poll answer
    verbatim in ``raw.vendor_answer``. ``client`` must be entered (``async with``)."""
    import psycopg

    from phonecheck.accuauth.store import (
        afinished_elsewhere,
        ainsert_raw_answers,
        amatched_doubts,
        aopen_doubts,
        aopen_tasks,
    )

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as wh:
        tasks = await aopen_tasks(wh, selector)
        doubts = await aopen_doubts(wh, selector)
        log.info("SUMMARY wait: %d open task(s), %d in-doubt submit(s)", len(tasks), len(doubts))

        async def finished_elsewhere(ids: Sequence[str]) -> set[str]:
            return await afinished_elsewhere(wh, ids)

        async def matched_doubts(open_doubts: Sequence[Doubt]) -> set[str]:
            return await amatched_doubts(wh, open_doubts)

        async def record(answers: Sequence[RawAnswer]) -> None:
            await ainsert_raw_answers(wh, answers, dag_id=dag_id, run_id=selector.run_id)

        waiter = TaskWaiter(
            client,
            tasks,
            settings,
            finished_elsewhere,
            record=record,
            doubts=doubts,
            matched_doubts=matched_doubts,
        )
        return await waiter.run(once=once)
