"""The receiver's ASGI layer: push routes served without the framework's per-request machinery.

A push is the hot path (a vendor's burst is thousands a second) and needs nothing FastAPI or
Starlette add per request: no typed parameters (the token is a plain path segment, the body is
stored as received), no dependency solving, no exception middlewares (the access-log wrapper
below already turns any error into a 503). :class:`ReceiverApp` is still a FastAPI app (the
Airflow api-server mounts it as one; ``/healthz``, ``/metrics``, lifespan and every answer the
router gives, 404/405, go through FastAPI as before), but a request for a push route with an
allowed method is dispatched straight to its :class:`PushEndpoint`. Measured in
bench/receiver_load.py (receiver CPU per request); docs/receiver.md, "Speed".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette._utils import get_route_path
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from phonecheck.receiver.intake import MAX_BODY_BYTES

log = logging.getLogger("phonecheck.receiver")
access_log = logging.getLogger("phonecheck.receiver.access")

# Bodies over the limit are drained (up to this much) so the client reads our 413 instead of
# a reset connection; beyond it the connection is simply answered and closed.
DRAIN_LIMIT_BYTES = 16 * MAX_BODY_BYTES


class ClientGone(Exception):
    """The client disconnected before its body arrived."""


class Reply:
    """One answer: status, body and headers, sent as two ASGI messages. Header lists are built
    fresh for every request (host middlewares, e.g. the api-server's GZip, mutate them)."""

    __slots__ = ("status", "body", "content_type", "extra")

    def __init__(
        self, status: int, body: bytes, content_type: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.extra = extra

    async def send(self, send: Send) -> None:
        headers = [(b"content-length", b"%d" % len(self.body)), (b"content-type", self.content_type)]
        headers.extend(self.extra)
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"


def request_headers(scope: Scope) -> tuple[str | None, str | None]:
    """``(content-type, content-length)`` of a request, in one pass over its headers."""
    content_type = content_length = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"content-length":
            content_length = value.decode("latin-1")
    return content_type, content_length


async def read_body(receive: Receive, declared_length: str | None) -> bytes | None:
    """The body, or None when it exceeds ``MAX_BODY_BYTES`` (counted as it arrives: the declared
    length is not trusted). Raises :class:`ClientGone` when the client disconnects."""
    if declared_length is not None and declared_length.isdigit() and int(declared_length) > DRAIN_LIMIT_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            if size > DRAIN_LIMIT_BYTES:
                return None
            # keep draining so the client gets to read the 413
        elif chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if size > MAX_BODY_BYTES:
        return None
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)


class SafeAccessLog:
    """ASGI middleware: request log with the route template (never the token, never the query
    string: AccuAuth callbacks and voice GETs carry phone numbers there), no bodies, and no 500
    ever reaches the vendor.

    It also rewrites ``scope["path"]`` to the template and empties ``scope["query_string"]`` as
    the response starts and again once it is done, so outer access logs (uvicorn's, read at
    response start; the Airflow api-server's ``HttpAccessLogMiddleware``, read afterwards) print
    neither the token nor a phone number.
    """

    def __init__(self, app: ASGIApp, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        redacted = False

        def redact() -> None:
            nonlocal redacted
            redacted = True
            route = scope.get("route")
            # Only our own routes: a host app's Mount also sits in scope["route"].
            template = route.path if isinstance(route, Route) else "/(unmatched)"
            scope["path"] = scope.get("root_path", "") + template
            scope["raw_path"] = scope["path"].encode("ascii", "replace")
            scope["query_string"] = b""

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                redact()
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except Exception:
            log.exception("unhandled error in the receiver")
            if status == 0:  # nothing sent yet: 503 invites a retry, a 500 would be a bug report
                status = 503
                redact()
                await send({"type": "http.response.start", "status": 503, "headers": []})
                await send({"type": "http.response.body", "body": b""})
        finally:
            if not redacted:  # no response went out through capture
                redact()
            if self.enabled:
                access_log.info(
                    "%s %s %d %.1fms",
                    scope.get("method"),
                    scope["path"],
                    status,
                    (time.perf_counter() - start) * 1000,
                )


Handler = Callable[[Scope, Receive, str], Awaitable[Reply]]


class PushEndpoint:
    """The ASGI app of one push route: hands the request to its handler and sends the reply."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reply = await self.handler(scope, receive, scope["path_params"]["token"])
        await reply.send(send)


class ReceiverApp(FastAPI):
    """FastAPI, with push requests dispatched before the framework's middleware stack.

    A request takes the direct way only when its path is exactly a push route's (prefix, route
    path, one non-empty token segment) and its method is one the route allows; anything else
    (unknown path, wrong method, trailing slash...) goes through FastAPI and gets the answer it
    always got. The direct way applies the same access-log wrapper the stack would.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # "<mount prefix>/<route path without its {token}>" -> (route, methods, its wrapped app)
        self._push_routes: dict[str, tuple[Route, frozenset[str], ASGIApp]] = {}

    def add_push_route(self, route: Route, methods: frozenset[str], access_log: bool) -> None:
        self.router.routes.append(route)
        base = route.path.removesuffix("/{token}")
        assert base != route.path, "a push route ends with its {token} segment"
        self._push_routes[base] = (route, methods, SafeAccessLog(route.endpoint, enabled=access_log))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._push_routes:
            base, _, token = get_route_path(scope).rpartition("/")
            hit = self._push_routes.get(base)
            if hit is not None and token and scope["method"] in hit[1]:
                route, _, app = hit
                scope["app"] = self
                scope["route"] = route
                scope["path_params"] = {"token": token}
                await app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
