"""The sandbox's push engine: vendor pushes delivered as fast as the receiver takes them.

A vendor's burst for a big run is thousands of pushes a second, and a sandbox that cannot send
them that fast measures itself instead of the receiver. So pushes are not one asyncio task each
(a million tasks, each holding its body, is gigabytes) but a stream:

* a submit hands over its pushes as a lazy source (:meth:`PushSender.add_source`): each push's
  body is built only when a sender is about to send it;
* a bounded queue (twice ``push_concurrency``) sits between the sources and the senders, so
  memory stays flat however many numbers a run submits;
* ``push_concurrency`` sender coroutines each POST over a pool of keep-alive HTTP/1.1
  connections (:class:`HttpPool`: a few dozen lines over asyncio streams; ``https`` URLs go
  through httpx), which costs a fraction of a general-purpose client's CPU per request;
* the vendor's retry schedule is kept per push: an attempt that was not accepted is queued
  again one vendor minute later (``retry_interval_minutes``), until its attempts run out;
  retries go ahead of new pushes. Only the pushes waiting for a retry are held in memory.

Faults (:mod:`phonecheck.sandbox.faults`) apply per push as before: ``slow`` delays it, ``drop``
never sends it, ``duplicate`` sends it once more after it was accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from phonecheck.sandbox.state import SandboxState


@dataclass(frozen=True, slots=True)
class PushAnswer:
    """What a push target answered: enough for a push's ``accept`` rule."""

    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def _accept_200(answer: PushAnswer) -> bool:
    return answer.status_code == 200


@dataclass(slots=True)
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
    accept: Callable[[PushAnswer], bool] = field(default=_accept_200)
    meta: dict[str, Any] = field(default_factory=dict)


class HttpError(Exception):
    """A push attempt that got no HTTP answer (refused, reset, timed out, malformed)."""


class HttpPool:
    """Keep-alive HTTP/1.1 connections per ``host:port``, for plain ``http`` push targets.

    Requests carry ``Content-Length``; answers are read by ``Content-Length``, chunked, or to the
    end of the connection (HTTP/1.0 servers). A reused connection the server had closed while it
    sat idle is retried once on a new one, as general-purpose clients do.
    """

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}

    async def request(self, method: str, url: str, body: bytes, content_type: str) -> PushAnswer:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(body)}\r\n"
        if method != "GET":
            head += f"Content-Type: {content_type}\r\n"
        message = (head + "\r\n").encode("latin-1") + body
        idle = self._idle.setdefault((host, port), [])
        for reused in (True, False):
            if reused and not idle:
                continue
            reader, writer = idle.pop() if reused else await asyncio.open_connection(host, port)
            try:
                writer.write(message)
                status, content, keep = await self._read(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                writer.close()
                if reused and isinstance(exc, (ConnectionError, asyncio.IncompleteReadError)):
                    continue  # closed by the server while idle: once more on a fresh connection
                raise HttpError(f"{type(exc).__name__}: {exc}") from None
            except BaseException:  # cancelled or timed out mid-request: the connection is unusable
                writer.close()
                raise
            if keep:
                idle.append((reader, writer))
            else:
                writer.close()
            return PushAnswer(status, content)
        raise HttpError("no connection")  # pragma: no cover (the loop always returns or raises)

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ", 2)[:2]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        keep = version == "HTTP/1.1" and headers.get("connection") != "close"
        if "content-length" in headers:
            content = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")
            content = b"".join(chunks)
        else:
            content, keep = await reader.read(), False
        return int(status), content, keep

    def close(self) -> None:
        for connections in self._idle.values():
            for _, writer in connections:
                writer.close()
        self._idle.clear()


@dataclass(slots=True)
class _Item:
    job: PushJob
    generation: int
    attempt: int = 1
    decided: bool = False  # faults already decided for this push
    fault: str | None = None


class PushSender:
    """Sends the run's pushes (see the module docstring). Owned by :class:`SandboxState`."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.pool = HttpPool()
        self._https = None  # httpx.AsyncClient, made on the first https push
        # what is left to send, in order: lazy batches of first attempts, and retries
        self._sources: deque[tuple[Iterator[PushJob | _Item], int]] = deque()
        self._wake = asyncio.Event()
        self._queue: asyncio.Queue[_Item] | None = None
        self._tasks: list[asyncio.Task] = []
        self._senders: list[asyncio.Task] = []
        self._limit = 0
        self.pending = 0  # pushes handed over and not yet finished (accepted, given up, dropped)

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        concurrency = max(1, self.state.config.push_concurrency)
        self._queue = asyncio.Queue(maxsize=2 * concurrency)
        self._tasks = [asyncio.get_running_loop().create_task(self._feed())]
        self.set_concurrency(concurrency)

    def set_concurrency(self, concurrency: int) -> None:
        """Pushes in flight at once from now on: senders above the new number stop after the
        push they are sending."""
        self._limit = max(1, concurrency)
        loop = asyncio.get_running_loop()
        self._senders = [t for t in self._senders if not t.done()]
        while len(self._senders) < self._limit:
            task = loop.create_task(self._send_loop(len(self._senders)))
            self._senders.append(task)
            self._tasks.append(task)

    def forget(self) -> None:
        """A new run: pushes not sent yet belong to no run any more (items carry the generation)."""
        self._sources.clear()
        self.pending = 0
        if self._queue is not None:  # started: back to the run's concurrency
            self.set_concurrency(self.state.config.push_concurrency)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.pool.close()
        if self._https is not None:
            await self._https.aclose()

    # ---- handing over pushes ----------------------------------------------------------------
    def add_source(self, jobs: Iterator[PushJob], count: int, delay_s: float = 0.0) -> None:
        """``count`` pushes, built lazily by ``jobs``, first attempts after ``delay_s``."""
        self.pending += count
        entry = (jobs, self.state.generation)
        if delay_s > 0:
            asyncio.get_running_loop().call_later(delay_s, self._append_source, entry)
        else:
            self._append_source(entry)

    def wake(self) -> None:
        """Look for pushes to send again (the hold was lifted)."""
        self._wake.set()

    def add(self, job: PushJob, delay_s: float = 0.0) -> None:
        self.add_source(iter((job,)), 1, delay_s)

    def _append_source(self, entry: tuple[Iterator[PushJob | _Item], int]) -> None:
        if entry[1] == self.state.generation:
            self._sources.append(entry)
            self._wake.set()

    def _later(self, item: _Item, delay_s: float) -> None:
        entry = (iter((item,)), item.generation)
        asyncio.get_running_loop().call_later(delay_s, self._append_source, entry)

    def _done(self, item: _Item) -> None:
        if item.generation == self.state.generation:
            self.pending -= 1

    # ---- the stream --------------------------------------------------------------------------
    def _next_item(self) -> _Item | None:
        while self._sources:
            jobs, generation = self._sources[0]
            job = next(jobs, None) if generation == self.state.generation else None
            if job is None:
                self._sources.popleft()
                continue
            return job if isinstance(job, _Item) else _Item(job, generation)
        return None

    async def _feed(self) -> None:
        assert self._queue is not None
        while True:
            item = None if self.state.config.pushes_held else self._next_item()
            if item is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._queue.put(item)  # blocks while the senders are busy: memory stays flat

    async def _send_loop(self, index: int) -> None:
        assert self._queue is not None
        while index < self._limit:
            item = await self._queue.get()
            if item.generation != self.state.generation:
                continue
            with contextlib.suppress(Exception):  # a push must never stop its sender
                await self._deliver(item)

    async def _deliver(self, item: _Item) -> None:
        state, job = self.state, item.job
        if not item.decided:
            item.decided = True
            decision = state.faults.decide(f"push.{job.kind}")
            item.fault = decision.fault.kind if decision.fault else None
            if item.fault == "drop":
                state.log_push(job, attempt=0, status=None, answer="", error=None, outcome="dropped")
                self._done(item)
                return
            if decision.delay_s:
                self._later(item, decision.delay_s)
                return
        retries = state.config.push_retry_minutes if job.retries is None else job.retries
        attempts = 1 + (retries if job.retry else 0)
        last = item.attempt >= attempts
        ok = await self._attempt(item, last=last)
        if item.generation != state.generation:
            return
        if ok and item.fault == "duplicate":
            item.fault = None
            await self._attempt(item, last=True, duplicate=True)
        if ok or last:
            self._done(item)
            return
        item.attempt += 1
        self._later(item, state.config.vendor_minute_s * job.retry_interval_minutes)

    async def _attempt(self, item: _Item, *, last: bool, duplicate: bool = False) -> bool:
        state, job = self.state, item.job
        status: int | None = None
        answer, error, ok = "", None, False
        state.pushes_sent += 1
        try:
            async with asyncio.timeout(state.config.push_timeout_s):
                reply = await self._request(job)
            status, answer = reply.status_code, reply.text[: state.ANSWER_LOG_LIMIT]
            ok = job.accept(reply)
        except (HttpError, OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # httpx errors (https targets) and anything unforeseen
            error = f"{type(exc).__name__}: {exc}"
        if item.generation != state.generation:
            return ok
        if duplicate:
            outcome = "duplicate"
        elif ok:
            outcome = "accepted"
        elif not job.retry:
            outcome = "refused"
        else:
            outcome = "gave_up" if last else "retry"
        attempt = item.attempt + (1 if duplicate else 0)
        state.log_push(job, attempt=attempt, status=status, answer=answer, error=error, outcome=outcome)
        return ok

    async def _request(self, job: PushJob) -> PushAnswer:
        if job.url.startswith("http://"):
            return await self.pool.request(job.method, job.url, job.body, job.content_type)
        import httpx

        if self._https is None:
            self._https = httpx.AsyncClient(timeout=self.state.config.push_timeout_s)
        headers = {"Content-Type": job.content_type} if job.method != "GET" else {}
        response = await self._https.request(job.method, job.url, content=job.body, headers=headers)
        return PushAnswer(response.status_code, response.content)


__all__ = ["HttpPool", "PushAnswer", "PushJob", "PushSender"]
