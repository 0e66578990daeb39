"""The sandbox's control endpoints under ``/_sandbox``: what tests use to steer a run (reset,
settings and profile, faults, clock, simulated PNS calls) and to assert on the wire (calls
log, push log, charge ledger). Not part of any vendor: the vendors' clients never call these.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from phonecheck.sandbox import pns
from phonecheck.sandbox.wire import PHONE_RE, Sandbox, is_http_url, json_object

router = APIRouter(prefix="/_sandbox")


def _matching(
    entries: Iterable[dict[str, Any]], since: int | None = None, **wanted: Any
) -> list[dict[str, Any]]:
    """The log or ledger entries after ``since`` (their ``seq``) whose fields equal every filter
    in ``wanted``; a filter given as None matches everything."""
    return [
        entry
        for entry in entries
        if (since is None or entry["seq"] > since)
        and all(value is None or entry.get(name) == value for name, value in wanted.items())
    ]


@router.get("/health")
async def health(state: Sandbox) -> dict[str, Any]:
    pending = sum(1 for t in state.tasks.values() if not t.finished)
    return {
        "status": "ok",
        "now_ms": state.clock.now_ms(),
        "in_flight_pushes": state.in_flight,
        "pending_tasks": pending,
        # the run's vendor calls per event and the query calls refused as too frequent: cheap
        # counters for benchmarks (the call log holds at most log_limit entries)
        "calls": dict(state.call_counts),
        "query_min_interval_s": state.query_min_interval_s,
        "query_refusals": state.query_refusals,
        "pushes_sent": state.pushes_sent,
    }


@router.post("/reset")
async def reset(state: Sandbox) -> dict[str, Any]:
    state.reset()
    return {"status": "ok"}


@router.post("/wait")
async def wait_idle(request: Request, state: Sandbox) -> dict[str, Any]:
    """Block until no push is in flight (or ``timeout_s`` real seconds passed)."""
    params = json_object(await request.body()) or {}
    deadline = asyncio.get_running_loop().time() + float(params.get("timeout_s", 30))
    while state.in_flight and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    return {"idle": state.in_flight == 0, "in_flight_pushes": state.in_flight}


@router.get("/faults")
async def get_faults(state: Sandbox) -> dict[str, Any]:
    return {"rules": [rule.public() for rule in state.faults.rules]}


@router.post("/faults")
async def set_faults(request: Request, state: Sandbox) -> Response:
    """Body ``{"rules": [...], "mode": "replace"|"add"}`` (or just the list of rules)."""
    try:
        spec = json.loads(await request.body() or b"[]")
    except ValueError:
        return JSONResponse({"error": "body must be JSON"}, status_code=422)
    rules, mode = (
        (spec, "replace") if isinstance(spec, list) else (spec.get("rules", []), spec.get("mode", "replace"))
    )
    try:
        (state.faults.add if mode == "add" else state.faults.set)(rules)
    except (TypeError, ValueError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    return JSONResponse({"rules": [rule.public() for rule in state.faults.rules]})


@router.get("/clock")
async def get_clock(state: Sandbox) -> dict[str, Any]:
    return {"now_ms": state.clock.now_ms(), "offset_s": state.clock.offset_s}


@router.post("/clock")
async def set_clock(request: Request, state: Sandbox) -> Response:
    """``{"offset_s": skew}`` or ``{"advance_s": jump}`` or ``{"set_ms": epoch ms}``."""
    spec = json_object(await request.body()) or {}
    clock = state.clock
    if "set_ms" in spec:
        clock.offset_s = int(spec["set_ms"]) / 1000 - (clock.now() - clock.offset_s)
    if "offset_s" in spec:
        clock.offset_s = float(spec["offset_s"])
    if "advance_s" in spec:
        clock.offset_s += float(spec["advance_s"])
    return JSONResponse({"now_ms": clock.now_ms(), "offset_s": clock.offset_s})


@router.get("/settings")
async def get_settings(state: Sandbox) -> dict[str, Any]:
    return state.config.public()


@router.post("/settings")
async def set_settings(request: Request, state: Sandbox) -> Response:
    """Any ``SandboxConfig`` field (incl. ``profile``) for this run; ``POST reset`` undoes them."""
    try:
        changes = json_object(await request.body()) or {}
        state.config = state.config.replace(changes)
        if "push_concurrency" in changes:  # applies to pushes scheduled from now on
            state.sender.set_concurrency(state.config.push_concurrency)
        if "pushes_held" in changes:
            state.sender.wake()
    except (TypeError, ValueError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    return JSONResponse(state.config.public())


@router.get("/charges")
async def get_charges(
    state: Sandbox, vendor: str | None = None, batch_no: str | None = None
) -> list[dict[str, Any]]:
    """The paid calls the vendors processed in this run (answered or not): the bill, one entry
    per number; ``vendor`` and ``batch_no`` (NXCLOUD) filter it."""
    return _matching(state.charges, vendor=vendor, batch_no=batch_no)


@router.get("/calls")
async def get_calls(
    state: Sandbox, event: str | None = None, path: str | None = None, since: int = 0
) -> list[dict[str, Any]]:
    return _matching(state.calls, since, event=event, path=path)


@router.get("/pushes")
async def get_pushes(
    state: Sandbox,
    kind: str | None = None,
    url: str | None = None,
    batch_no: str | None = None,
    since: int = 0,
) -> list[dict[str, Any]]:
    return _matching(state.pushes, since, kind=kind, url=url, batch_no=batch_no)


@router.post("/pns/call")
async def pns_call(request: Request, state: Sandbox) -> Response:
    """Place a simulated privacy-number call; its call record is pushed like the vendor does."""
    spec = json_object(await request.body()) or {}
    url = spec.get("url") or state.config.pns_push_url
    if not is_http_url(url):
        return JSONResponse({"error": "no push url: pass 'url' or set pns_push_url"}, status_code=422)
    caller, callee = str(spec.get("caller", "85235757583")), str(spec.get("callee", "85238533300"))
    if not (PHONE_RE.match(caller) and PHONE_RE.match(callee)):
        return JSONResponse({"error": "caller and callee must be digits"}, status_code=422)
    record = pns.push_pns_call_record(state, url, spec, caller, callee)
    return JSONResponse({"callId": record["callId"], "record": record})
