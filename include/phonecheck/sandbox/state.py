"""The sandbox's run state: its clock, faults, wire logs, stored results and the push engine."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from phonecheck.sandbox.config import SandboxConfig
from phonecheck.sandbox.faults import Faults
from phonecheck.sandbox.ledger import ChargeLedger, NumberCheckBatch
from phonecheck.sandbox.pushes import PushJob, PushSender

__all__ = ["AccuAuthTask", "PushJob", "SandboxClock", "SandboxState"]

PUSH_KINDS = ("number_check", "voice_receipt", "pns_call_record", "accuauth_callback")


class SandboxClock:
    """The vendor's clock: real time plus an offset that tests set (skew) or push (jump ahead)."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def now(self) -> float:
        return time.time() + self.offset_s

    def now_ms(self) -> int:
        return int(self.now() * 1000)


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


class SandboxState:
    ANSWER_LOG_LIMIT = 2000  # characters of a push answer kept in the log

    def __init__(self, config: SandboxConfig) -> None:
        self.base_config = config
        self.clock = SandboxClock()
        self.sender = PushSender(self)
        self.generation = 0
        self.reset()

    # ---- lifecycle ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything of the run: settings, faults, clock skew, logs, results, pushes."""
        self.generation += 1
        self.config = self.base_config
        self.sender.forget()
        self.clock.offset_s = 0.0
        self.faults = Faults()
        self.calls: deque[dict[str, Any]] = deque(maxlen=self.config.log_limit)
        #: vendor calls per event (``nxcloud.query``, ...) in this run, also past the log's limit
        self.call_counts: Counter[str] = Counter()
        self.pushes: deque[dict[str, Any]] = deque(maxlen=self.config.log_limit)
        self._seq = itertools.count(1)
        #: every accepted number-check submit, as the query API lists it (phonecheck.sandbox.ledger)
        self.results: list[NumberCheckBatch] = []
        #: NXCLOUD batchNo -> the submit answer the vendor gave for it (a resubmit, default profile).
        self.batches: dict[tuple[str, str], dict[str, Any]] = {}
        self.tasks: dict[str, AccuAuthTask] = {}
        #: The bill: one entry per number per paid call the vendor processed, answered or not
        #: (``vendor`` nxcloud: one per accepted submit; accuauth: one per created check).
        self.charges = ChargeLedger()
        self.accuauth_polls_seen = 0
        self.last_query_at: dict[str, float] = {}
        self.query_refusals = 0  # query calls refused as too frequent (code 88)
        self.pushes_sent = 0  # push attempts made (each retry counts)
        self.rng = random.Random()

    async def start(self) -> None:
        self.sender.start()

    async def stop(self) -> None:
        await self.sender.stop()

    @property
    def strict(self) -> bool:
        """Whether this run plays the strict profile (docs/sandbox.md, "Strict profile")."""
        return self.config.profile == "strict"

    @property
    def query_min_interval_s(self) -> float:
        """The query API's minimum interval per accessKey in this run (0 = no limit): the
        ``query_min_interval_s`` setting, and at least the documented one under the strict profile."""
        floor = self.config.strict_query_min_interval_s if self.strict else 0.0
        return max(self.config.query_min_interval_s, floor)

    @property
    def in_flight(self) -> int:
        """Pushes handed to the sender and not finished yet (accepted, given up or dropped)."""
        return self.sender.pending

    def next_seq(self) -> int:
        return next(self._seq)

    def new_hex_id(self) -> str:
        # Random, not seeded: ids must not repeat across runs (receivers dedupe on them).
        return uuid.uuid4().hex

    # ---- pushes ------------------------------------------------------------------------------
    def schedule_push(self, job: PushJob, delay_s: float = 0.0) -> None:
        """Send ``job`` (first attempt after ``delay_s``), retried on the vendor schedule."""
        self.sender.add(job, delay_s)

    def schedule_pushes(self, jobs: Iterator[PushJob], count: int, delay_s: float = 0.0) -> None:
        """Send ``count`` pushes that ``jobs`` builds one by one as they are sent (a batch)."""
        self.sender.add_source(jobs, count, delay_s)

    def log_push(self, job: PushJob, **fields: Any) -> None:
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
