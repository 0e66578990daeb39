"""Server limits of the standalone receiver (docs/receiver.md, "Server limits").

uvicorn bounds idle keep-alive connections but not a client that opens a connection and sends
its request headers slowly (or never): without a token check possible yet, thousands of such
clients hold file descriptors until the receiver cannot accept a vendor push any more. This
protocol adds, per connection:

* a header timeout: request headers not complete within ``header_timeout_s`` → closed; a body
  not complete within ``body_timeout_s`` of the request's start → closed (the app's own body
  timeout, needed when it is mounted elsewhere, is then switched off: one timer per request);
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


def guarded_protocol(limits: ServerLimits) -> type[HttpToolsProtocol]:
    """An ``HttpToolsProtocol`` subclass enforcing ``limits`` (one registry per server)."""
    pending: OrderedDict[GuardedHttpToolsProtocol, float] = OrderedDict()
    stats = {"header_timeouts": 0, "body_timeouts": 0, "evicted": 0, "refused": 0}

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _request_timer: asyncio.TimerHandle | None = None
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
            """One timer per request: headers within header_timeout_s, all of it within
            body_timeout_s (re-armed once if the headers made it)."""
            self._request_started = pending[self] = time.monotonic()
            if self._request_timer is None:
                self._request_timer = self.loop.call_later(limits.header_timeout_s, self._too_slow)

        def _request_done(self) -> None:
            pending.pop(self, None)
            if self._request_timer is not None:
                self._request_timer.cancel()
                self._request_timer = None

        def _too_slow(self) -> None:
            self._request_timer = None
            if self in pending:
                pending.pop(self, None)
                stats["header_timeouts"] += 1
                self.transport.close()
                return
            left = self._request_started + limits.body_timeout_s - time.monotonic()
            if left > 0:
                self._request_timer = self.loop.call_later(left, self._body_too_slow)
            else:
                self._body_too_slow()

        def _body_too_slow(self) -> None:
            self._request_timer = None
            stats["body_timeouts"] += 1
            self.transport.close()

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
            if self._request_timer is None:  # the next request on a keep-alive connection
                self._request_begins()

        def on_headers_complete(self) -> None:
            pending.pop(self, None)  # the timer keeps running for the body
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._request_done()
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._request_done()
            super().connection_lost(exc)

    GuardedHttpToolsProtocol.stats = stats  # type: ignore[attr-defined]
    return GuardedHttpToolsProtocol
