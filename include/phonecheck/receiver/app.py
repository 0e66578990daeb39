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
Push requests skip FastAPI's per-request stack (:mod:`phonecheck.receiver.asgi`).

Nothing here connects at import or app creation: the pool and the spool replay loop start with
the app's lifespan or, when the host does not run it, on the first request."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope

from phonecheck.receiver import asgi
from phonecheck.receiver.asgi import JSON, TEXT, ClientGone, Reply, SafeAccessLog
from phonecheck.receiver.intake import Endpoint, InboxEvent, build_event
from phonecheck.receiver.metrics import render_metrics
from phonecheck.receiver.spool import Spool, SpoolRecord
from phonecheck.receiver.store import InboxStore, PayloadRefused
from phonecheck.webhook_urls import (
    TOKEN_CHECK_HEADER,
    TOKEN_CHECK_PATH,
    WebhookSettingsError,
    normalise_token,
    resolve,
    token_problem,
)

log = logging.getLogger("phonecheck.receiver")

DEFAULT_PREFIX = "/telco-webhooks"

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
        """The webhook token as :func:`phonecheck.webhook_urls.resolve` reads it (the Variable's
        env form ``AIRFLOW_VAR_TELCO_WEBHOOK_TOKEN`` or ``TELCO_WEBHOOK_TOKEN``), the warehouse as
        :func:`phonecheck.warehouse.deployment_dsn` does (``WAREHOUSE_DSN``, else
        ``AIRFLOW_CONN_WAREHOUSE``; neither → embedded), ``RECEIVER_SPOOL_DIR``,
        ``RECEIVER_DB_POOL_SIZE``, ``RECEIVER_ACCESS_LOG`` (0/1), ``RECEIVER_GROUP_COMMIT`` (0/1),
        ``RECEIVER_BODY_TIMEOUT_S``, ``RECEIVER_QUARANTINE_ALERT``, ``RECEIVER_REPLAY_STUCK_S``."""

        def dsn() -> str:
            from phonecheck.warehouse import deployment_dsn

            return deployment_dsn()

        env = os.environ.get
        values = {
            "token_provider": lambda: resolve().token,
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


def _ack(endpoint: Endpoint) -> Reply:
    if endpoint is Endpoint.ACCUAUTH_PHONE_NUMBER:
        return Reply(200, _ACCUAUTH_OK_BODY, JSON)
    # NXCLOUD: HTTP 200 is the ack; voice receipts also need the body to say success
    return Reply(200, b"success", TEXT)


def _not_found() -> Reply:
    return Reply(404, _NOT_FOUND_BODY, JSON)


def _unavailable(endpoint: Endpoint) -> Reply:
    body = b"error" if endpoint is Endpoint.NXCLOUD_VOICE else b"cannot store the delivery now, retry later"
    return Reply(503, body, TEXT, ((b"retry-after", b"60"),))


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
            try:
                configured = self.config.token_provider()
                problem = token_problem(configured)
            except WebhookSettingsError as exc:  # both spellings set, to different values
                configured, problem = None, str(exc)
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
    async def handle(self, endpoint: Endpoint, scope: Scope, receive: Receive, token: str) -> Reply:
        if not self.token_matches(token):
            self.metrics[(endpoint.value, "bad_token")] += 1
            return _not_found()
        self.ensure_background()
        received_at = datetime.now(UTC)
        content_type, content_length = asgi.request_headers(scope)
        try:
            if self.config.body_timeout_s is None:
                body = await asgi.read_body(receive, content_length)
            else:
                async with asyncio.timeout(self.config.body_timeout_s):
                    body = await asgi.read_body(receive, content_length)
        except ClientGone:
            self.metrics[(endpoint.value, "client_gone")] += 1
            return Reply(400, b"", TEXT)
        except TimeoutError:
            self.metrics[(endpoint.value, "body_timeout")] += 1
            return Reply(408, b"request body too slow", TEXT, ((b"connection", b"close"),))
        if body is None:
            self.metrics[(endpoint.value, "too_large")] += 1
            return Reply(413, b"body larger than 1 MiB", TEXT)

        event = build_event(
            endpoint,
            body=body,
            query_string=scope.get("query_string", b""),
            content_type=content_type,
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

    async def _spool_delivery(self, endpoint: Endpoint, event: InboxEvent, cause: BaseException) -> Reply:
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

    async def _quarantine(self, endpoint: Endpoint, event: InboxEvent, reason: str) -> Reply:
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
        return render_metrics(self.metrics, gauges)


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


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

    app = asgi.ReceiverApp(
        title="telco-phonecheck webhook receiver",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # the paths carry a secret: publish no schema
    )
    app.state.receiver = receiver

    for endpoint, (path, methods) in ROUTES.items():
        handler = functools.partial(receiver.handle, endpoint)
        route = Route(mount_prefix + path, asgi.PushEndpoint(handler), name=f"receive_{endpoint.value}")
        route.methods = set(methods)  # exactly these: Starlette would add HEAD to a GET route
        app.add_push_route(route, frozenset(methods), access_log=receiver.config.access_log)

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

    async def token_check(token: str) -> Response:
        # Lets the pipelines check, before a paid submit, that this receiver takes their token:
        # 204 yes, 404 no; the header tells our answer from any other server's 404.
        ok = receiver.token_matches(token)
        return Response(status_code=204 if ok else 404, headers={TOKEN_CHECK_HEADER: "1"})

    app.add_api_route(mount_prefix + TOKEN_CHECK_PATH, token_check, methods=["GET"])
    app.add_api_route(mount_prefix + "/healthz", healthz, methods=["GET"])
    app.add_api_route(mount_prefix + "/metrics", metrics, methods=["GET"])
    app.add_middleware(SafeAccessLog, enabled=receiver.config.access_log)
    return app
