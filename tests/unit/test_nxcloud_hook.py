"""NxCloudHook and its client without a network: signature vectors, body bytes, settings, retry classification."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pytest
import tenacity

from phonecheck.nxcloud.client import TS_WINDOW_S, NxCloudClient, NxCloudSettings
from phonecheck.nxcloud.errors import (
    NxCloudAuthError,
    NxCloudBadRequestError,
    NxCloudBalanceError,
    NxCloudRateLimited,
    NxCloudServerError,
    NxCloudTransientError,
    NxCloudUnknownError,
    error_for_code,
)
from phonecheck.signing import canonical_json, string_to_sign
from phonecheck_airflow.hooks.nxcloud import NxCloudHook

# docs/vendors/nxcloud.md, "own vectors": accessKey testAccessKey01, action numbercheck, bizType 1.
TS = "1700000000000"
SECRET = "testSecret123"
SUBMIT_BODY = (
    '{"phone":"5215512345678,5215587654321","batchNo":"batch-0001","checkLevel":1,'
    '"drUrl":"https://example.com/nx/numbercheck","appkey":"appk01"}'
)
QUERY_BODY = '{"batchNo":"batch-0001","page":1,"date":"2023-11-14","pageSize":100}'
VECTORS = {
    "submit": (SUBMIT_BODY, "5edc647f65bb9dfa1d4bfdf73fc079a7", "24cfcedb661e1ccdff7a9515fcb494298c0e3d4c68be4293842e054aab54615e"),
    "query": (QUERY_BODY, "1384a1b3005b1041d457667b5ceda511", "d64d8f878988b5f23dbeb32d13d0cd08d18ca5e7aac099a08931576d1e66f88d"),
}  # fmt: skip


def _hook(monkeypatch, conn_id="nxcloud_vectors", **extra) -> NxCloudHook:
    conn = {
        "conn_type": "nxcloud",
        "host": "https://api2.nxcloud.example",
        "login": "testAccessKey01",
        "password": SECRET,
        "extra": {"appkey": "appk01", **extra},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return NxCloudHook(conn_id)


def test_hook_builds_the_vector_bodies_byte_for_byte(monkeypatch):
    hook = _hook(monkeypatch).get_client()
    submit = hook.submit_payload(
        ["5215512345678", "5215587654321"],
        batch_no="batch-0001",
        check_level=1,
        dr_url="https://example.com/nx/numbercheck",
    )
    assert canonical_json(submit) == SUBMIT_BODY
    query = hook.query_payload(batch_no="batch-0001", page=1, date="2023-11-14", page_size=100)
    assert canonical_json(query) == QUERY_BODY


@pytest.mark.parametrize("case", sorted(VECTORS))
def test_md5_signature_matches_the_vectors(monkeypatch, case):
    body, md5, _ = VECTORS[case]
    headers = _hook(monkeypatch).get_client().signed_headers(body, ts=TS)
    assert headers["sign"] == md5
    assert (headers["accessKey"], headers["action"], headers["bizType"], headers["ts"]) == (
        "testAccessKey01", "numbercheck", "1", TS,
    )  # fmt: skip
    assert "algorithm" not in headers  # md5 is the vendor default: no header
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("case", sorted(VECTORS))
def test_sha256_signs_the_same_string(monkeypatch, case):
    body, md5, sha256 = VECTORS[case]
    headers = _hook(monkeypatch, sign_algorithm="sha256").get_client().signed_headers(body, ts=TS)
    signed = {k: headers[k] for k in ("accessKey", "action", "bizType", "ts")}
    text = string_to_sign(signed, body, SECRET)
    assert hashlib.md5(text.encode()).hexdigest() == md5  # the very string of the md5 vector
    assert headers["sign"] == hashlib.sha256(text.encode()).hexdigest() == sha256
    assert headers["algorithm"] == "sha256"


def test_every_attempt_is_signed_fresh_within_the_vendor_window(receiver_stub):
    """Each attempt is signed at its own send (the vendor refuses a ``ts`` more than 60 s off its
    clock): on a virtual clock that moves 45 s per request received, a ``ts`` kept from the first
    attempt would be 90 s stale at the third."""
    start = 1_796_000_000.0

    def vendor_now() -> float:  # virtual time: advanced only by what the vendor receives
        return start + 45.0 * len(receiver_stub.received(answered=None))

    receiver_stub.fail_next(2, 503)  # the free query is retried after a 5xx
    receiver_stub.body = json.dumps(
        {"code": 0, "data": {"page": 1, "totalPage": 0, "totalSize": 0, "result": []}}
    )
    settings = NxCloudSettings(receiver_stub.url, "testAccessKey01", SECRET, query_min_interval_s=0)
    client = NxCloudClient(settings, backoff_multiplier=0.001, backoff_max=0.001, clock=vendor_now)
    client.query_page(date=date(2026, 11, 1), batch_no="batch-0001")

    sent = receiver_stub.received(answered=None)
    assert [r.answered for r in sent] == [503, 503, 200]
    for i, request in enumerate(sent):
        received_at = start + 45.0 * i  # the vendor's clock when this attempt arrived
        assert abs(int(request.headers["ts"]) / 1000 - received_at) <= TS_WINDOW_S, i
        signed = {k: request.headers[k] for k in ("accessKey", "action", "bizType", "ts")}
        expected = hashlib.md5(string_to_sign(signed, request.body.decode(), SECRET).encode()).hexdigest()
        assert request.headers["sign"] == expected  # signed over its own ts and the bytes sent
    assert len({r.headers["ts"] for r in sent}) == 3


def test_settings_from_the_connection(monkeypatch):
    hook = _hook(monkeypatch, sign_algorithm="SHA256", query_timezone="Asia/Shanghai", query_min_interval_s=0)
    s = hook.settings
    assert (s.sign_algorithm, s.query_timezone, s.query_min_interval_s, s.appkey) == (
        "sha256", "Asia/Shanghai", 0.0, "appk01",
    )  # fmt: skip
    assert SECRET not in repr(s) and "appk01" not in repr(s)
    defaults = _hook(monkeypatch, conn_id="nxcloud_defaults").settings
    assert (defaults.sign_algorithm, defaults.query_timezone, defaults.query_min_interval_s) == (
        "md5",
        "UTC",
        3.0,
    )
    assert defaults.in_doubt_after_s == 600.0  # the 5-minute push window + a 5-minute margin
    assert "testAccessKey01" not in repr(defaults)


def test_bad_connection_settings_are_clear(monkeypatch):
    with pytest.raises(ValueError, match="sign_algorithm must be md5 or sha256"):
        _ = _hook(monkeypatch, sign_algorithm="sha1").settings
    with pytest.raises(ValueError, match="unknown query_timezone"):
        _ = _hook(monkeypatch, conn_id="nxcloud_tz", query_timezone="Mars/Base").settings


def test_query_payload_rules():
    with pytest.raises(ValueError, match="batch_no or message_id"):
        NxCloudClient.query_payload(date="2026-11-01")
    with pytest.raises(ValueError, match="page_size"):
        NxCloudClient.query_payload(date="2026-11-01", batch_no="b", page_size=101)


@pytest.mark.parametrize(
    ("code", "msg", "kind", "transient"),
    [
        (1001, "missing header", NxCloudAuthError, False),
        (1003, "sign verification failed", NxCloudAuthError, False),
        (1004, "ts out of window", NxCloudAuthError, False),
        (1005, "bad key", NxCloudAuthError, False),
        (201, "phone is required", NxCloudBadRequestError, False),
        (207, "invalid checkLevel", NxCloudBadRequestError, False),
        (212, "batchNo too long", NxCloudBadRequestError, False),
        (88, "Incorrect date format [yyyy-MM-dd]", NxCloudBadRequestError, False),
        (88, "Request too frequent: at most one query every 3 s", NxCloudRateLimited, True),
        (88, "请求过于频繁，每3秒最多查询一次", NxCloudRateLimited, True),
        (88, "系统繁忙，请稍后再试", NxCloudRateLimited, True),  # "system busy": any unnamed 88 is retried
        (88, "日期格式不正确[yyyy-MM-dd]", NxCloudBadRequestError, False),
        (88, "batchNo和messageId不能同时为空", NxCloudBadRequestError, False),
        (88, "date out of range: only the last 14 days can be queried", NxCloudBadRequestError, False),
        (429, "Too many requests", NxCloudRateLimited, True),
        (204, "deduction failed", NxCloudBalanceError, False),
        (211, "insufficient balance", NxCloudBalanceError, False),
        (299, "system error", NxCloudServerError, True),
        (777, "something new", NxCloudUnknownError, False),
    ],
)
def test_codes_map_to_clear_exceptions(code, msg, kind, transient):
    exc = error_for_code("submit", code, msg)
    assert type(exc) is kind
    assert isinstance(exc, NxCloudTransientError) is transient
    assert f"code {code}" in str(exc) and exc.code == code


def test_error_messages_carry_no_secret_or_signature(monkeypatch):
    hook = _hook(monkeypatch).get_client()
    headers = hook.signed_headers(SUBMIT_BODY)
    for code in (1001, 1002, 1003, 1004, 1005, 201, 204, 211, 299, 429, 777):
        text = str(error_for_code("submit", code, "vendor text"))
        for secret in (SECRET, headers["sign"], "appk01", "https://example.com/nx/numbercheck"):
            assert secret not in text


def _state(attempt: int, exc: BaseException | None = None) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(None, None, (), {})
    state.attempt_number = attempt
    if exc is not None:
        state.set_exception((type(exc), exc, None))
    return state


def test_retry_wait_is_full_jitter_and_honours_retry_after(monkeypatch):
    hook = _hook(monkeypatch)
    hook.client_kwargs.update(backoff_multiplier=1.0, backoff_max=8.0)
    policy = hook.get_client().retry
    waits = {round(policy.wait(_state(3)), 6) for _ in range(200)}
    assert len(waits) > 50 and min(waits) >= 0 and max(waits) <= 8.0  # random in [0, min(8, 2**3)]
    rate_limited = NxCloudRateLimited("query", "NXCLOUD query: HTTP 429")
    rate_limited.retry_after = 5
    assert all(policy.wait(_state(1, rate_limited)) >= 5 for _ in range(50))
    assert policy.limit_for(rate_limited) == 10 and policy.limit_for(None) == 6  # rate refusals: own budget
