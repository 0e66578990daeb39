"""The sandbox's run state: its clock, faults, wire logs, stored results and the push engine."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from phonecheck.sandbox.config import SandboxConfig
from phonecheck.sandbox.faults import Faults

PUSH_KINDS = ("number_check", "voice_receipt", "pns_call_record", "accuauth_callback")
_ANSWER_LOG_LIMIT = 2000  # characters of a push answer kept in the log


class SandboxClock:
    """The vendor's clock: real time plus an offset that tests set (skew) or push (jump ahead)."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def now(self) -> float:
        return time.time() + self.offset_s

    def now_ms(self) -> int:
        return int(self.now() * 1000)


@dataclass
class StoredResult:
    """One number of a submitted batch, as the query API returns it."""

    date: str  # yyyy-MM-dd the check was made (sandbox clock; UTC, or Asia/Shanghai when strict)
    appkey: str
    batch_no: str
    message_id: str
    phone: str
    row: dict[str, Any]
    visible_at: float = 0.0  # sandbox clock seconds from which the query API lists it


@dataclass
class AccuAuthTask:
    task_id: str
    request_id: str
    phone: str
    callback: str | None
    created_at: float  # sandbox clock, seconds
    ready_at: float | None  # sandbox clock; None = only the poll count finishes it
    polls_limit: int | None
    polls_answered: int = 0
    finished: bool = False


@dataclass
class PushJob:
    kind: str
    url: str
    body: bytes
    content_type: str
    method: str = "POST"
    retry: bool = True  # retry on non-200 on the vendor schedule
    # None: every vendor minute for push_retry_minutes; else this many retries, this far apart
    retries: int | None = None
    retry_interval_minutes: float = 1.0
    accept: Callable[[httpx.Response], bool] = field(default=lambda r: r.status_code == 200)
    meta: dict[str, Any] = field(default_factory=dict)


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self.base_config = config
        self.clock = SandboxClock()
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task] = set()
        self.generation = 0
        self.reset()

    # ---- lifecycle ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything of the run: settings, faults, clock skew, logs, results, pushes."""
        self.generation += 1
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        self.config = self.base_config
        self.clock.offset_s = 0.0
        self.faults = Faults()
        self.calls: deque[dict[str, Any]] = deque(maxlen=self.config.log_limit)
        self.pushes: deque[dict[str, Any]] = deque(maxlen=self.config.log_limit)
        self._seq = itertools.count(1)
        self.results: list[StoredResult] = []
        #: NXCLOUD batchNo -> the submit answer the vendor gave for it (a resubmit, default profile).
        self.batches: dict[tuple[str, str], dict[str, Any]] = {}
        self.tasks: dict[str, AccuAuthTask] = {}
        #: The bill: one entry per number per paid call the vendor processed, answered or not
        #: (``vendor`` nxcloud: one per accepted submit; accuauth: one per created check).
        self.charges: list[dict[str, Any]] = []
        self.accuauth_polls_seen = 0
        self.last_query_at: dict[str, float] = {}
        self.rng = random.Random()
        self.push_slots = asyncio.Semaphore(self.config.push_concurrency)

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.config.push_timeout_s, follow_redirects=False)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def strict(self) -> bool:
        """Whether this run plays the strict profile (docs/sandbox.md, "Strict profile")."""
        return self.config.profile == "strict"

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def next_seq(self) -> int:
        return next(self._seq)

    def new_hex_id(self) -> str:
        # Random, not seeded: ids must not repeat across runs (receivers dedupe on them).
        return uuid.uuid4().hex

    # ---- pushes ------------------------------------------------------------------------------
    def schedule_push(self, job: PushJob, delay_s: float = 0.0) -> None:
        self.spawn(self._deliver(job, delay_s, self.generation))

    async def _deliver(self, job: PushJob, delay_s: float, generation: int) -> None:
        """Send one push: first attempt, then every vendor minute until accepted or given up."""
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        decision = self.faults.decide(f"push.{job.kind}")
        if decision.delay_s:
            await asyncio.sleep(decision.delay_s)
        fault = decision.fault.kind if decision.fault else None
        if fault == "drop":
            self._log_push(job, attempt=0, status=None, answer="", error=None, outcome="dropped")
            return
        retries = self.config.push_retry_minutes if job.retries is None else job.retries
        attempts = 1 + (retries if job.retry else 0)
        for attempt in range(1, attempts + 1):
            ok = await self._attempt(job, attempt, generation, last=attempt == attempts)
            if generation != self.generation:
                return
            if ok:
                if fault == "duplicate":
                    await self._attempt(job, attempt + 1, generation, last=True, duplicate=True)
                return
            if attempt < attempts:
                await asyncio.sleep(self.config.vendor_minute_s * job.retry_interval_minutes)

    async def _attempt(
        self, job: PushJob, attempt: int, generation: int, *, last: bool, duplicate: bool = False
    ) -> bool:
        assert self._client is not None, "the sandbox app is not started"
        status: int | None = None
        answer, error = "", None
        async with self.push_slots:
            try:
                if job.method == "GET":
                    response = await self._client.get(job.url)
                else:
                    headers = {"Content-Type": job.content_type}
                    response = await self._client.request(
                        job.method, job.url, content=job.body, headers=headers
                    )
                status, answer = response.status_code, response.text[:_ANSWER_LOG_LIMIT]
                ok = job.accept(response)
            except httpx.HTTPError as exc:
                error, ok = f"{type(exc).__name__}: {exc}", False
        if generation != self.generation:
            return ok
        if duplicate:
            outcome = "duplicate"
        elif ok:
            outcome = "accepted"
        elif not job.retry:
            outcome = "refused"
        else:
            outcome = "gave_up" if last else "retry"
        self._log_push(job, attempt=attempt, status=status, answer=answer, error=error, outcome=outcome)
        return ok

    def _log_push(self, job: PushJob, **fields: Any) -> None:
        entry = {
            "seq": self.next_seq(),
            "at_ms": self.clock.now_ms(),
            "kind": job.kind,
            "method": job.method,
            "url": job.url,
            "content_type": job.content_type if job.method != "GET" else None,
            "body": job.body.decode("utf-8"),
            **fields,
            **job.meta,
        }
        self.pushes.append(entry)

    # ---- AccuAuth tasks ----------------------------------------------------------------------
    def finish_task(self, task: AccuAuthTask, phone_status: str, echoed_phone: str | None = None) -> None:
        """Mark a pending task done and, if it has one, call its callback once (HTTP GET)."""
        if task.finished:
            return
        task.finished = True
        if task.callback:
            params = {
                "request_id": task.request_id,
                "phone_number": echoed_phone or task.phone,
                "phone_status": phone_status,
                "task_id": task.task_id,
            }
            url = str(httpx.URL(task.callback).copy_merge_params(params))
            job = PushJob(
                kind="accuauth_callback",
                url=url,
                body=b"",
                content_type="",
                method="GET",
                retry=False,
                accept=lambda r: 200 <= r.status_code < 300,
                meta={"task_id": task.task_id, "phone": task.phone},
            )
            self.schedule_push(job)

    async def run_task_ticker(self, finish: Callable[[AccuAuthTask], None]) -> None:
        """Finish pending AccuAuth tasks whose time has come (also after a clock jump)."""
        while True:
            await asyncio.sleep(0.05)
            now = self.clock.now()
            for task in list(self.tasks.values()):
                if not task.finished and task.ready_at is not None and now >= task.ready_at:
                    with contextlib.suppress(Exception):
                        finish(task)
