"""NXCLOUD as the sandbox plays it, under ``/nxcloud``: number check submit and query API, the
legacy voice API, and the pushes they send (number-check results, voice receipts, PNS call records).

The wire contract is the package docstring (:mod:`phonecheck.sandbox`); where the vendor
documents leave a behaviour open, the strict profile's side is in docs/sandbox.md.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import math
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response

from phonecheck import signing
from phonecheck.sandbox import outcomes
from phonecheck.sandbox.faults import Decision, FaultRule
from phonecheck.sandbox.ledger import NumberCheckBatch, select_rows
from phonecheck.sandbox.state import PushJob, SandboxState
from phonecheck.sandbox.wire import PHONE_RE, Sandbox, VendorCall, is_http_url, json_object

NUMBER_CHECK_BIZ_TYPE, NUMBER_CHECK_ACTION = "1", "numbercheck"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# The strict profile's vendor day (query ``date``, stored results): the vendor is in China.
_SHANGHAI = ZoneInfo("Asia/Shanghai")

router = APIRouter(prefix="/nxcloud")


def _nx(code: int, msg: str, data: Any = None) -> dict[str, Any]:
    """An NXCLOUD answer body; every vendor code goes out with HTTP 200."""
    return {"code": code, "msg": msg, "data": {} if data is None else data}


def fault_answer(fault: FaultRule) -> tuple[int, dict[str, Any]]:
    """HTTP status and body of an injected fault (see :mod:`phonecheck.sandbox.faults`)."""
    if fault.kind == "rate_limit":
        return fault.status or 429, _nx(429, "Too many requests (sandbox fault)")
    if fault.kind == "code":
        return fault.status or 200, _nx(fault.code or 299, f"sandbox fault: code {fault.code or 299}")
    return fault.status or 500, _nx(299, "system error (sandbox fault)")


def verify_signature(
    state: SandboxState, request: Request, body: bytes, biz_type: str, action: str
) -> dict[str, Any] | None:
    """Check the four signing headers, ts window and sign; the vendor code on failure."""
    headers = request.headers
    config = state.config
    needed = ("accessKey", "ts", "bizType", "action", "sign")
    missing = [name for name in needed if not headers.get(name)]
    if missing:
        return _nx(1001, f"missing required header(s): {', '.join(missing)}")
    credentials = {config.nxcloud_access_key: config.nxcloud_access_secret}
    credentials.update(config.nxcloud_extra_credentials)
    secret = credentials.get(headers["accessKey"])
    if secret is None:
        return _nx(1005, "accessKey is not valid or has no permission for this business")
    ts = headers["ts"]
    if not ts.isdigit() or abs(int(ts) - state.clock.now_ms()) > config.ts_window_s * 1000:
        return _nx(1004, "ts is not within 60 seconds of the server time (milliseconds)")
    algorithm = (headers.get("algorithm") or "md5").lower()
    if algorithm not in ("md5", "sha256"):
        return _nx(1002, "algorithm must be md5 or sha256")
    try:
        body_text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _nx(1003, "sign verification failed")
    signed = {name: headers[name] for name in signing.SIGNED_HEADER_NAMES}
    json_body = (headers.get("content-type") or "").lower().startswith("application/json")
    expected = signing.sign(signed, body_text, secret, algorithm, json_body=json_body)  # type: ignore[arg-type]
    if not hmac.compare_digest(expected, headers["sign"].lower()):
        return _nx(1003, "sign verification failed")
    if headers["bizType"] != biz_type or headers["action"] != action:
        return _nx(1002, f"bizType/action must be {biz_type}/{action} for this API")
    return None


def json_push(kind: str, url: str, document: dict[str, Any], **options: Any) -> PushJob:
    """A push of a JSON document (number-check results, PNS call records), serialised the one
    way we sign and send JSON (:func:`phonecheck.signing.canonical_json`)."""
    body = signing.canonical_json(document).encode("utf-8")
    return PushJob(kind=kind, url=url, body=body, content_type="application/json", **options)


def appkey_problem(state: SandboxState, appkey: Any) -> dict[str, Any] | None:
    if appkey == state.config.nxcloud_foreign_appkey:
        return _nx(210, "appkey belongs to a different customer than the accessKey")
    if appkey != state.config.nxcloud_appkey:
        return _nx(202, "application not available or incorrect appkey")
    return None


# ---- number check --------------------------------------------------------------------------
# Strict profile (docs/sandbox.md): a faulty submit answer (error, slow, disconnect) comes
# AFTER the batch was accepted and charged; a resubmitted batchNo is charged again; the
# query API lists a batch only minutes after its submit, in the shape of the vendor's own
# example rows; code 88 texts are Chinese; query dates are Asia/Shanghai days.
def vendor_day(state: SandboxState, at: float | None = None) -> dt.date:
    tz = _SHANGHAI if state.strict else dt.UTC
    return dt.datetime.fromtimestamp(state.clock.now() if at is None else at, tz).date()


def refusal_88(state: SandboxState, english: str, chinese: str) -> dict[str, Any]:
    return _nx(88, chinese if state.strict else english)


@router.post("/api/number/check")
async def number_check_submit(request: Request, state: Sandbox) -> Response:
    call = VendorCall(state, request, "nxcloud.check", await request.body())
    decision = call.decide_faults()
    fault = decision.fault
    # strict: a 5xx, a slow answer or a dropped connection is the vendor's, after charging;
    # refusals (rate limit, codes) are answered before anything is done in both profiles
    after = state.strict and (fault is None or fault.kind in ("error", "disconnect"))
    generation = state.generation

    if not after and (lost := await _submit_fault_answer(call, decision, generation)) is not None:
        return lost  # default: the fault comes before the vendor did anything
    problem = verify_signature(state, request, call.body, NUMBER_CHECK_BIZ_TYPE, NUMBER_CHECK_ACTION)
    accepted: dict[str, Any] = {}
    if problem is None:
        problem, accepted = submit_batch(state, request, call.body)
    if after and (lost := await _submit_fault_answer(call, decision, generation)) is not None:
        return lost  # strict: processed and charged, then the answer is lost
    return call.answer(200, accepted if problem is None else problem)


async def _submit_fault_answer(call: VendorCall, decision: Decision, generation: int) -> Response | None:
    """The submit's faulty answer (after any ``slow`` wait), or None to answer normally."""
    if decision.delay_s:
        await asyncio.sleep(decision.delay_s)
        if generation != call.state.generation:  # reset meanwhile: belongs to no run any more
            return Response(status_code=503)
    fault = decision.fault
    if fault is None:
        return None
    if fault.kind == "disconnect":
        return call.cut_off()
    return call.answer(*fault_answer(fault))


def submit_batch(
    state: SandboxState, request: Request, body: bytes
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Accept a signed submit: (vendor refusal, {}) or (None, the answer); charges and pushes."""
    cfg = state.config
    payload = json_object(body)
    if payload is None:
        return _nx(201, "request body must be a JSON object"), {}
    if not payload.get("appkey"):
        return _nx(201, "appkey is required"), {}
    if (problem := appkey_problem(state, payload["appkey"])) is not None:
        return problem, {}
    phone_field = payload.get("phone")
    if not isinstance(phone_field, str) or not phone_field.strip():
        return _nx(201, "phone is required (comma-separated numbers)"), {}
    phones = [p.strip() for p in phone_field.split(",") if p.strip()]
    if len(phones) > cfg.max_numbers_per_submit:
        return _nx(201, f"phone: at most {cfg.max_numbers_per_submit} numbers per request"), {}
    level = payload.get("checkLevel", outcomes.CHECK_LEVEL_BASIC)
    if isinstance(level, bool) or not isinstance(level, int):
        return _nx(201, "checkLevel must be an integer"), {}
    if level not in outcomes.CHECK_LEVELS:
        return _nx(207, "invalid checkLevel (1 basic, 4 call, 5 HLR)"), {}
    batch_no = payload.get("batchNo")
    if batch_no is None or batch_no == "":
        batch_no = f"{state.rng.randrange(10**11, 10**12)}"
    if not isinstance(batch_no, str):
        return _nx(201, "batchNo must be a string"), {}
    if len(batch_no) > 64:
        return _nx(212, "batchNo is longer than 64 characters"), {}
    dr_url = payload.get("drUrl")
    if dr_url not in (None, "") and not is_http_url(dr_url):
        return _nx(201, "drUrl must be an http(s) URL"), {}
    shape = request.headers.get("x-sandbox-push-shape") or cfg.push_shape
    if shape not in ("2023", "2024"):
        return _nx(201, "X-Sandbox-Push-Shape must be 2023 or 2024"), {}
    known = state.batches.get((payload["appkey"], batch_no))
    if known is not None and not state.strict:
        return None, known  # default: a repeated batchNo is the same batch: not charged again

    request_id = state.new_hex_id()
    now = state.clock.now()
    skipped = frozenset(
        index
        for index, phone in enumerate(phones, start=1)
        if shape == "2024" and outcomes.nxcloud_failure_code(phone, level) == 114
    )
    fail_numbers = [
        {"number": phones[index - 1], "reason": outcomes.FAILURE_MESSAGES[114]} for index in sorted(skipped)
    ]
    batch = NumberCheckBatch(
        date=vendor_day(state, now).isoformat(), appkey=payload["appkey"], batch_no=batch_no,
        request_id=request_id, level=level, phones=phones, skipped=skipped,
        visible_at=now + (cfg.strict_query_lag_minutes * cfg.vendor_minute_s if state.strict else 0.0),
        at_ms=state.clock.now_ms(), example_rows=state.strict,
    )  # fmt: skip
    state.charges.append(batch)  # one entry per accepted number (GET /_sandbox/charges)
    state.results.append(batch)  # what the query API lists
    if dr_url and (count := len(phones) - len(skipped)):
        state.schedule_pushes(_result_pushes(dr_url, batch, shape), count, cfg.push_delay_s)
    if shape == "2024":
        data = {"requestId": request_id, "batchNo": batch_no, "failNumber": fail_numbers}
        accepted = {"code": 0, "message": "Success", "data": data, "traceId": state.new_hex_id()}
    else:
        accepted = {"code": 0, "msg": "success", "data": {"messageId": request_id, "batchNo": batch_no}}
    state.batches.setdefault((payload["appkey"], batch_no), accepted)
    return None, accepted


def _result_pushes(dr_url: str, batch: NumberCheckBatch, shape: str) -> Iterator[PushJob]:
    """The batch's result pushes, each built only when the sender takes it (memory stays flat)."""
    level, batch_no = batch.level, batch.batch_no
    for phone, message_id in batch.numbers():
        if shape == "2024":
            push = outcomes.nxcloud_result_2024(phone, level, batch_no=batch_no, request_id=message_id)
        else:
            push = outcomes.nxcloud_result(phone, level, batch_no=batch_no, message_id=message_id)
        meta = {"batch_no": batch_no, "phone": phone, "message_id": message_id}
        yield json_push("number_check", dr_url, push, meta=meta)


@router.post("/api/number/query")
async def number_check_query(request: Request, state: Sandbox) -> Response:
    call = VendorCall(state, request, "nxcloud.query", await request.body())
    fault = await call.apply_faults()
    if fault is not None:
        return call.answer(*fault_answer(fault))
    problem = verify_signature(state, request, call.body, NUMBER_CHECK_BIZ_TYPE, NUMBER_CHECK_ACTION)
    result = problem if problem is not None else query_results(state, request.headers["accessKey"], call.body)
    return call.answer(200, result)


def query_results(state: SandboxState, access_key: str, body: bytes) -> dict[str, Any]:
    """The query API's answer to a signed request: a code 88 refusal or a page of rows."""
    cfg = state.config
    interval = state.query_min_interval_s
    if interval > 0:
        # measured between arrivals of accepted calls, per accessKey; a refused call does not
        # move the window (the vendor documents the limit, not how it counts refusals)
        now = asyncio.get_running_loop().time()
        last = state.last_query_at.get(access_key)
        if last is not None and now - last < interval:
            state.query_refusals += 1
            return refusal_88(
                state,
                f"Request too frequent: at most one query every {interval:g} s",
                f"请求过于频繁，每{interval:g}秒最多查询一次",
            )
        state.last_query_at[access_key] = now
    payload = json_object(body)
    if payload is None:
        return refusal_88(state, "request body must be a JSON object", "请求体必须是JSON对象")
    page, page_size = payload.get("page"), payload.get("pageSize")
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        return refusal_88(state, "page is required: an integer from 1", "参数page不能为空，从1开始")
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 100:
        return refusal_88(
            state, "pageSize is required: an integer from 1 to 100", "参数pageSize不能为空，取值1到100"
        )
    date = payload.get("date")
    try:
        if not isinstance(date, str) or not _DATE_RE.match(date):
            raise ValueError(date)
        day = dt.date.fromisoformat(date)
    except ValueError:
        return refusal_88(state, "Incorrect date format [yyyy-MM-dd]", "日期格式不正确[yyyy-MM-dd]")
    today = vendor_day(state)
    if not 0 <= (today - day).days <= cfg.query_window_days:
        return refusal_88(
            state,
            f"date out of range: only the last {cfg.query_window_days} days can be queried",
            f"日期超出范围：只能查询最近{cfg.query_window_days}天",
        )
    batch_no = payload.get("batchNo") or None
    message_id = payload.get("messageId") or payload.get("requestId") or None
    if batch_no is None and message_id is None:
        return refusal_88(
            state, "batchNo and messageId cannot be empty at the same time", "batchNo和messageId不能同时为空"
        )
    appkey = payload.get("appkey")
    if appkey not in (None, "") and (problem := appkey_problem(state, appkey)) is not None:
        return problem
    rows, total = select_rows(
        state.results, date=date, now=state.clock.now(), batch_no=batch_no, message_id=message_id,
        phone=payload.get("phone") or None, appkey=appkey, page=page, page_size=page_size,
    )  # fmt: skip
    data = {
        "result": rows,
        "totalSize": total,
        "totalPage": math.ceil(total / page_size),
        "pageSize": page_size,
        "page": page,
    }
    return {"msg": "Request successful", "code": 0, "data": data}


# ---- voice (legacy form API) ---------------------------------------------------------------
@router.post("/api/voiceSms/{operation}")
async def voice_send(operation: str, request: Request, state: Sandbox) -> Response:
    call = VendorCall(state, request, "nxcloud.voice", await request.body())
    fault = await call.apply_faults()
    if fault is not None:
        status, payload = fault_answer(fault)
        # the legacy API's own shape: "result" text and a string code
        return call.answer(status, {"result": payload["msg"], "code": str(payload["code"])})
    form = dict(parse_qsl(call.body.decode("utf-8", "replace")))
    return call.answer(200, voice_submit(state, operation, request, form))


def voice_submit(
    state: SandboxState, operation: str, request: Request, form: dict[str, str]
) -> dict[str, Any]:
    """Validate a voice send like the vendor does; on success schedule one receipt per phone."""
    cfg = state.config

    def error(code: str, text: str) -> dict[str, Any]:
        return {"result": text, "code": code}

    if operation not in ("gpsend", "notsend", "versend"):
        return error("2", f"unknown voice operation {operation!r}")
    if form.get("appkey") != cfg.nxcloud_appkey or form.get("secretkey") != cfg.nxcloud_voice_secretkey:
        return error("1", "appkey or secretkey is wrong")
    phones = [p.strip() for p in form.get("phone", "").split(",") if p.strip()]
    if not phones:
        return error("2", "phone is required")
    if operation == "versend" and len(phones) != 1:
        return error("2", "versend takes exactly one phone")
    if len(phones) > 100:
        return error("7", "more than 100 numbers")
    country_code = form.get("country_code", "")
    if not country_code.isdigit():
        return error("23", "country_code is missing or not digits")
    if not all(PHONE_RE.match(p) and len(p) >= 6 for p in phones):
        return error("6", "bad phone number")
    if operation == "gpsend" and not form.get("url"):
        return error("20", "url is required")
    if operation != "gpsend" and not form.get("content"):
        return error("4", "content is empty")
    message_id = state.new_hex_id()
    dr_url = request.headers.get("x-sandbox-dr-url") or cfg.voice_dr_url
    if dr_url:
        for phone in phones:
            fields = voice_receipt(state, operation, phone, country_code, message_id, form.get("ext"))
            body, content_type = voice_receipt_body(state, fields)
            job = PushJob(
                kind="voice_receipt",
                url=dr_url,
                body=body,
                content_type=content_type,
                retry=False,  # the vendor pushes a voice DR exactly once
                accept=lambda r: r.status_code == 200 and r.text.strip() == "success",
                meta={"message_id": message_id, "phone": phone},
            )
            state.schedule_push(job, cfg.push_delay_s)
    return {"result": "Success", "messageid": message_id, "code": "0"}


def voice_receipt_body(state: SandboxState, fields: dict[str, str]) -> tuple[bytes, str]:
    """The receipt as the vendor posts it: "form data" (docs/receiver.md). Strict:
    ``multipart/form-data`` with a decimal ``second`` and ``cycle`` (typed "number");
    default: urlencoded, integers."""
    if not state.strict:
        return urlencode(fields).encode("ascii"), "application/x-www-form-urlencoded"
    fields = {**fields, "second": f"{fields['second']}.5", "cycle": f"{fields['cycle']}.0"}
    boundary = f"----sandbox{state.new_hex_id()}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    body = ("".join(parts) + f"--{boundary}--\r\n").encode("utf-8")
    return body, f"multipart/form-data; boundary={boundary}"


def voice_receipt(
    state: SandboxState, operation: str, phone: str, country_code: str, message_id: str, ext: str | None
) -> dict[str, str]:
    """One voice receipt's fields in the NXCLOUD voice-receipt doc's order."""
    outcome = outcomes.voice_outcome(phone)
    duration = int(outcome["duration"])
    start = dt.datetime.fromtimestamp(int(state.clock.now()), dt.UTC)
    fmt = "%Y-%m-%d %H:%M:%S"
    fields: dict[str, str] = {
        "phone": phone,
        "countryCode": country_code,
        "duration": str(duration),
        "voice_type": "0" if operation == "gpsend" else "1",
        "messageid": message_id,
    }
    if operation == "gpsend":
        fields["basic_price"] = "0.005"
    fields.update(
        {"second": str(duration), "cycle": "60", "size": str(math.ceil(duration / 60))}
        | {"customer_price": outcomes.voice_price(phone)}
    )
    if operation == "versend":
        fields["record_url"] = f"https://sandbox.invalid/voice/{message_id}/{phone}.mp3" if duration else ""
    fields.update(
        {
            "start_time": start.strftime(fmt),
            "end_time": (start + dt.timedelta(seconds=duration)).strftime(fmt),
            "result": outcome["result"],
            "hangup_cause": outcome["hangup_cause"],
            "hangup_disposition": outcome["hangup_disposition"],
        }
    )
    if operation == "gpsend":
        fields["ivr_result"] = ""
    elif ext is not None:
        fields["ext"] = ext
    return fields
