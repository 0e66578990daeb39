"""What every vendor router shares: the run state as a dependency, the call log, faults, bodies.

The routers (:mod:`~phonecheck.sandbox.nxcloud`, :mod:`~phonecheck.sandbox.accuauth`,
:mod:`~phonecheck.sandbox.control`) are plain module-level handlers; they reach the one
:class:`~phonecheck.sandbox.state.SandboxState` of their app through the :data:`Sandbox`
dependency, so a second app in the same process (tests, bench) has its own run.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response

from phonecheck.sandbox.faults import Decision, FaultRule
from phonecheck.sandbox.state import SandboxState

# A phone number as the vendors take it on the wire: digits only.
PHONE_RE = re.compile(r"^\d{1,20}$")
MASKED = "***"


def sandbox_state(request: Request) -> SandboxState:
    """The run state of the app serving ``request`` (set by :func:`phonecheck.sandbox.app.create_app`)."""
    return request.app.state.sandbox


Sandbox = Annotated[SandboxState, Depends(sandbox_state)]


@dataclass
class VendorCall:
    """One vendor request being answered: every answer goes through here so that the call log
    (``GET /_sandbox/calls``) holds each call exactly once, with its secrets masked."""

    state: SandboxState
    request: Request
    event: str  # the fault target, e.g. "nxcloud.check" (see phonecheck.sandbox.faults)
    body: bytes  # exactly as received: NXCLOUD signs these bytes

    def record(self, status: int | None, payload: Any) -> None:
        """Log the call: path, headers incl. ts/sign, body, and what was (or would have been) answered."""
        headers = {
            k: (MASKED if k.lower() == "x-df-api-secret" else v) for k, v in self.request.headers.items()
        }
        body_text = self.body.decode("utf-8", errors="replace")
        if "secretkey=" in body_text:
            body_text = re.sub(r"(^|&)secretkey=[^&]*", rf"\1secretkey={MASKED}", body_text)
        self.state.call_counts[self.event] += 1
        self.state.calls.append(
            {
                "seq": self.state.next_seq(),
                "at_ms": self.state.clock.now_ms(),
                "event": self.event,
                "method": self.request.method,
                "path": self.request.url.path,
                "query": self.request.url.query,
                "headers": headers,
                "body": body_text,
                "status": status,
                "answer": payload,
            }
        )

    def answer(self, status: int, payload: Any) -> Response:
        """Answer ``payload`` as JSON with HTTP ``status`` and log the call."""
        self.record(status, payload)
        return JSONResponse(payload, status_code=status)

    def cut_off(self) -> Response:
        """The connection closes before the answer is complete (the client sees no answer)."""
        self.record(None, "connection closed")
        return TruncatedAnswer(b'{"code":', 64, "sandbox fault: connection closed mid-answer")

    def decide_faults(self) -> Decision:
        """The faults for this call: run rules plus its ``X-Sandbox-Fault`` header; a header that
        does not parse injects nothing (the call is answered as if it had none)."""
        try:
            return self.state.faults.decide(self.event, self.request.headers.get("x-sandbox-fault"))
        except ValueError:
            return Decision()

    async def apply_faults(self) -> FaultRule | None:
        """Wait out any ``slow`` fault, then return the one other fault to answer with, if any."""
        decision = self.decide_faults()
        if decision.delay_s:
            await asyncio.sleep(decision.delay_s)
        return decision.fault


class TruncatedAnswer(Response):
    """Starts a 200 answer that promises ``promised_length`` bytes, sends only ``sent`` of them,
    then drops the connection: the client sees an incomplete read, never an answer."""

    def __init__(self, sent: bytes, promised_length: int, reason: str) -> None:
        super().__init__(status_code=200)
        self.sent, self.promised_length, self.reason = sent, promised_length, reason

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(self.promised_length).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.sent, "more_body": True})
        raise ConnectionAbortedError(self.reason)


def json_object(body: bytes) -> dict[str, Any] | None:
    """``body`` parsed as a JSON object; None when it is not JSON or not an object."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
