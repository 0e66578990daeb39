"""The webhook receiver: a FastAPI app that stores every vendor push before answering.

Served two ways with the same paths (architecture.md §5):

* standalone, ``python -m phonecheck.receiver`` (``make receiver``): ``create_app()``, routes under
  ``/telco-webhooks``;
* inside the Airflow api-server: the ``telco_webhooks`` plugin mounts ``create_app(mount_prefix="")``
  at ``/telco-webhooks``. Airflow authenticates nothing there (airflow-notes §5): the secret path
  token is the authentication.

Rules: constant-time token check (wrong token → 404, nothing stored); bodies over 1 MiB → 413
(counted while reading, Content-Length is not trusted); the delivery is committed to
``raw.webhook_event`` before the answer; duplicates are answered like first deliveries and
counted on the existing row; undecodable bodies are stored with their error and acknowledged;
warehouse down → 503 for pushes the vendor retries, local fsynced spool + ``success`` for voice
receipts (pushed once). No request answers 500: unexpected errors become 503 (or a spool write).

Nothing here connects at import or app creation: the pool and the spool replay loop start with
the app's lifespan or, when the host does not run it, on the first request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from phonecheck.receiver.intake import MAX_BODY_BYTES, Endpoint, build_event
from phonecheck.receiver.spool import VoiceSpool
from phonecheck.receiver.store import InboxStore, WarehouseUnavailable

log = logging.getLogger("phonecheck.receiver")
access_log = logging.getLogger("phonecheck.receiver.access")

DEFAULT_PREFIX = "/telco-webhooks"
# Bodies over the limit are drained (up to this much) so the client reads our 413 instead of
# a reset connection; beyond it the connection is simply answered and closed.
DRAIN_LIMIT_BYTES = 16 * MAX_BODY_BYTES

ROUTES: dict[Endpoint, tuple[str, tuple[str, ...]]] = {
    Endpoint.NXCLOUD_NUMBER_CHECK: ("/nxcloud/number-check/{token}", ("POST",)),
    # The voice example is a bare query string (SEED 003): accept it on GET as well, a receipt
    # refused with 405 would be lost for good.
    Endpoint.NXCLOUD_VOICE: ("/nxcloud/voice/{token}", ("POST", "GET")),
    Endpoint.NXCLOUD_CALL: ("/nxcloud/call/{token}", ("POST",)),
    Endpoint.ACCUAUTH_PHONE_NUMBER: ("/accuauth/phone-number/{token}", ("GET", "POST")),
}


def default_spool_dir() -> Path:
    configured = os.environ.get("RECEIVER_SPOOL_DIR")
    if configured:
        return Path(configured)
    from phonecheck.warehouse import local_dir

    return local_dir() / "spool" / "voice"


@dataclass
class ReceiverConfig:
    """How the receiver finds its secret, its warehouse and its spool (all resolved lazily)."""

    token_provider: Callable[[], str | None]
    dsn_provider: Callable[[], str]
    spool_dir_provider: Callable[[], Path] = default_spool_dir
    replay_interval_s: float = 2.0
    pool_min_size: int = 2
    pool_max_size: int = 8
    access_log: bool = True
    group_commit: bool = True  # deliveries waiting at the same moment share one commit

    @classmethod
    def from_env(cls, **overrides) -> ReceiverConfig:
        """``TELCO_WEBHOOK_TOKEN``, ``WAREHOUSE_DSN`` (unset → embedded warehouse),
        ``RECEIVER_SPOOL_DIR``, ``RECEIVER_DB_POOL_SIZE``, ``RECEIVER_ACCESS_LOG`` (0/1),
        ``RECEIVER_GROUP_COMMIT`` (0/1)."""

        def dsn() -> str:
            from phonecheck.warehouse import resolve_dsn

            return resolve_dsn()

        values = {
            "token_provider": lambda: os.environ.get("TELCO_WEBHOOK_TOKEN"),
            "dsn_provider": dsn,
            "pool_max_size": int(os.environ.get("RECEIVER_DB_POOL_SIZE", "8")),
            "access_log": os.environ.get("RECEIVER_ACCESS_LOG", "1") != "0",
            "group_commit": os.environ.get("RECEIVER_GROUP_COMMIT", "1") != "0",
        }
        values.update(overrides)
        return cls(**values)


_ACCUAUTH_OK_BODY = b'{"status":"OK"}'
_NOT_FOUND_BODY = b'{"detail":"Not Found"}'


# A fresh Response per request: host middlewares (the api-server's GZip) mutate header lists.
def _ack(endpoint: Endpoint) -> Response:
    if endpoint is Endpoint.ACCUAUTH_PHONE_NUMBER:
        return Response(_ACCUAUTH_OK_BODY, media_type="application/json")
    # NXCLOUD: HTTP 200 is the ack; voice receipts also need the body to say success
    return PlainTextResponse("success")


def _not_found() -> Response:
    return Response(_NOT_FOUND_BODY, status_code=404, media_type="application/json")


def _unavailable(endpoint: Endpoint) -> Response:
    body = "error" if endpoint is Endpoint.NXCLOUD_VOICE else "warehouse unavailable, retry later"
    return PlainTextResponse(body, status_code=503, headers={"Retry-After": "60"})


@dataclass
class Receiver:
    """Per-app state: store, spool, counters, background replay."""

    config: ReceiverConfig
    store: InboxStore = field(init=False)
    metrics: Counter = field(default_factory=Counter)
    _token: bytes | None = None
    _spool: VoiceSpool | None = None
    _replay_task: asyncio.Task | None = None

    def __post_init__(self) -> None:
        self.store = InboxStore(
            self.config.dsn_provider,
            min_size=self.config.pool_min_size,
            max_size=self.config.pool_max_size,
            group_commit=self.config.group_commit,
        )

    @property
    def spool(self) -> VoiceSpool:
        if self._spool is None:
            self._spool = VoiceSpool(self.config.spool_dir_provider())
        return self._spool

    def token_matches(self, candidate: str) -> bool:
        if self._token is None:
            token = self.config.token_provider()
            if not token:
                log.error("TELCO_WEBHOOK_TOKEN is not set: every webhook is answered 404")
                return False
            self._token = token.encode("utf-8")
        # bytes, not str: compare_digest refuses non-ASCII str, and a path may hold anything.
        return hmac.compare_digest(candidate.encode("utf-8", "surrogatepass"), self._token)

    # -- background spool replay -------------------------------------------------------------
    def ensure_background(self) -> None:
        if self._replay_task is None or self._replay_task.done():
            self._replay_task = asyncio.get_running_loop().create_task(self._replay_loop())

    async def _replay_loop(self) -> None:
        while True:
            try:
                await self.replay_spool()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop must survive anything; files stay put
                log.exception("spool replay failed; will retry")
            await asyncio.sleep(self.config.replay_interval_s)

    async def replay_spool(self) -> int:
        """Replay every claimable spool file when the warehouse answers; return events replayed."""
        spool = self.spool
        if not await asyncio.to_thread(spool.has_files) or not await self.store.ping():
            return 0
        spool.seal()
        replayed = 0
        for spool_file in await asyncio.to_thread(spool.claim):
            try:
                fresh = await self.store.replay(spool_file.path.name, spool_file.events)
            except WarehouseUnavailable as exc:
                spool_file.release()
                log.warning("spool replay of %s postponed: %s", spool_file.path.name, exc)
                return replayed
            except BaseException:
                spool_file.release()
                raise
            await asyncio.to_thread(spool.discard, spool_file)
            if fresh:
                replayed += len(spool_file.events)
                self.metrics["spool_replayed"] += len(spool_file.events)
                log.info(
                    "replayed %d spooled voice receipt(s) from %s",
                    len(spool_file.events),
                    spool_file.path.name,
                )
        return replayed

    async def close(self) -> None:
        if self._replay_task is not None:
            self._replay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._replay_task
            self._replay_task = None
        await self.store.close()
        if self._spool is not None:
            self._spool.seal()

    # -- one delivery ------------------------------------------------------------------------
    async def handle(self, endpoint: Endpoint, request: Request, token: str) -> Response:
        if not self.token_matches(token):
            self.metrics[(endpoint.value, "bad_token")] += 1
            return _not_found()
        self.ensure_background()
        received_at = datetime.now(UTC)
        try:
            body = await _read_body(request)
        except ClientDisconnect:
            self.metrics[(endpoint.value, "client_gone")] += 1
            return Response(status_code=400)
        if body is None:
            self.metrics[(endpoint.value, "too_large")] += 1
            return PlainTextResponse("body larger than 1 MiB", status_code=413)

        event = build_event(
            endpoint,
            body=body,
            query_string=request.scope.get("query_string", b""),
            content_type=request.headers.get("content-type"),
            received_at=received_at,
        )
        try:
            result = await self.store.insert(event)
        except Exception as exc:  # noqa: BLE001 - WarehouseUnavailable or anything unforeseen
            if endpoint.vendor_retries:
                self.metrics[(endpoint.value, "unavailable")] += 1
                log.warning("%s: warehouse unavailable, answered 503 (%s)", endpoint.value, _short(exc))
                return _unavailable(endpoint)
            return await self._spool_voice(endpoint, event, exc)
        outcome = "stored" if result.inserted else "duplicate"
        if event.parse_status == "error":
            outcome += "_unparseable"
        self.metrics[(endpoint.value, outcome)] += 1
        return _ack(endpoint)

    async def _spool_voice(self, endpoint: Endpoint, event, cause: BaseException) -> Response:
        try:
            await asyncio.to_thread(self.spool.append, event)
        except Exception:  # noqa: BLE001
            self.metrics[(endpoint.value, "lost")] += 1
            log.exception("%s: warehouse unavailable AND spool write failed: answered error", endpoint.value)
            return _unavailable(endpoint)
        self.metrics[(endpoint.value, "spooled")] += 1
        log.warning("%s: warehouse unavailable (%s), receipt spooled", endpoint.value, _short(cause))
        return _ack(endpoint)

    def render_metrics(self) -> str:
        lines = [
            "# HELP phonecheck_receiver_requests_total Webhook deliveries by endpoint and outcome.",
            "# TYPE phonecheck_receiver_requests_total counter",
        ]
        for key, count in sorted(self.metrics.items(), key=str):
            if isinstance(key, tuple):
                lines.append(
                    f'phonecheck_receiver_requests_total{{endpoint="{key[0]}",outcome="{key[1]}"}} {count}'
                )
        lines.append("# TYPE phonecheck_receiver_spool_replayed_total counter")
        lines.append(f"phonecheck_receiver_spool_replayed_total {self.metrics['spool_replayed']}")
        return "\n".join(lines) + "\n"


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it exceeds ``MAX_BODY_BYTES`` (counted as it arrives)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > DRAIN_LIMIT_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            if size > DRAIN_LIMIT_BYTES:
                return None
            continue  # keep draining so the client gets to read the 413
        chunks.append(chunk)
    if size > MAX_BODY_BYTES:
        return None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class SafeAccessLog:
    """ASGI middleware: request log with the route template (never the token), no bodies,
    and no 500 ever reaches the vendor.

    It also rewrites ``scope["path"]`` to the template once the response is done, so outer
    access logs (the Airflow api-server's ``HttpAccessLogMiddleware`` reads it afterwards) do
    not print the token either.
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

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except Exception:
            log.exception("unhandled error in the receiver")
            if status == 0:  # nothing sent yet: 503 invites a retry, a 500 would be a bug report
                status = 503
                await send({"type": "http.response.start", "status": 503, "headers": []})
                await send({"type": "http.response.body", "body": b""})
        finally:
            route = scope.get("route")
            # Only our own routes: a host app's Mount also sits in scope["route"].
            template = route.path if isinstance(route, Route) else "/(unmatched)"
            scope["path"] = scope.get("root_path", "") + template
            scope["query_string"] = b""  # voice receipts carry the number there: not for access logs
            if self.enabled:
                access_log.info(
                    "%s %s %d %.1fms",
                    scope.get("method"),
                    scope["path"],
                    status,
                    (time.perf_counter() - start) * 1000,
                )


class PushEndpoint:
    """The ASGI app of one push route: Starlette routing only, no FastAPI request handler.

    The push paths are the hot path and take no typed parameters (the token is a plain path
    segment, the body is stored as received), so FastAPI's dependency solving, parameter
    validation and per-request exit stacks cost CPU for nothing (measured: bench/receiver_load.py,
    receiver CPU per request). The contract is unchanged: same paths, methods, answers and log.
    """

    def __init__(self, receiver: Receiver, endpoint: Endpoint) -> None:
        self.receiver = receiver
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self.receiver.handle(self.endpoint, request, scope["path_params"]["token"])
        await response(scope, receive, send)


def create_app(mount_prefix: str = DEFAULT_PREFIX, config: ReceiverConfig | None = None) -> FastAPI:
    """The receiver app. ``mount_prefix=""`` when a host mounts it at ``/telco-webhooks``."""
    receiver = Receiver(config or ReceiverConfig.from_env())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        receiver.ensure_background()
        try:
            yield
        finally:
            await receiver.close()

    app = FastAPI(
        title="telco-phonecheck webhook receiver",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # the paths carry a secret: publish no schema
    )
    app.state.receiver = receiver

    for endpoint, (path, methods) in ROUTES.items():
        route = Route(mount_prefix + path, PushEndpoint(receiver, endpoint), name=f"receive_{endpoint.value}")
        route.methods = set(methods)  # exactly these: Starlette would add HEAD to a GET route
        app.router.routes.append(route)

    async def healthz() -> Response:
        ok = await receiver.store.ping()
        spooled = await asyncio.to_thread(receiver.spool.has_files)
        body = {"status": "ok" if ok else "warehouse unavailable", "spool_pending": spooled}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics() -> Response:
        return PlainTextResponse(receiver.render_metrics(), media_type="text/plain; version=0.0.4")

    app.add_api_route(mount_prefix + "/healthz", healthz, methods=["GET"])
    app.add_api_route(mount_prefix + "/metrics", metrics, methods=["GET"])
    app.add_middleware(SafeAccessLog, enabled=receiver.config.access_log)
    return app
