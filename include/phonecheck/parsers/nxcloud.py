"""NXCLOUD payloads: number check pushes (NXCLOUD result-push doc + 2024 shape), query rows (NXCLOUD query-API doc),
voice receipts (NXCLOUD voice-receipt doc) and PNS call records (NXCLOUD call-record doc flat + 2024 ``legList`` shape)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from phonecheck.enums import SUBMITTABLE_CHECK_LEVELS
from phonecheck.numbers import to_e164
from phonecheck.parsers import (
    PayloadError,
    epoch_seconds_to_datetime,
    flag,
    opt_decimal,
    opt_int,
    opt_str,
    opt_text,
    require_str,
)

#: Vendor-local timezone of voice receipt start_time/end_time strings. The vendor does not say;
#: NXCLOUD's platform runs on China Standard Time, so that is the default (configurable).
DEFAULT_VOICE_TIMEZONE = "Asia/Shanghai"
#: checkLevel values the number-check documents define (1 basic, 4 call, 5 HLR).
DOCUMENTED_CHECK_LEVELS = frozenset(SUBMITTABLE_CHECK_LEVELS.values())

# ---------------------------------------------------------------------------------------------
# number check
# ---------------------------------------------------------------------------------------------


def _as_mapping(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PayloadError(f"{field}: expected an object, got {type(value).__name__}")
    return value


def _number_check_common(payload: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(payload, Mapping):
        raise PayloadError(f"expected a JSON object, got {type(payload).__name__}")
    batch_no = require_str(payload, "batchNo")
    phone = require_str(payload, "phone")
    if len(batch_no) > 64:
        raise PayloadError("batchNo: longer than 64 characters")
    return {"batch_no": batch_no, "phone": phone, "e164": to_e164(phone)}


def parse_number_check_push(payload: Mapping[str, Any]) -> dict[str, Any]:
    """One result push (one number) in the seed shape or the 2024 shape, as a table row.

    Seed: ``messageId, code, msg, batchNo, phone, data{basic, live, dial}, cost``.
    2024: ``requestId, code, message, batchNo, phone, data{numberType, operator, country, mcc,
    mnc, ported, active} | null, cost`` (docs/vendors/nxcloud.md). ``checkLevel`` is not pushed.
    """
    row = _number_check_common(payload)
    code = opt_int(payload.get("code"), "code")
    if code is None:
        raise PayloadError("missing required field code")
    data = _as_mapping(payload.get("data"), "data")
    cost = _as_mapping(payload.get("cost"), "cost")
    basic = _as_mapping(data.get("basic"), "data.basic")
    live = _as_mapping(data.get("live"), "data.live")
    dial = _as_mapping(data.get("dial"), "data.dial")
    flat = not basic and any(k in data for k in ("numberType", "operator", "country"))
    number_type = (data if flat else basic).get("numberType")
    row.update(
        message_id=opt_text(payload.get("messageId", payload.get("requestId"))),
        check_level=None,
        code=code,
        msg=opt_text(payload.get("msg", payload.get("message"))),
        pre_check=opt_text(basic.get("preCheck")),
        region_code=opt_text(basic.get("regionCode") if not flat else data.get("country")),
        country_code=opt_text(basic.get("countryCode")),
        national_number=opt_text(basic.get("nationalNumber")),
        stand_number=opt_text(basic.get("standNumber")),
        number_type=opt_text(number_type),
        carrier=opt_text(basic.get("carrier") if not flat else data.get("operator")),
        validity=flag(live.get("validity")),
        reachable=flag(live.get("reachable")),
        roaming=flag(live.get("roaming")),
        early=flag(dial.get("early")),
        answered=flag(dial.get("answered")),
        response=opt_text(dial.get("response", dial.get("responseStatus"))),
        mcc=opt_text(data.get("mcc")) if flat else None,
        mnc=opt_text(data.get("mnc")) if flat else None,
        ported=flag(data.get("ported")) if flat else None,
        active=flag(data.get("active")) if flat else None,
        price=opt_decimal(cost.get("price"), "cost.price"),
        currency=opt_text(cost.get("currency")),
        source="push",
    )
    return row


def parse_query_row(item: Mapping[str, Any]) -> dict[str, Any]:
    """One ``data.result[]`` row of the query API (flat, with ``checkLevel``).

    ``vendor_check_level`` keeps the vendor's ``checkLevel`` as received. ``check_level`` starts
    out the same; the loader of our batches replaces a value outside
    :data:`DOCUMENTED_CHECK_LEVELS` by the level we submitted (the vendor's own example rows say
    ``2``, which no document defines).
    """
    row = _number_check_common(item)
    vendor_level = opt_int(item.get("checkLevel"), "checkLevel")
    row.update(
        message_id=opt_text(item.get("messageId", item.get("requestId"))),
        check_level=vendor_level,
        vendor_check_level=vendor_level,
        code=None,  # query rows carry no receipt code
        msg=None,
        pre_check=opt_text(item.get("preCheck")),
        region_code=opt_text(item.get("regionCode", item.get("country"))),
        country_code=opt_text(item.get("countryCode")),
        national_number=opt_text(item.get("nationalNumber")),
        stand_number=opt_text(item.get("standNumber")),
        number_type=opt_text(item.get("numberType")),
        carrier=opt_text(item.get("carrier", item.get("operator"))),
        validity=flag(item.get("validity")),
        reachable=flag(item.get("reachable")),
        roaming=flag(item.get("roaming")),
        early=flag(item.get("early")),
        answered=flag(item.get("answered")),
        response=opt_text(item.get("response")),
        mcc=opt_text(item.get("mcc")),
        mnc=opt_text(item.get("mnc")),
        ported=flag(item.get("ported")),
        active=flag(item.get("active")),
        price=opt_decimal(item.get("price"), "price"),
        currency=opt_text(item.get("currency")),
        source="query",
    )
    return row


def number_check_dedupe_key(payload: Mapping[str, Any]) -> str:
    """Dedupe key of a number check push: ``batchNo|phone|messageId`` (messageId may repeat
    across numbers, so the phone is part of the key; a retry repeats all three)."""
    if not isinstance(payload, Mapping):
        raise PayloadError(f"expected a JSON object, got {type(payload).__name__}")
    batch_no = require_str(payload, "batchNo")
    phone = require_str(payload, "phone")
    message_id = opt_str(payload.get("messageId", payload.get("requestId"))) or ""
    return f"{batch_no}|{phone}|{message_id}"


# ---------------------------------------------------------------------------------------------
# voice receipts
# ---------------------------------------------------------------------------------------------


def voice_timezone() -> ZoneInfo:
    name = os.environ.get("VOICE_RECEIPT_TIMEZONE", DEFAULT_VOICE_TIMEZONE)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PayloadError(f"VOICE_RECEIPT_TIMEZONE {name!r} is not a known timezone") from None


def parse_local_time(value: str | None, tz: ZoneInfo, field: str) -> datetime | None:
    """``yyyy-MM-dd HH:mm:ss`` in the vendor's local time to an aware datetime."""
    if value is None or value.strip() == "":
        return None
    text = value.strip().replace("+", " ")  # form encoders may leave '+' for spaces
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=tz)
        except ValueError:
            continue
    raise PayloadError(f"{field}: expected yyyy-MM-dd HH:mm:ss, got {value!r:.40}")


def parse_voice_receipt(fields: Mapping[str, str], tz: ZoneInfo | None = None) -> dict[str, Any]:
    """A voice DR (NXCLOUD voice-receipt doc), from form or query-string fields, as a table row."""
    tz = tz or voice_timezone()
    start_local = opt_str(fields.get("start_time"))
    end_local = opt_str(fields.get("end_time"))
    phone = require_str(fields, "phone")
    return {
        "message_id": require_str(fields, "messageid", "messageId"),
        "phone": phone,
        "country_code": opt_str(fields.get("countryCode", fields.get("country_code"))),
        "duration": opt_int(fields.get("duration"), "duration"),
        "voice_type": opt_str(fields.get("voice_type")),
        "basic_price": opt_decimal(fields.get("basic_price"), "basic_price"),
        # typed "number" by the vendor (docs/receiver.md): decimals are kept as sent
        "second": opt_decimal(fields.get("second"), "second"),
        "cycle": opt_decimal(fields.get("cycle"), "cycle"),
        "size": opt_int(fields.get("size"), "size"),
        "customer_price": opt_decimal(fields.get("customer_price"), "customer_price"),
        "start_time_local": start_local,
        "end_time_local": end_local,
        "start_time": parse_local_time(start_local, tz, "start_time"),
        "end_time": parse_local_time(end_local, tz, "end_time"),
        "result": opt_str(fields.get("result")),
        "hangup_cause": opt_str(fields.get("hangup_cause")),
        "hangup_disposition": opt_str(fields.get("hangup_disposition")),
        "ivr_result": opt_str(fields.get("ivr_result")),
        "record_url": opt_str(fields.get("record_url")),
        "ext": opt_str(fields.get("ext")),
        "e164": to_e164(phone),
        "source": "push",
    }


def voice_receipt_dedupe_key(fields: Mapping[str, str]) -> str:
    return f"{require_str(fields, 'messageid', 'messageId')}|{require_str(fields, 'phone')}"


# ---------------------------------------------------------------------------------------------
# PNS call records
# ---------------------------------------------------------------------------------------------


def _legs(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    legs = payload.get("legList")
    if legs is None:
        return []
    if not isinstance(legs, list) or not all(isinstance(leg, Mapping) for leg in legs):
        raise PayloadError("legList: expected a list of objects")
    return legs


def parse_call_record(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A PNS call record, flat (NXCLOUD call-record doc) or with ``legList`` (2024), as a table row.

    For the legList shape: start = earliest leg ``callStartAt``, answer = latest non-zero
    ``callAnswerAt``, hang-up = latest ``callFinishAt``; cause, code and hang-up party
    (``hangupType``) come from the leg that finished last; duration = the longest leg.
    """
    if not isinstance(payload, Mapping):
        raise PayloadError(f"expected a JSON object, got {type(payload).__name__}")
    call_id = require_str(payload, "callId")
    legs = _legs(payload)
    record_id = opt_str(payload.get("id")) or call_id
    if legs:

        def leg_int(leg: Mapping[str, Any], key: str) -> int | None:
            return opt_int(leg.get(key), f"legList.{key}")

        starts = [v for leg in legs if (v := leg_int(leg, "callStartAt"))]
        answers = [v for leg in legs if (v := leg_int(leg, "callAnswerAt"))]
        finishes = [(leg_int(leg, "callFinishAt") or 0, i) for i, leg in enumerate(legs)]
        last = legs[max(finishes)[1]]
        start_epoch = min(starts) if starts else None
        answer_epoch = max(answers) if answers else None
        hangup_epoch = max(f for f, _ in finishes) or None
        durations = [v for leg in legs if (v := leg_int(leg, "duration")) is not None]
        duration = opt_int(payload.get("duration"), "duration")
        if duration is None and durations:
            duration = max(durations)
        hangup_cause = opt_str(last.get("hangupCause"))
        hangup_code = leg_int(last, "hangupCode")
        hangup = leg_int(last, "hangupType")
        record_file = next((str(leg["callRecordFile"]) for leg in legs if leg.get("callRecordFile")), None)
    else:
        start_epoch = opt_int(payload.get("startAt"), "startAt")
        answer_epoch = opt_int(payload.get("answerAt"), "answerAt")
        hangup_epoch = opt_int(payload.get("hangupAt"), "hangupAt")
        duration = opt_int(payload.get("duration"), "duration")
        hangup_cause = opt_str(payload.get("hangupCause"))
        hangup_code = opt_int(payload.get("hangupCode"), "hangupCode")
        hangup = opt_int(payload.get("hangup"), "hangup")
        record_file = opt_str(payload.get("recordFile"))
    return {
        "record_id": record_id,
        "call_id": call_id,
        "business_id": opt_str(payload.get("businessId")),
        "customer_bind_id": opt_str(payload.get("customerBindId")),
        "bind_id": opt_str(payload.get("bindId")),
        "did": opt_str(payload.get("did")),
        "did_x": opt_str(payload.get("didX")),
        "did_y": opt_str(payload.get("didY")),
        "caller": opt_str(payload.get("caller")),
        "callee": opt_str(payload.get("callee")),
        "extension_caller": opt_str(payload.get("extensionCaller")),
        "extension_callee": opt_str(payload.get("extensionCallee")),
        "extension_x": opt_str(payload.get("extensionX")),
        "pns_type": opt_str(payload.get("pnsType")),
        "call_status": opt_str(payload.get("callStatus")),
        "call_status_msg": opt_str(payload.get("callStatusMsg")),
        "duration": duration,
        "start_at_epoch": start_epoch,
        "answer_at_epoch": answer_epoch,
        "hangup_at_epoch": hangup_epoch,
        "start_at": epoch_seconds_to_datetime(start_epoch),
        "answer_at": epoch_seconds_to_datetime(answer_epoch),
        "hangup_at": epoch_seconds_to_datetime(hangup_epoch),
        "hangup_cause": hangup_cause,
        "hangup_code": hangup_code,
        "hangup": hangup,
        "record_file": record_file,
        "ext": opt_str(payload.get("ext")),
        "leg_list": list(legs) if legs else None,
        "source": "push",
    }


def call_record_dedupe_key(payload: Mapping[str, Any]) -> str:
    """The record ``id`` (NXCLOUD call-record doc), or ``callId`` for the legList shape that has no id."""
    if not isinstance(payload, Mapping):
        raise PayloadError(f"expected a JSON object, got {type(payload).__name__}")
    record_id = opt_str(payload.get("id"))
    return record_id if record_id not in (None, "") else require_str(payload, "callId")
