"""AccuAuth as the sandbox plays it, under ``/accuauth``: phone-status submit, task result, the
callbacks of pending tasks, and ``404 NOT_FOUND`` for any other path.

The wire contract is the package docstring (:mod:`phonecheck.sandbox`); the vendor facts are in
docs/vendors/accuauth.md and the strict profile's answers to what they leave open in docs/sandbox.md.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from phonecheck.enums import ACCUAUTH_STATUS_HTTP
from phonecheck.sandbox import outcomes
from phonecheck.sandbox.faults import FaultRule
from phonecheck.sandbox.state import AccuAuthTask, SandboxState
from phonecheck.sandbox.wire import PHONE_RE, Sandbox, TruncatedAnswer, VendorCall, is_http_url, json_object

ACCUAUTH_REASONS = {
    "UNAUTHORIZED": "Unauthorized or access is denied",
    "KEY_EXPIRED": "Your API ID has expired",
    "NO_PERMISSION": "You are not authorized to use this API",
    "OUT_OF_QUOTA": "API calls quota exceeded",
    "RATE_LIMIT_EXCEEDED": "API request frequency exceeds the limit",
    "NOT_FOUND": "Requested API cannot be found",
    "INTERNAL_ERROR": "Internal server error",
}

router = APIRouter(prefix="/accuauth")


async def read_form(request: Request, body: bytes) -> dict[str, Any]:
    """AccuAuth body fields from form-encoded, multipart or JSON (docs/vendors/accuauth.md)."""
    content_type = (request.headers.get("content-type") or "").lower()
    if content_type.startswith("application/json"):
        value = json_object(body)
        return value or {}
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    return dict(parse_qsl(body.decode("utf-8", "replace")))


def error_answer(state: SandboxState, status: str, reason: str | None = None) -> tuple[int, dict[str, Any]]:
    """HTTP status and body of an AccuAuth error ``status`` (``INVALID_ARGUMENT``, ``PENDING`` ...)."""
    payload = {"status": status, "reason": reason or ACCUAUTH_REASONS.get(status, status)}
    payload["request_id"] = f"TID{state.new_hex_id()}"
    return ACCUAUTH_STATUS_HTTP.get(status, 400), payload


async def admit(call: VendorCall) -> tuple[Response | None, FaultRule | None, dict[str, Any]]:
    """Faults and credentials come before the body is looked at: the refusal answered instead
    of processing, or None with the ``lost`` fault to apply after processing and the fields."""
    refusal, lost = await _refusal(call)
    if refusal is not None:
        return call.answer(*refusal), None, {}
    return None, lost, await read_form(call.request, call.body)


async def _refusal(call: VendorCall) -> tuple[tuple[int, dict[str, Any]] | None, FaultRule | None]:
    """A refusal to answer instead of processing (fault or credentials), and a ``lost``
    fault to apply to the answer after processing."""
    state, headers = call.state, call.request.headers
    fault = await call.apply_faults()
    lost = None
    if fault is not None:
        if fault.kind == "lost":
            lost = fault
        elif fault.kind == "rate_limit":
            return error_answer(state, "RATE_LIMIT_EXCEEDED"), None
        elif fault.kind == "code":
            return error_answer(state, fault.accuauth_status or "INTERNAL_ERROR"), None
        else:
            return ((fault.status or 500), error_answer(state, "INTERNAL_ERROR")[1]), None
    api_id = headers.get("x-df-api-id")
    if api_id and api_id == state.config.accuauth_expired_api_id:
        return error_answer(state, "KEY_EXPIRED"), None
    secret = headers.get("x-df-api-secret") or ""
    if api_id != state.config.accuauth_api_id or not hmac.compare_digest(
        secret.encode(), state.config.accuauth_api_secret.encode()
    ):
        return error_answer(state, "UNAUTHORIZED"), None
    return None, lost


def echo(state: SandboxState, phone: str) -> str:
    """How the vendor writes a number back. The documents' only example is ``0062...``:
    strict echoes ``00`` + country code, default echoes what was sent."""
    return "00" + phone if state.strict else phone


def check_result(state: SandboxState, phone: str) -> dict[str, str]:
    """The ``result`` of a finished check (submit or task result)."""
    return {"phone_number": echo(state, phone), "phone_status": outcomes.accuauth_phone_status(phone)}


def finish_task(state: SandboxState, task: AccuAuthTask) -> None:
    """Finish a pending task and send its callback (also called by the app's task ticker)."""
    state.finish_task(task, outcomes.accuauth_phone_status(task.phone), echo(state, task.phone))


def charge(state: SandboxState, phone: str, ref: str) -> None:
    state.charges.append({"vendor": "accuauth", "phone": phone, "ref": ref, "at_ms": state.clock.now_ms()})


async def lose_answer(call: VendorCall, fault: FaultRule, status: int, payload: dict[str, Any]) -> Response:
    """The call was processed (and charged); its answer never reaches the client intact."""
    if fault.status:
        lost_status, lost_payload = fault.status, error_answer(call.state, "INTERNAL_ERROR")[1]
        call.record(lost_status, lost_payload)
        return JSONResponse(lost_payload, status_code=lost_status)
    call.record(0, {"lost": True, "would_have_answered": payload})
    if fault.delay_s:
        await asyncio.sleep(fault.delay_s)
    full = json.dumps(payload).encode()
    return TruncatedAnswer(
        full[: len(full) // 2], len(full), "sandbox: answer lost after processing (fault 'lost')"
    )


@router.post("/check/phone_number/o1")
async def submit(request: Request, state: Sandbox) -> Response:
    call = VendorCall(state, request, "accuauth.submit", await request.body())
    refusal, lost, form = await admit(call)
    if refusal is not None:
        return refusal
    phone, callback = form.get("phone_number"), form.get("callback") or None
    if not phone:
        return call.answer(*error_answer(state, "INVALID_ARGUMENT", "argument 'phone_number': not found"))
    if not isinstance(phone, str) or not PHONE_RE.match(phone) or len(phone) < 8:
        return call.answer(*error_answer(state, "INVALID_ARGUMENT", "argument 'phone_number': invalid"))
    if callback is not None and not is_http_url(callback):
        return call.answer(*error_answer(state, "INVALID_ARGUMENT", "argument 'callback': invalid URL"))
    cfg = state.config
    request_id = f"TID{state.new_hex_id()}"
    polls = cfg.accuauth_pending_polls
    if polls is None and cfg.accuauth_pending_seconds is None:
        polls = outcomes.accuauth_pending_polls(phone)
    seconds = cfg.accuauth_pending_seconds
    if seconds is None:
        seconds = (polls or 0) * cfg.accuauth_seconds_per_poll
    if not polls and seconds <= 0:
        charge(state, phone, request_id)
        status, payload = (
            200,
            {"request_id": request_id, "status": "OK", "result": check_result(state, phone)},
        )
    else:
        now = state.clock.now()
        task = AccuAuthTask(
            task_id=state.new_hex_id(),
            request_id=request_id,
            phone=phone,
            callback=callback,
            created_at=now,
            ready_at=now + seconds if seconds > 0 else None,
            polls_limit=polls or None,
        )
        state.tasks[task.task_id] = task
        charge(state, phone, task.task_id)
        # The documents do not show the status of a pending submit: strict says PENDING (HTTP 400).
        if state.strict:
            status = 400
            payload = {"request_id": request_id, "status": "PENDING", "reason": "check in progress"}
            payload["task_id"] = task.task_id
        else:
            status, payload = 200, {"request_id": request_id, "status": "OK", "task_id": task.task_id}
    if lost is not None:
        return await lose_answer(call, lost, status, payload)
    return call.answer(status, payload)


@router.post("/check/phone_number/task_result/o1")
async def task_result(request: Request, state: Sandbox) -> Response:
    call = VendorCall(state, request, "accuauth.task_result", await request.body())
    refusal, _, form = await admit(call)  # the ``lost`` fault is played on submits only
    if refusal is not None:
        return refusal
    task_id = form.get("task_id")
    if not task_id:
        return call.answer(*error_answer(state, "INVALID_ARGUMENT", "argument 'task_id': not found"))
    state.accuauth_polls_seen += 1
    if state.strict and state.accuauth_polls_seen % 3 == 0:
        # the documents list 500 INTERNAL_ERROR without saying when: strict answers every third poll with it
        return call.answer(500, error_answer(state, "INTERNAL_ERROR")[1])
    task = state.tasks.get(task_id)
    now = state.clock.now()
    expired = task is not None and now - task.created_at > state.config.accuauth_task_ttl_s
    if task is None or expired:
        # What an unknown or expired task id gets is undocumented: strict answers 404 NOT_FOUND,
        # the status the documents give to an unknown API.
        if state.strict:
            return call.answer(*error_answer(state, "NOT_FOUND", "task not found"))
        reason = (
            "argument 'task_id': expired (a task id is valid for 24 hours)"
            if expired
            else "argument 'task_id': no such task"
        )
        return call.answer(*error_answer(state, "INVALID_ARGUMENT", reason))
    if not task.finished:
        time_done = task.ready_at is not None and now >= task.ready_at
        polls_done = task.polls_limit is not None and task.polls_answered >= task.polls_limit
        if time_done or polls_done:
            finish_task(state, task)
        else:
            task.polls_answered += 1
            return call.answer(*error_answer(state, "PENDING", "check in progress"))
    payload = {
        "status": "OK",
        "result": check_result(state, task.phone),
        "request_id": f"TID{state.new_hex_id()}",
    }
    return call.answer(200, payload)


# Registered last: every other path under /accuauth is the vendor's 404 NOT_FOUND.
@router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
async def unknown(path: str, request: Request, state: Sandbox) -> Response:
    call = VendorCall(state, request, "accuauth.unknown", await request.body())
    return call.answer(*error_answer(state, "NOT_FOUND"))
