"""The sandbox HTTP app: NXCLOUD under ``/nxcloud``, AccuAuth under ``/accuauth``, control under ``/_sandbox``.

See the package docstring (:mod:`phonecheck.sandbox`) for the wire contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import json
import math
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from phonecheck import signing
from phonecheck.enums import ACCUAUTH_STATUS_HTTP
from phonecheck.sandbox import outcomes
from phonecheck.sandbox.config import SandboxConfig
from phonecheck.sandbox.faults import Decision, FaultRule
from phonecheck.sandbox.state import AccuAuthTask, PushJob, SandboxState, StoredResult

NUMBER_CHECK_BIZ_TYPE, NUMBER_CHECK_ACTION = "1", "numbercheck"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PHONE_RE = re.compile(r"^\d{1,20}$")
_MASKED = "***"
# PNS call records under the strict profile: the 2024 revision retries twice, 5 minutes apart.
PNS_STRICT_RETRIES = 2
PNS_STRICT_RETRY_MINUTES = 5.0
ACCUAUTH_REASONS = {
    "UNAUTHORIZED": "Unauthorized or access is denied",
    "KEY_EXPIRED": "Your API ID has expired",
    "NO_PERMISSION": "You are not authorized to use this API",
    "OUT_OF_QUOTA": "API calls quota exceeded",
    "RATE_LIMIT_EXCEEDED": "API request frequency exceeds the limit",
    "NOT_FOUND": "Requested API cannot be found",
    "INTERNAL_ERROR": "Internal server error",
}


_SHANGHAI = ZoneInfo("Asia/Shanghai")


class _CutOffResponse(Response):
    """Sends the status line and half a body, then drops the connection."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"64")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"code":', "more_body": True})
        raise ConnectionAbortedError("sandbox fault: connection closed mid-answer")


def _nx(code: int, msg: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": {} if data is None else data}


class _DroppedAnswer(Response):
    """Starts a 200 answer, sends half of its body, then drops the connection: an answer lost
    after the vendor processed the call (the client sees an incomplete read)."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.full = body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self.full)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": self.full[: len(self.full) // 2], "more_body": True}
        )
        raise ConnectionAbortedError("sandbox: answer lost after processing (fault 'lost')")


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """Build the sandbox app. One app, one run state; ``POST /_sandbox/reset`` starts a new run."""
    state = SandboxState(config or SandboxConfig())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await state.start()
        ticker = asyncio.create_task(state.run_task_ticker(finish_accuauth_task))
        try:
            yield
        finally:
            ticker.cancel()
            await state.stop()

    app = FastAPI(title="phonecheck vendor sandbox (NXCLOUD + AccuAuth)", lifespan=lifespan)
    app.state.sandbox = state

    # ---- shared plumbing ---------------------------------------------------------------------
    async def answer(
        request: Request, event: str, body: bytes, status: int, payload: Any, *, text: bool = False
    ) -> Response:
        """Build the answer and record the call (path, headers incl. ts/sign, body, answer)."""
        if text:
            response: Response = PlainTextResponse(str(payload), status_code=status)
        else:
            response = JSONResponse(payload, status_code=status)
        headers = {k: (_MASKED if k.lower() == "x-df-api-secret" else v) for k, v in request.headers.items()}
        body_text = body.decode("utf-8", errors="replace")
        if "secretkey=" in body_text:
            body_text = re.sub(r"(^|&)secretkey=[^&]*", rf"\1secretkey={_MASKED}", body_text)
        state.calls.append(
            {
                "seq": state.next_seq(),
                "at_ms": state.clock.now_ms(),
                "event": event,
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": headers,
                "body": body_text,
                "status": status,
                "answer": payload,
            }
        )
        return response

    async def apply_faults(request: Request, event: str) -> FaultRule | None:
        try:
            decision = state.faults.decide(event, request.headers.get("x-sandbox-fault"))
        except ValueError:
            decision = Decision()
        if decision.delay_s:
            await asyncio.sleep(decision.delay_s)
        return decision.fault

    def nxcloud_fault_answer(fault: FaultRule) -> tuple[int, dict[str, Any]]:
        if fault.kind == "rate_limit":
            return fault.status or 429, _nx(429, "Too many requests (sandbox fault)")
        if fault.kind == "code":
            return fault.status or 200, _nx(fault.code or 299, f"sandbox fault: code {fault.code or 299}")
        return fault.status or 500, _nx(299, "system error (sandbox fault)")

    def verify_nxcloud(request: Request, body: bytes, biz_type: str, action: str) -> dict[str, Any] | None:
        """Check the four signing headers, ts window and sign; the vendor code on failure."""
        headers = request.headers
        needed = ("accessKey", "ts", "bizType", "action", "sign")
        missing = [name for name in needed if not headers.get(name)]
        if missing:
            return _nx(1001, f"missing required header(s): {', '.join(missing)}")
        credentials = {state.config.nxcloud_access_key: state.config.nxcloud_access_secret}
        credentials.update(state.config.nxcloud_extra_credentials)
        secret = credentials.get(headers["accessKey"])
        if secret is None:
            return _nx(1005, "accessKey is not valid or has no permission for this business")
        ts = headers["ts"]
        if not ts.isdigit() or abs(int(ts) - state.clock.now_ms()) > state.config.ts_window_s * 1000:
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

    def json_object(body: bytes) -> dict[str, Any] | None:
        try:
            value = json.loads(body)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def appkey_problem(appkey: Any) -> dict[str, Any] | None:
        if appkey == state.config.nxcloud_foreign_appkey:
            return _nx(210, "appkey belongs to a different customer than the accessKey")
        if appkey != state.config.nxcloud_appkey:
            return _nx(202, "application not available or incorrect appkey")
        return None

    # ---- NXCLOUD number check ----------------------------------------------------------------
    # Strict profile (docs/sandbox.md): a faulty submit answer (error, slow, disconnect) comes
    # AFTER the batch was accepted and charged; a resubmitted batchNo is charged again; the
    # query API lists a batch only minutes after its submit, in the shape of the vendor's own
    # example rows; code 88 texts are Chinese; query dates are Asia/Shanghai days.
    def strict() -> bool:
        return state.config.profile == "strict"

    def vendor_day(at: float | None = None) -> dt.date:
        tz = _SHANGHAI if strict() else dt.UTC
        return dt.datetime.fromtimestamp(state.clock.now() if at is None else at, tz).date()

    def refusal_88(english: str, chinese: str) -> dict[str, Any]:
        return _nx(88, chinese if strict() else english)

    async def cut_off(request: Request, event: str, body: bytes) -> Response:
        """The connection closes before the answer is complete (the client sees no answer)."""
        state.calls.append(
            {"seq": state.next_seq(), "at_ms": state.clock.now_ms(), "event": event, "method": request.method,
             "path": request.url.path, "query": request.url.query, "headers": dict(request.headers),
             "body": body.decode("utf-8", errors="replace"), "status": None, "answer": "connection closed"}
        )  # fmt: skip
        return _CutOffResponse()

    @app.post("/nxcloud/api/number/check")
    async def number_check_submit(request: Request) -> Response:
        event, body = "nxcloud.check", await request.body()
        try:
            decision = state.faults.decide(event, request.headers.get("x-sandbox-fault"))
        except ValueError:
            decision = Decision()
        fault = decision.fault
        # strict: a 5xx, a slow answer or a dropped connection is the vendor's, after charging;
        # refusals (rate limit, codes) are answered before anything is done in both profiles
        after = strict() and (fault is None or fault.kind in ("error", "disconnect"))

        generation = state.generation

        async def faulty_answer() -> Response | None:
            if decision.delay_s:
                await asyncio.sleep(decision.delay_s)
                if generation != state.generation:  # reset meanwhile: belongs to no run any more
                    return Response(status_code=503)
            if fault is None:
                return None
            if fault.kind == "disconnect":
                return await cut_off(request, event, body)
            return await answer(request, event, body, *nxcloud_fault_answer(fault))

        if not after and (lost := await faulty_answer()) is not None:
            return lost  # default: the fault comes before the vendor did anything
        problem = verify_nxcloud(request, body, NUMBER_CHECK_BIZ_TYPE, NUMBER_CHECK_ACTION)
        accepted: dict[str, Any] = {}
        if problem is None:
            problem, accepted = submit_batch(request, body)
        if after and (lost := await faulty_answer()) is not None:
            return lost  # strict: processed and charged, then the answer is lost
        return await answer(request, event, body, 200, accepted if problem is None else problem)

    def submit_batch(request: Request, body: bytes) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        cfg = state.config
        payload = json_object(body)
        if payload is None:
            return _nx(201, "request body must be a JSON object"), {}
        if not payload.get("appkey"):
            return _nx(201, "appkey is required"), {}
        if (problem := appkey_problem(payload["appkey"])) is not None:
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
        if dr_url not in (None, "") and not _is_http_url(dr_url):
            return _nx(201, "drUrl must be an http(s) URL"), {}
        shape = request.headers.get("x-sandbox-push-shape") or cfg.push_shape
        if shape not in ("2023", "2024"):
            return _nx(201, "X-Sandbox-Push-Shape must be 2023 or 2024"), {}
        known = state.batches.get((payload["appkey"], batch_no))
        if known is not None and not strict():
            return None, known  # default: a repeated batchNo is the same batch: not charged again

        request_id = state.new_hex_id()
        now = state.clock.now()
        today = vendor_day(now).isoformat()
        visible_at = now + (cfg.strict_query_lag_minutes * cfg.vendor_minute_s if strict() else 0.0)
        fail_numbers = []
        for index, phone in enumerate(phones, start=1):
            message_id = outcomes.message_id_for(request_id, index, len(phones))
            if shape == "2024" and outcomes.nxcloud_failure_code(phone, level) == 114:
                fail_numbers.append({"number": phone, "reason": outcomes.FAILURE_MESSAGES[114]})
                continue
            state.charges.append(
                {"vendor": "nxcloud", "batch_no": batch_no, "phone": phone, "check_level": level, "at_ms": state.clock.now_ms(),
                 "request_id": request_id}
            )  # fmt: skip
            row = outcomes.nxcloud_query_row(phone, level, batch_no=batch_no, message_id=message_id)
            if strict():  # the vendor's own example rows: checkLevel 2, empty live flags, price 0
                row.update(checkLevel=2, validity="", reachable="", roaming="", price=0)
            state.results.append(
                StoredResult(today, payload["appkey"], batch_no, message_id, phone, row, visible_at)
            )
            if not dr_url:
                continue
            if shape == "2024":
                push = outcomes.nxcloud_result_2024(phone, level, batch_no=batch_no, request_id=message_id)
            else:
                push = outcomes.nxcloud_result(phone, level, batch_no=batch_no, message_id=message_id)
            job = PushJob(
                kind="number_check",
                url=dr_url,
                body=signing.canonical_json(push).encode("utf-8"),
                content_type="application/json",
                meta={"batch_no": batch_no, "phone": phone, "message_id": message_id},
            )
            state.schedule_push(job, cfg.push_delay_s)
        if shape == "2024":
            data = {"requestId": request_id, "batchNo": batch_no, "failNumber": fail_numbers}
            accepted = {"code": 0, "message": "Success", "data": data, "traceId": state.new_hex_id()}
        else:
            accepted = {"code": 0, "msg": "success", "data": {"messageId": request_id, "batchNo": batch_no}}
        state.batches.setdefault((payload["appkey"], batch_no), accepted)
        return None, accepted

    @app.post("/nxcloud/api/number/query")
    async def number_check_query(request: Request) -> Response:
        event, body = "nxcloud.query", await request.body()
        fault = await apply_faults(request, event)
        if fault is not None:
            return await answer(request, event, body, *nxcloud_fault_answer(fault))
        problem = verify_nxcloud(request, body, NUMBER_CHECK_BIZ_TYPE, NUMBER_CHECK_ACTION)
        result = problem if problem is not None else query_results(request.headers["accessKey"], body)
        return await answer(request, event, body, 200, result)

    def query_results(access_key: str, body: bytes) -> dict[str, Any]:
        cfg = state.config
        if cfg.query_min_interval_s > 0:
            now = asyncio.get_running_loop().time()
            last = state.last_query_at.get(access_key)
            if last is not None and now - last < cfg.query_min_interval_s:
                return refusal_88(
                    f"Request too frequent: at most one query every {cfg.query_min_interval_s:g} s",
                    f"请求过于频繁，每{cfg.query_min_interval_s:g}秒最多查询一次",
                )
            state.last_query_at[access_key] = now
        payload = json_object(body)
        if payload is None:
            return refusal_88("request body must be a JSON object", "请求体必须是JSON对象")
        page, page_size = payload.get("page"), payload.get("pageSize")
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            return refusal_88("page is required: an integer from 1", "参数page不能为空，从1开始")
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 100:
            return refusal_88(
                "pageSize is required: an integer from 1 to 100", "参数pageSize不能为空，取值1到100"
            )
        date = payload.get("date")
        try:
            if not isinstance(date, str) or not _DATE_RE.match(date):
                raise ValueError(date)
            day = dt.date.fromisoformat(date)
        except ValueError:
            return refusal_88("Incorrect date format [yyyy-MM-dd]", "日期格式不正确[yyyy-MM-dd]")
        today = vendor_day()
        if not 0 <= (today - day).days <= cfg.query_window_days:
            return refusal_88(
                f"date out of range: only the last {cfg.query_window_days} days can be queried",
                f"日期超出范围：只能查询最近{cfg.query_window_days}天",
            )
        batch_no = payload.get("batchNo") or None
        message_id = payload.get("messageId") or payload.get("requestId") or None
        if batch_no is None and message_id is None:
            return refusal_88(
                "batchNo and messageId cannot be empty at the same time", "batchNo和messageId不能同时为空"
            )
        appkey = payload.get("appkey")
        if appkey not in (None, "") and (problem := appkey_problem(appkey)) is not None:
            return problem
        phone = payload.get("phone") or None
        now = state.clock.now()
        rows = [
            r.row
            for r in state.results
            if r.date == date
            and r.visible_at <= now
            and (batch_no is None or r.batch_no == batch_no)
            and (
                message_id is None or r.message_id == message_id or r.message_id.startswith(f"{message_id}-")
            )
            and (phone is None or r.phone == phone)
            and (not appkey or r.appkey == appkey)
        ]
        start = (page - 1) * page_size
        data = {
            "result": rows[start : start + page_size],
            "totalSize": len(rows),
            "totalPage": math.ceil(len(rows) / page_size),
            "pageSize": page_size,
            "page": page,
        }
        return {"msg": "Request successful", "code": 0, "data": data}

    # ---- NXCLOUD voice (legacy form API) -----------------------------------------------------
    @app.post("/nxcloud/api/voiceSms/{operation}")
    async def voice_send(operation: str, request: Request) -> Response:
        event, body = "nxcloud.voice", await request.body()
        fault = await apply_faults(request, event)
        if fault is not None:
            status, payload = nxcloud_fault_answer(fault)
            payload = {"result": payload["msg"], "code": str(payload["code"])}
            return await answer(request, event, body, status, payload)
        result = voice_submit(operation, request, dict(parse_qsl(body.decode("utf-8", "replace"))))
        return await answer(request, event, body, 200, result)

    def voice_submit(operation: str, request: Request, form: dict[str, str]) -> dict[str, Any]:
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
        if not all(_PHONE_RE.match(p) and len(p) >= 6 for p in phones):
            return error("6", "bad phone number")
        if operation == "gpsend" and not form.get("url"):
            return error("20", "url is required")
        if operation != "gpsend" and not form.get("content"):
            return error("4", "content is empty")
        message_id = state.new_hex_id()
        dr_url = request.headers.get("x-sandbox-dr-url") or cfg.voice_dr_url
        if dr_url:
            for phone in phones:
                fields = voice_receipt(operation, phone, country_code, message_id, form.get("ext"))
                body, content_type = voice_receipt_body(fields)
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

    def voice_receipt_body(fields: dict[str, str]) -> tuple[bytes, str]:
        """The receipt as the vendor posts it: "form data" (docs/receiver.md). Strict:
        ``multipart/form-data`` with a decimal ``second`` and ``cycle`` (typed "number");
        default: urlencoded, integers."""
        if state.config.profile != "strict":
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
        operation: str, phone: str, country_code: str, message_id: str, ext: str | None
    ) -> dict:
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
            fields["record_url"] = (
                f"https://sandbox.invalid/voice/{message_id}/{phone}.mp3" if duration else ""
            )
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

    # ---- AccuAuth ----------------------------------------------------------------------------
    async def accuauth_form(request: Request, body: bytes) -> dict[str, Any]:
        """AccuAuth body fields from form-encoded, multipart or JSON (docs/vendors/accuauth.md)."""
        content_type = (request.headers.get("content-type") or "").lower()
        if content_type.startswith("application/json"):
            value = json_object(body)
            return value or {}
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            return {k: v for k, v in form.items() if isinstance(v, str)}
        return dict(parse_qsl(body.decode("utf-8", "replace")))

    def accuauth_error(status: str, reason: str | None = None) -> tuple[int, dict[str, Any]]:
        payload = {"status": status, "reason": reason or ACCUAUTH_REASONS.get(status, status)}
        payload["request_id"] = f"TID{state.new_hex_id()}"
        return ACCUAUTH_STATUS_HTTP.get(status, 400), payload

    async def accuauth_gate(
        request: Request, event: str
    ) -> tuple[tuple[int, dict[str, Any]] | None, FaultRule | None]:
        """A refusal to answer instead of processing (fault or credentials), and a ``lost``
        fault to apply to the answer after processing."""
        fault = await apply_faults(request, event)
        lost = None
        if fault is not None:
            if fault.kind == "lost":
                lost = fault
            elif fault.kind == "rate_limit":
                return accuauth_error("RATE_LIMIT_EXCEEDED"), None
            elif fault.kind == "code":
                return accuauth_error(fault.accuauth_status or "INTERNAL_ERROR"), None
            else:
                return ((fault.status or 500), accuauth_error("INTERNAL_ERROR")[1]), None
        api_id = request.headers.get("x-df-api-id")
        if api_id and api_id == state.config.accuauth_expired_api_id:
            return accuauth_error("KEY_EXPIRED"), None
        secret = request.headers.get("x-df-api-secret") or ""
        if api_id != state.config.accuauth_api_id or not hmac.compare_digest(
            secret.encode(), state.config.accuauth_api_secret.encode()
        ):
            return accuauth_error("UNAUTHORIZED"), None
        return None, lost

    def accuauth_echo(phone: str) -> str:
        """How the vendor writes a number back. The documents' only example is ``0062...``:
        strict echoes ``00`` + country code, default echoes what was sent."""
        return "00" + phone if strict() else phone

    def finish_accuauth_task(task: AccuAuthTask) -> None:
        state.finish_task(task, outcomes.accuauth_phone_status(task.phone), accuauth_echo(task.phone))

    async def lose_answer(
        request: Request, event: str, body: bytes, fault: FaultRule, status: int, payload: dict[str, Any]
    ) -> Response:
        """The call was processed (and charged); its answer never reaches the client intact."""
        if fault.status:
            lost_status, lost_payload = fault.status, accuauth_error("INTERNAL_ERROR")[1]
            await answer(request, event, body, lost_status, lost_payload)
            return JSONResponse(lost_payload, status_code=lost_status)
        await answer(request, event, body, 0, {"lost": True, "would_have_answered": payload})
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        return _DroppedAnswer(json.dumps(payload).encode())

    def charge(phone: str, ref: str) -> None:
        state.charges.append(
            {"vendor": "accuauth", "phone": phone, "ref": ref, "at_ms": state.clock.now_ms()}
        )

    @app.post("/accuauth/check/phone_number/o1")
    async def accuauth_submit(request: Request) -> Response:
        event, body = "accuauth.submit", await request.body()
        refused, lost = await accuauth_gate(request, event)
        if refused is not None:
            return await answer(request, event, body, *refused)
        form = await accuauth_form(request, body)
        phone, callback = form.get("phone_number"), form.get("callback") or None
        if not phone:
            return await answer(
                request,
                event,
                body,
                *accuauth_error("INVALID_ARGUMENT", "argument 'phone_number': not found"),
            )
        if not isinstance(phone, str) or not _PHONE_RE.match(phone) or len(phone) < 8:
            return await answer(
                request, event, body, *accuauth_error("INVALID_ARGUMENT", "argument 'phone_number': invalid")
            )
        if callback is not None and not _is_http_url(callback):
            return await answer(
                request, event, body, *accuauth_error("INVALID_ARGUMENT", "argument 'callback': invalid URL")
            )
        cfg = state.config
        request_id = f"TID{state.new_hex_id()}"
        polls = cfg.accuauth_pending_polls
        if polls is None and cfg.accuauth_pending_seconds is None:
            polls = outcomes.accuauth_pending_polls(phone)
        seconds = cfg.accuauth_pending_seconds
        if seconds is None:
            seconds = (polls or 0) * cfg.accuauth_seconds_per_poll
        if not polls and seconds <= 0:
            charge(phone, request_id)
            result = {
                "phone_number": accuauth_echo(phone),
                "phone_status": outcomes.accuauth_phone_status(phone),
            }
            status, payload = 200, {"request_id": request_id, "status": "OK", "result": result}
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
            charge(phone, task.task_id)
            # The documents do not show the status of a pending submit: strict says PENDING (HTTP 400).
            if strict():
                status = 400
                payload = {"request_id": request_id, "status": "PENDING", "reason": "check in progress"}
                payload["task_id"] = task.task_id
            else:
                status, payload = 200, {"request_id": request_id, "status": "OK", "task_id": task.task_id}
        if lost is not None:
            return await lose_answer(request, event, body, lost, status, payload)
        return await answer(request, event, body, status, payload)

    @app.post("/accuauth/check/phone_number/task_result/o1")
    async def accuauth_task_result(request: Request) -> Response:
        event, body = "accuauth.task_result", await request.body()
        refused, _ = await accuauth_gate(request, event)
        if refused is not None:
            return await answer(request, event, body, *refused)
        task_id = (await accuauth_form(request, body)).get("task_id")
        if not task_id:
            return await answer(
                request, event, body, *accuauth_error("INVALID_ARGUMENT", "argument 'task_id': not found")
            )
        state.accuauth_polls_seen += 1
        if strict() and state.accuauth_polls_seen % 3 == 0:
            # the documents list 500 INTERNAL_ERROR without saying when: strict answers every third poll with it
            return await answer(request, event, body, 500, accuauth_error("INTERNAL_ERROR")[1])
        task = state.tasks.get(task_id)
        now = state.clock.now()
        expired = task is not None and now - task.created_at > state.config.accuauth_task_ttl_s
        if task is None or expired:
            # What an unknown or expired task id gets is undocumented: strict answers 404 NOT_FOUND,
            # the status the documents give to an unknown API.
            if strict():
                return await answer(request, event, body, *accuauth_error("NOT_FOUND", "task not found"))
            reason = (
                "argument 'task_id': expired (a task id is valid for 24 hours)"
                if expired
                else "argument 'task_id': no such task"
            )
            return await answer(request, event, body, *accuauth_error("INVALID_ARGUMENT", reason))
        if not task.finished:
            time_done = task.ready_at is not None and now >= task.ready_at
            polls_done = task.polls_limit is not None and task.polls_answered >= task.polls_limit
            if time_done or polls_done:
                finish_accuauth_task(task)
            else:
                task.polls_answered += 1
                status, payload = accuauth_error("PENDING", "check in progress")
                return await answer(request, event, body, status, payload)
        result = {
            "phone_number": accuauth_echo(task.phone),
            "phone_status": outcomes.accuauth_phone_status(task.phone),
        }
        payload = {"status": "OK", "result": result, "request_id": f"TID{state.new_hex_id()}"}
        return await answer(request, event, body, 200, payload)

    @app.api_route("/accuauth/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def accuauth_unknown(path: str, request: Request) -> Response:
        body = await request.body()
        return await answer(request, "accuauth.unknown", body, *accuauth_error("NOT_FOUND"))

    # ---- control -----------------------------------------------------------------------------
    @app.get("/_sandbox/health")
    async def health() -> dict[str, Any]:
        pending = sum(1 for t in state.tasks.values() if not t.finished)
        return {
            "status": "ok",
            "now_ms": state.clock.now_ms(),
            "in_flight_pushes": state.in_flight,
            "pending_tasks": pending,
        }

    @app.post("/_sandbox/reset")
    async def reset() -> dict[str, Any]:
        state.reset()
        return {"status": "ok"}

    @app.post("/_sandbox/wait")
    async def wait_idle(request: Request) -> dict[str, Any]:
        """Block until no push is in flight (or ``timeout_s`` real seconds passed)."""
        params = json_object(await request.body()) or {}
        deadline = asyncio.get_running_loop().time() + float(params.get("timeout_s", 30))
        while state.in_flight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        return {"idle": state.in_flight == 0, "in_flight_pushes": state.in_flight}

    @app.get("/_sandbox/faults")
    async def get_faults() -> dict[str, Any]:
        return {"rules": [rule.public() for rule in state.faults.rules]}

    @app.post("/_sandbox/faults")
    async def set_faults(request: Request) -> Response:
        """Body ``{"rules": [...], "mode": "replace"|"add"}`` (or just the list of rules)."""
        try:
            spec = json.loads(await request.body() or b"[]")
        except ValueError:
            return JSONResponse({"error": "body must be JSON"}, status_code=422)
        rules, mode = (
            (spec, "replace")
            if isinstance(spec, list)
            else (spec.get("rules", []), spec.get("mode", "replace"))
        )
        try:
            (state.faults.add if mode == "add" else state.faults.set)(rules)
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        return JSONResponse({"rules": [rule.public() for rule in state.faults.rules]})

    @app.get("/_sandbox/clock")
    async def get_clock() -> dict[str, Any]:
        return {"now_ms": state.clock.now_ms(), "offset_s": state.clock.offset_s}

    @app.post("/_sandbox/clock")
    async def set_clock(request: Request) -> Response:
        """``{"offset_s": skew}`` or ``{"advance_s": jump}`` or ``{"set_ms": epoch ms}``."""
        spec = json_object(await request.body()) or {}
        if "set_ms" in spec:
            state.clock.offset_s = int(spec["set_ms"]) / 1000 - (state.clock.now() - state.clock.offset_s)
        if "offset_s" in spec:
            state.clock.offset_s = float(spec["offset_s"])
        if "advance_s" in spec:
            state.clock.offset_s += float(spec["advance_s"])
        return JSONResponse({"now_ms": state.clock.now_ms(), "offset_s": state.clock.offset_s})

    @app.get("/_sandbox/settings")
    async def get_settings() -> dict[str, Any]:
        return state.config.public()

    @app.post("/_sandbox/settings")
    async def set_settings(request: Request) -> Response:
        try:
            changes = json_object(await request.body()) or {}
            state.config = state.config.replace(changes)
            if "push_concurrency" in changes:  # applies to pushes scheduled from now on
                state.push_slots = asyncio.Semaphore(state.config.push_concurrency)
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        return JSONResponse(state.config.public())

    @app.get("/_sandbox/charges")
    async def get_charges(vendor: str | None = None, batch_no: str | None = None) -> list[dict[str, Any]]:
        """The paid calls the vendors processed in this run (answered or not): the bill, one entry
        per number; ``vendor`` and ``batch_no`` (NXCLOUD) filter it."""
        return [
            c
            for c in state.charges
            if (vendor is None or c["vendor"] == vendor)
            and (batch_no is None or c.get("batch_no") == batch_no)
        ]

    @app.get("/_sandbox/calls")
    async def get_calls(
        event: str | None = None, path: str | None = None, since: int = 0
    ) -> list[dict[str, Any]]:
        return [
            c
            for c in state.calls
            if c["seq"] > since
            and (event is None or c["event"] == event)
            and (path is None or c["path"] == path)
        ]

    @app.get("/_sandbox/pushes")
    async def get_pushes(
        kind: str | None = None, url: str | None = None, batch_no: str | None = None, since: int = 0
    ) -> list[dict[str, Any]]:
        return [
            p
            for p in state.pushes
            if p["seq"] > since
            and (kind is None or p["kind"] == kind)
            and (url is None or p["url"] == url)
            and (batch_no is None or p.get("batch_no") == batch_no)
        ]

    @app.post("/_sandbox/pns/call")
    async def pns_call(request: Request) -> Response:
        """Place a simulated privacy-number call; its call record is pushed like the vendor does."""
        spec = json_object(await request.body()) or {}
        url = spec.get("url") or state.config.pns_push_url
        if not _is_http_url(url):
            return JSONResponse({"error": "no push url: pass 'url' or set pns_push_url"}, status_code=422)
        caller, callee = str(spec.get("caller", "85235757583")), str(spec.get("callee", "85238533300"))
        if not (_PHONE_RE.match(caller) and _PHONE_RE.match(callee)):
            return JSONResponse({"error": "caller and callee must be digits"}, status_code=422)
        record = pns_record(spec, caller, callee)
        strict = state.config.profile == "strict"
        job = PushJob(
            kind="pns_call_record",
            url=url,
            body=signing.canonical_json(record).encode("utf-8"),
            content_type="application/json",
            # strict: the 2024 PNS revision's schedule, two retries 5 minutes apart
            # (docs/receiver.md); default: every vendor minute like the other pushes
            retries=PNS_STRICT_RETRIES if strict else None,
            retry_interval_minutes=PNS_STRICT_RETRY_MINUTES if strict else 1.0,
            meta={"call_id": record["callId"], "phone": callee},
        )
        state.schedule_push(job, state.config.push_delay_s)
        return JSONResponse({"callId": record["callId"], "record": record})

    def pns_record(spec: dict[str, Any], caller: str, callee: str) -> dict[str, Any]:
        outcome = outcomes.pns_outcome(callee)
        start = int(state.clock.now())
        answered = outcome["callStatus"] == 1
        answer_at = start + 2 if answered else 0
        hangup_at = (answer_at + outcome["duration"]) if answered else start + 5
        call_id = str(spec.get("callId") or state.rng.randrange(10**18, 10**19))
        bind_id = str(spec.get("bindId") or state.new_hex_id())
        did = str(spec.get("did", "85235757584"))
        record_file = f"https://sandbox.invalid/pns/{call_id}.mp3" if answered else ""
        if spec.get("shape") == "legList":
            legs = []
            for call_type, (leg_caller, leg_callee) in enumerate(((caller, did), (did, callee)), start=1):
                legs.append(
                    {
                        "callType": call_type,
                        "caller": leg_caller,
                        "callee": leg_callee,
                        "callStartAt": start,
                        "callAnswerAt": answer_at,
                        "callFinishAt": hangup_at,
                        "duration": outcome["duration"],
                        "callRecordFile": record_file,
                        "hangupType": outcome["hangup"],
                        "hangupCause": outcome["hangupCause"],
                        "hangupCode": outcome["hangupCode"],
                        "uuid": state.new_hex_id(),
                        "ringDuration": 2 if answered else 5,
                        "fsCallStatus": outcome["callStatus"],
                        "fsCallStatusMsg": "",
                    }
                )
            return {
                "bindId": bind_id,
                "customerBindId": str(spec.get("customerBindId", "1")),
                "callId": call_id,
                "caller": caller,
                "did": did,
                "didX": did,
                "didY": "",
                "extensionX": "",
                "callee": callee,
                "pnsType": "axb",
                "callStatus": str(outcome["callStatus"]),
                "callStatusMsg": "",
                "ext": str(spec.get("ext", "")),
                "legList": legs,
            }
        return {
            "id": int(spec.get("id") or state.next_seq()),
            "businessId": str(spec.get("businessId", "sandbox_busi")),
            "customerBindId": str(spec.get("customerBindId", "1")),
            "bindId": bind_id,
            "callId": call_id,
            "did": did,
            "caller": caller,
            "callee": callee,
            "callStatus": outcome["callStatus"],
            "callStatusMsg": "",
            "duration": outcome["duration"],
            "startAt": start,
            "answerAt": answer_at,
            "hangupAt": hangup_at,
            "hangupCause": outcome["hangupCause"],
            "hangupCode": outcome["hangupCode"],
            "hangup": outcome["hangup"],
            "recordFile": record_file,
        }

    return app
