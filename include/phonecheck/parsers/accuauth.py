"""AccuAuth phone status payloads (docs/vendors/accuauth.md): submit answers, task results,
callbacks. ``PENDING`` (answered with HTTP 400) is a state, not an error.

``e164`` always derives from the number WE sent; the number the vendor writes back (its only
documented example is ``0062********``) is kept as received in ``echoed_number`` and never used
to identify the number."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from phonecheck.numbers import to_e164
from phonecheck.parsers import PayloadError, opt_str, require_str


def _result(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    result = payload.get("result")
    if result is None:
        return {}
    if not isinstance(result, Mapping):
        raise PayloadError("result: expected an object")
    return result


def parse_submit_response(
    payload: Mapping[str, Any], phone_number: str, submitted_at: datetime | None = None
) -> dict[str, Any]:
    """The answer to ``/check/phone_number/o1``: either a result at once (row keyed on its
    request_id) or a ``task_id`` to wait for (row in status PENDING)."""
    if not isinstance(payload, Mapping):
        raise PayloadError("expected a JSON object")
    request_id = opt_str(payload.get("request_id"))
    task_id = opt_str(payload.get("task_id"))
    result = _result(payload)
    status = require_str(payload, "status")
    if result:
        key, status_out = task_id or request_id, status
    elif task_id:
        key, status_out = task_id, "PENDING"
    else:
        raise PayloadError("answer has neither result nor task_id")
    if not key:
        raise PayloadError("answer has no request_id/task_id to key the check on")
    return {
        "task_id": key,
        "request_id": request_id,
        "phone_number": phone_number,
        "echoed_number": opt_str(result.get("phone_number")),
        "e164": to_e164(phone_number),
        "status": status_out,
        "reason": opt_str(payload.get("reason")),
        "phone_status": opt_str(result.get("phone_status")),
        "submitted_at": submitted_at,
        "completed_at": submitted_at if result else None,
        "source": "submit",
    }


def parse_task_result(
    payload: Mapping[str, Any], task_id: str, phone_number: str, polled_at: datetime | None = None
) -> dict[str, Any]:
    """The answer to ``task_result/o1`` for ``task_id``: OK with a result, or PENDING."""
    if not isinstance(payload, Mapping):
        raise PayloadError("expected a JSON object")
    status = require_str(payload, "status")
    result = _result(payload)
    return {
        "task_id": task_id,
        "request_id": opt_str(payload.get("request_id")),
        "phone_number": phone_number,
        "echoed_number": opt_str(result.get("phone_number")),
        "e164": to_e164(phone_number),
        "status": status,
        "reason": opt_str(payload.get("reason")),
        "phone_status": opt_str(result.get("phone_status")),
        "completed_at": polled_at if status == "OK" else None,
        "source": "poll",
    }


def parse_callback(params: Mapping[str, str], received_at: datetime | None = None) -> dict[str, Any]:
    """The AccuAuth callback (HTTP GET, query params request_id, phone_number, phone_status,
    task_id) for a pending check that finished.

    The callback only carries the vendor's echo of the number. ``e164`` read from it is
    provisional, for a task we have no submission row for yet: the loader never lets a callback
    replace a known ``e164`` or ``phone_number``, and the AccuAuth load step sets both from our
    submission (``phonecheck.accuauth.store.fix_numbers_from_submissions``)."""
    phone = require_str(params, "phone_number")
    return {
        "task_id": require_str(params, "task_id"),
        "request_id": opt_str(params.get("request_id")),
        "phone_number": phone,
        "echoed_number": phone,
        "e164": echo_to_e164(phone),
        "status": "OK",
        "reason": None,
        "phone_status": require_str(params, "phone_status"),
        "completed_at": received_at,
        "source": "callback",
    }


def callback_dedupe_key(params: Mapping[str, str]) -> str:
    return require_str(params, "task_id")


def echo_to_e164(echoed: str | None) -> str | None:
    """The E.164 a vendor echo most likely stands for (``0052...``, ``+52...``, ``52...``), used
    only to MATCH a callback to a number we sent; None when it cannot be a number (masked)."""
    if not echoed:
        return None
    digits = echoed.strip()
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    return to_e164(digits) if digits.isdigit() else None
