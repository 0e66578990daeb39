"""Server limits of the standalone receiver (docs/receiver.md, "Server limits").

uvicorn bounds idle keep-alive connections but not a client that opens a connection and sends
its request headers slowly (or never): without a token check possible yet, thousands of such
clients hold file descriptors until the receiver cannot accept a vendor push any more. This
protocol adds, per connection:

* a header timeout: request headers not complete within ``header_timeout_s`` → closed; a body
  not complete within ``body_timeout_s`` of the request's start → closed (the app's own body
  timeout, needed when it is mounted elsewhere, is then switched off);
* a cap on connections still waiting for their headers ("unauthenticated": the token is in the
  path): beyond ``max_pending`` the oldest one that has waited at least ``min_pending_age_s`` is
  closed, so a new client always gets in while a burst of fast clients (headers in the first
  packet) is never touched;
* a cap on all connections (``max_connections``, kept under the file-descriptor limit): beyond
  it the oldest waiting connection is closed, or the new one if none is waiting.

When the receiver is mounted in the Airflow api-server the app times bodies out itself
(``ReceiverConfig.body_timeout_s``) and a reverse proxy in front sets the other limits
(docs/receiver.md, "Reverse proxy").
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import resource
import time
from collections import OrderedDict
from dataclasses import dataclass

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("phonecheck.receiver.server")

FD_RESERVE = 256  # descriptors kept for the database pool, spool files, logs


@dataclass(frozen=True)
class ServerLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_pending: int = 256
    min_pending_age_s: float = 1.0
    max_connections: int = 8192
    keep_alive_s: float = 5.0

    @classmethod
    def from_env(cls) -> ServerLimits:
        """``RECEIVER_HEADER_TIMEOUT_S``, ``RECEIVER_BODY_TIMEOUT_S``, ``RECEIVER_MAX_PENDING``,
        ``RECEIVER_MAX_CONNECTIONS``, ``RECEIVER_KEEPALIVE_S``."""
        env = os.environ.get
        return cls(
            header_timeout_s=float(env("RECEIVER_HEADER_TIMEOUT_S", "10")),
            body_timeout_s=float(env("RECEIVER_BODY_TIMEOUT_S", "30")),
            max_pending=int(env("RECEIVER_MAX_PENDING", "256")),
            max_connections=int(env("RECEIVER_MAX_CONNECTIONS", "8192")),
            keep_alive_s=float(env("RECEIVER_KEEPALIVE_S", "5")),
        )

    def fitted_to_fd_limit(self) -> ServerLimits:
        """Raise the soft descriptor limit as far as allowed; cap connections below it."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = self.max_connections + FD_RESERVE
        if soft != resource.RLIM_INFINITY and soft < wanted:
            target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
        if soft != resource.RLIM_INFINITY and soft - FD_RESERVE < self.max_connections:
            capped = max(64, soft - FD_RESERVE)
            log.warning("file-descriptor limit %d: receiver connections capped at %d", soft, capped)
            return dataclasses.replace(
                self, max_pending=min(self.max_pending, capped // 2), max_connections=capped
            )
        return self


SWEEP_INTERVAL_S = 0.5  # how often deadlines are checked: one timer per server, not per request


def guarded_protocol(limits: ServerLimits) -> type[HttpToolsProtocol]:
    """An ``HttpToolsProtocol`` subclass enforcing ``limits`` (one registry per server).

    Deadlines are checked by one sweep every ``SWEEP_INTERVAL_S`` over two registries ordered by
    request start (waiting for headers, waiting for the rest of the body), so a request costs two
    dictionary updates and no timer of its own (a uvloop timer per request costs more CPU than
    the rest of the request's bookkeeping together).
    """
    pending: OrderedDict[GuardedHttpToolsProtocol, float] = OrderedDict()  # no headers yet
    in_body: OrderedDict[GuardedHttpToolsProtocol, float] = OrderedDict()  # headers, body not done
    stats = {"header_timeouts": 0, "body_timeouts": 0, "evicted": 0, "refused": 0}
    sweeper: dict[str, asyncio.TimerHandle | None] = {"timer": None}

    def sweep() -> None:
        sweeper["timer"] = None
        now = time.monotonic()
        for registry, limit, counter in (
            (pending, limits.header_timeout_s, "header_timeouts"),
            (in_body, limits.body_timeout_s, "body_timeouts"),
        ):
            while registry:
                protocol, started = next(iter(registry.items()))
                if now - started < limit:
                    break  # ordered by start: the rest are younger
                registry.pop(protocol, None)
                stats[counter] += 1
                protocol.transport.close()
        if pending or in_body:
            arm(asyncio.get_running_loop())

    def arm(loop: asyncio.AbstractEventLoop) -> None:
        if sweeper["timer"] is None:
            sweeper["timer"] = loop.call_later(SWEEP_INTERVAL_S, sweep)

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _request_started = 0.0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections and not self._evict(any_age=True):
                stats["refused"] += 1
                transport.close()
                return
            if len(pending) >= limits.max_pending:
                self._evict(any_age=False)
            self._request_begins()

        def _request_begins(self) -> None:
            self._request_started = pending[self] = time.monotonic()
            arm(self.loop)

        @staticmethod
        def _evict(*, any_age: bool) -> bool:
            if not pending:
                return False
            oldest, since = next(iter(pending.items()))
            if not any_age and time.monotonic() - since < limits.min_pending_age_s:
                return False  # a burst of fresh connections: let them send their headers
            pending.pop(oldest, None)
            stats["evicted"] += 1
            oldest.transport.close()
            return True

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self not in pending:  # the next request on a keep-alive connection
                self._request_begins()

        def on_headers_complete(self) -> None:
            started = pending.pop(self, None)
            in_body[self] = self._request_started if started is None else started
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            in_body.pop(self, None)
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            pending.pop(self, None)
            in_body.pop(self, None)
            super().connection_lost(exc)

    GuardedHttpToolsProtocol.stats = stats  # type: ignore[attr-defined]
    return GuardedHttpToolsProtocol


class LoopBatchedStreamHandler(logging.StreamHandler):
    """A stream handler that writes the lines logged during one event-loop iteration at once.

    The access log writes a line per request; written one by one, that is a ``write`` system call
    per request (stderr is line-buffered), a measurable share of the receiver's CPU under a burst.
    Lines logged inside a running loop are collected and written together when the loop has run
    the callbacks that were ready (``call_soon``): an idle receiver still writes each line at once,
    a busy one writes many in one call. Outside a loop (threads, shutdown) it writes directly.
    """

    def __init__(self, stream=None) -> None:  # noqa: ANN001 - as logging.StreamHandler
        super().__init__(stream)
        self._pending: list[str] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:  # noqa: BLE001 - as logging.StreamHandler.emit
            self.handleError(record)
            return
        self._pending.append(line)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write()
            return
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        with self.lock:
            self._scheduled = False
            self._write()

    def _write(self) -> None:
        if self._pending:
            text, self._pending = "".join(self._pending), []
            try:
                self.stream.write(text)
                self.stream.flush()
            except Exception:  # noqa: BLE001 - a log write must never fail a request
                pass


def configure_logging(*, access_log: bool) -> None:
    """Standalone logging: INFO to stderr; the access log through :class:`LoopBatchedStreamHandler`."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt)
    access = logging.getLogger("phonecheck.receiver.access")
    if access_log:
        handler = LoopBatchedStreamHandler()
        handler.setFormatter(logging.Formatter(fmt))
        access.addHandler(handler)
        access.propagate = False
