"""The webhook receiver: a FastAPI app that stores every vendor push before answering.

Served two ways with the same paths (docs/receiver.md):

* standalone, ``python -m phonecheck.receiver`` (``make receiver``): ``create_app()``, routes under
  ``/telco-webhooks``, with the server limits of :mod:`phonecheck.receiver.server`;
* inside the Airflow api-server: the ``telco_webhooks`` plugin mounts ``create_app(mount_prefix="")``
  at ``/telco-webhooks``. Airflow authenticates nothing there: the secret path token is the
  authentication.

Rules: constant-time token check (wrong token → 404, nothing stored; a missing, sample or short
configured token → every push 404 and a loud error); bodies over 1 MiB → 413 (counted while
reading, Content-Length is not trusted), a body that stalls → 408; the delivery is committed to
``raw.webhook_event`` before the answer; duplicates are answered like first deliveries and
counted on the existing row; undecodable bodies are stored with their error and acknowledged;
a delivery the warehouse refuses for good is quarantined locally and acknowledged; warehouse
down → every push type goes to the local fsynced spool and is acknowledged (voice receipts are
pushed once and call records retried only twice: docs/receiver.md), replayed later;
spool unwritable too → 503 with ``Retry-After`` and a loud error. No request answers 500.

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

from phonecheck.receiver.intake import MAX_BODY_BYTES, Endpoint, InboxEvent, build_event
from phonecheck.receiver.spool import Spool, SpoolRecord
from phonecheck.receiver.store import InboxStore, PayloadRefused
from phonecheck.webhook_urls import normalise_token, token_problem

log = logging.getLogger("phonecheck.receiver")
access_log = logging.getLogger("phonecheck.receiver.access")

DEFAULT_PREFIX = "/telco-webhooks"
# Bodies over the limit are drained (up to this much) so the client reads our 413 instead of
# a reset connection; beyond it the connection is simply answered and closed.
DRAIN_LIMIT_BYTES = 16 * MAX_BODY_BYTES

ROUTES: dict[Endpoint, tuple[str, tuple[str, ...]]] = {
    Endpoint.NXCLOUD_NUMBER_CHECK: ("/nxcloud/number-check/{token}", ("POST",)),
    # The voice example is a bare query string (docs/receiver.md): accept it on GET as
    # well, a receipt refused with 405 would be lost for good.
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
    """How the receiver finds its secret, its warehouse and its spool (all resolved lazily),
    and its health thresholds (docs/receiver.md)."""

    token_provider: Callable[[], str | None]
    dsn_provider: Callable[[], str]
    spool_dir_provider: Callable[[], Path] = default_spool_dir
    replay_interval_s: float = 2.0
    pool_min_size: int = 2
    pool_max_size: int = 8
    access_log: bool = True
    group_commit: bool = True  # deliveries waiting at the same moment share one commit
    # a body that takes longer to arrive is answered 408; None: the server enforces it (standalone)
    body_timeout_s: float | None = 30.0
    quarantine_alert: int = 0  # /healthz is red while more records than this are quarantined
    replay_stuck_s: float = 60.0  # ... or while the replay made no progress this long

    @classmethod
    def from_env(cls, **overrides) -> ReceiverConfig:
        """``TELCO_WEBHOOK_TOKEN``, ``WAREHOUSE_DSN`` (unset → embedded warehouse),
        ``RECEIVER_SPOOL_DIR``, ``RECEIVER_DB_POOL_SIZE``, ``RECEIVER_ACCESS_LOG`` (0/1),
        ``RECEIVER_GROUP_COMMIT`` (0/1), ``RECEIVER_BODY_TIMEOUT_S``,
        ``RECEIVER_QUARANTINE_ALERT``, ``RECEIVER_REPLAY_STUCK_S``."""

        def dsn() -> str:
            from phonecheck.warehouse import resolve_dsn

            return resolve_dsn()

        env = os.environ.get
        values = {
            "token_provider": lambda: os.environ.get("TELCO_WEBHOOK_TOKEN"),
            "dsn_provider": dsn,
            "pool_max_size": int(env("RECEIVER_DB_POOL_SIZE", "8")),
            "access_log": env("RECEIVER_ACCESS_LOG", "1") != "0",
            "group_commit": env("RECEIVER_GROUP_COMMIT", "1") != "0",
            "body_timeout_s": float(env("RECEIVER_BODY_TIMEOUT_S", "30")),
            "quarantine_alert": int(env("RECEIVER_QUARANTINE_ALERT", "0")),
            "replay_stuck_s": float(env("RECEIVER_REPLAY_STUCK_S", "60")),
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
    body = "error" if endpoint is Endpoint.NXCLOUD_VOICE else "cannot store the delivery now, retry later"
    return PlainTextResponse(body, status_code=503, headers={"Retry-After": "60"})


@dataclass
class Receiver:
    """Per-app state: store, spool, counters, background replay, health."""

    config: ReceiverConfig
    store: InboxStore = field(init=False)
    metrics: Counter = field(default_factory=Counter)
    _token: bytes | None = None
    _token_refused: bool = False
    _spool: Spool | None = None
    _replay_task: asyncio.Task | None = None
    spool_error: str | None = None  # the last spool write failed (cleared by a good write)
    replay_error: str | None = None  # the last replay pass failed
    _replay_progress_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.store = InboxStore(
            self.config.dsn_provider,
            min_size=self.config.pool_min_size,
            max_size=self.config.pool_max_size,
            group_commit=self.config.group_commit,
        )

    @property
    def spool(self) -> Spool:
        if self._spool is None:
            self._spool = Spool(self.config.spool_dir_provider())
        return self._spool

    def token_matches(self, candidate: str) -> bool:
        if self._token is None:
            if self._token_refused:
                return False
            configured = self.config.token_provider()
            problem = token_problem(configured)
            if problem:
                self._token_refused = True
                log.error("%s: the receiver refuses every push (404) until it is fixed", problem)
                return False
            self._token = normalise_token(configured).encode("utf-8")
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
                self.replay_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must survive anything; files stay put
                self.replay_error = _short(exc)
                self.metrics["replay_failures"] += 1
                log.exception("spool replay failed; will retry")
            await asyncio.sleep(self.config.replay_interval_s)

    async def replay_spool(self) -> int:
        """Replay every claimable spool file when the warehouse answers; return records stored.

        Every claimed file is released whatever happens; a record the warehouse refuses for
        good is quarantined and the others go on.
        """
        spool = self.spool
        if not await asyncio.to_thread(spool.has_files) or not await self.store.ping():
            self._replay_progress_at = time.monotonic()  # nothing to do, or waiting: not stuck
            return 0
        await asyncio.to_thread(spool.seal)  # our own file becomes replayable
        replayed = 0
        claimed = await asyncio.to_thread(spool.claim)
        try:
            for spool_file in claimed:
                outcome = await self.store.replay(
                    spool_file.path.name, spool_file.records, legacy=spool_file.legacy
                )
                for record, reason in outcome.refused:
                    await asyncio.to_thread(spool.quarantine, record, reason)
                    self.metrics["quarantined"] += 1
                    log.error(
                        "spooled %s delivery %s refused by the warehouse (%s): quarantined",
                        record.event.endpoint,
                        record.record_id,
                        reason,
                    )
                if spool_file.torn:
                    self.metrics["quarantined"] += len(spool_file.torn)
                await asyncio.to_thread(spool.discard, spool_file)
                replayed += outcome.stored
                self.metrics["spool_replayed"] += outcome.stored
                self._replay_progress_at = time.monotonic()
                if outcome.stored:
                    log.info(
                        "replayed %d spooled delivery(ies) from %s", outcome.stored, spool_file.path.name
                    )
        finally:
            for spool_file in claimed:
                spool_file.release()
        if not await asyncio.to_thread(spool.has_files):
            self.spool_error = None  # the spool drained: space is back
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

    # -- health --------------------------------------------------------------------------------
    async def health(self) -> tuple[bool, dict]:
        """Green only when the warehouse answers, the spool can be written, replay is not stuck
        and the quarantine is within its threshold (docs/receiver.md, "Health")."""
        warehouse_ok = await self.store.ping()
        spool = self.spool
        probe_error = await asyncio.to_thread(spool.probe)
        pending = await asyncio.to_thread(spool.pending_files)
        quarantined = len(await asyncio.to_thread(spool.quarantined))
        stalled_s = time.monotonic() - self._replay_progress_at
        stuck = bool(pending) and warehouse_ok and stalled_s > self.config.replay_stuck_s
        problems = []
        if not warehouse_ok:
            problems.append("warehouse unavailable")
        if self.spool_error or probe_error:
            problems.append(f"spool not writable: {self.spool_error or probe_error}")
        if stuck:
            problems.append(f"spool replay stuck for {stalled_s:.0f} s: {self.replay_error or 'no progress'}")
        if quarantined > self.config.quarantine_alert:
            problems.append(f"{quarantined} quarantined record(s) to inspect")
        body = {
            "status": "ok" if not problems else "; ".join(problems),
            "warehouse": "ok" if warehouse_ok else "unavailable",
            "spool_pending": bool(pending),
            "spool_pending_files": pending,
            "spool_writable": not (self.spool_error or probe_error),
            "replay_stuck": stuck,
            "quarantined": quarantined,
        }
        return not problems, body

    # -- one delivery ------------------------------------------------------------------------
    async def handle(self, endpoint: Endpoint, request: Request, token: str) -> Response:
        if not self.token_matches(token):
            self.metrics[(endpoint.value, "bad_token")] += 1
            return _not_found()
        self.ensure_background()
        received_at = datetime.now(UTC)
        try:
            if self.config.body_timeout_s is None:
                body = await _read_body(request)
            else:
                async with asyncio.timeout(self.config.body_timeout_s):
                    body = await _read_body(request)
        except ClientDisconnect:
            self.metrics[(endpoint.value, "client_gone")] += 1
            return Response(status_code=400)
        except TimeoutError:
            self.metrics[(endpoint.value, "body_timeout")] += 1
            return PlainTextResponse(
                "request body too slow", status_code=408, headers={"Connection": "close"}
            )
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
        except PayloadRefused as exc:
            return await self._quarantine(endpoint, event, str(exc))
        except Exception as exc:  # noqa: BLE001 - WarehouseUnavailable or anything unforeseen
            return await self._spool_delivery(endpoint, event, exc)
        outcome = "stored" if result.inserted else "duplicate"
        if event.parse_status == "error":
            outcome += "_unparseable"
        self.metrics[(endpoint.value, outcome)] += 1
        return _ack(endpoint)

    async def _spool_delivery(self, endpoint: Endpoint, event: InboxEvent, cause: BaseException) -> Response:
        try:
            await asyncio.to_thread(self.spool.append, event)
        except Exception as exc:  # noqa: BLE001
            self.spool_error = _short(exc)
            self.metrics[(endpoint.value, "spool_failed")] += 1
            self.metrics["spool_write_failures"] += 1
            log.error(
                "%s: warehouse unavailable (%s) AND spool write failed (%s): answered 503%s",
                endpoint.value,
                _short(cause),
                self.spool_error,
                "" if endpoint.vendor_retries else "; a voice receipt is not pushed again",
            )
            return _unavailable(endpoint)
        self.spool_error = None
        self.metrics[(endpoint.value, "spooled")] += 1
        log.warning("%s: warehouse unavailable (%s), delivery spooled", endpoint.value, _short(cause))
        return _ack(endpoint)

    async def _quarantine(self, endpoint: Endpoint, event: InboxEvent, reason: str) -> Response:
        import uuid

        record = SpoolRecord(record_id=uuid.uuid4().hex, event=event)
        try:
            await asyncio.to_thread(self.spool.quarantine, record, reason)
        except Exception as exc:  # noqa: BLE001
            self.spool_error = _short(exc)
            self.metrics["spool_write_failures"] += 1
            log.error("%s: warehouse refused a delivery and the quarantine write failed: 503", endpoint.value)
            return _unavailable(endpoint)
        self.metrics[(endpoint.value, "quarantined")] += 1
        self.metrics["quarantined"] += 1
        log.error(
            "%s: the warehouse refuses this delivery for good (%s): quarantined", endpoint.value, reason
        )
        return _ack(endpoint)

    def render_metrics(self, gauges: dict[str, int] | None = None) -> str:
        lines = [
            "# HELP phonecheck_receiver_requests_total Webhook deliveries by endpoint and outcome.",
            "# TYPE phonecheck_receiver_requests_total counter",
        ]
        for key, count in sorted(self.metrics.items(), key=str):
            if isinstance(key, tuple):
                lines.append(
                    f'phonecheck_receiver_requests_total{{endpoint="{key[0]}",outcome="{key[1]}"}} {count}'
                )
        for name, help_text in (
            ("spool_replayed", "Spooled deliveries replayed into the warehouse."),
            (
                "spool_write_failures",
                "Spool (or quarantine) writes that failed: deliveries refused with 503.",
            ),
            ("quarantined", "Records (or unreadable regions) put in quarantine."),
            ("replay_failures", "Spool replay passes that failed."),
        ):
            lines.append(f"# HELP phonecheck_receiver_{name}_total {help_text}")
            lines.append(f"# TYPE phonecheck_receiver_{name}_total counter")
            lines.append(f"phonecheck_receiver_{name}_total {self.metrics[name]}")
        for name, value in (gauges or {}).items():
            lines.append(f"# TYPE phonecheck_receiver_{name} gauge")
            lines.append(f"phonecheck_receiver_{name} {value}")
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
        ok, body = await receiver.health()
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics() -> Response:
        spool = receiver.spool
        gauges = {
            "spool_pending_files": await asyncio.to_thread(spool.pending_files),
            "quarantine_records": len(await asyncio.to_thread(spool.quarantined)),
            "spool_writable": 0 if receiver.spool_error else 1,
        }
        return PlainTextResponse(receiver.render_metrics(gauges), media_type="text/plain; version=0.0.4")

    app.add_api_route(mount_prefix + "/healthz", healthz, methods=["GET"])
    app.add_api_route(mount_prefix + "/metrics", metrics, methods=["GET"])
    app.add_middleware(SafeAccessLog, enabled=receiver.config.access_log)
    return app
