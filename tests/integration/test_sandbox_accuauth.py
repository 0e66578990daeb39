"""The sandbox's AccuAuth over real HTTP: pending tasks, callbacks as GET, documented errors."""

from __future__ import annotations

import httpx
import pytest

from phonecheck.sandbox import outcomes

pytestmark = pytest.mark.integration

PENDING_PHONE = "5215512345670"  # second-to-last digit 7: pending (3 polls by the table)
AT_ONCE_PHONE = "5215512345621"  # second-to-last digit 2: answered at once, status "connected"


class AaClient:
    def __init__(self, sandbox) -> None:
        self.host = sandbox.accuauth_host
        c = sandbox.credentials
        self.headers = {"X-DF-API-ID": c.accuauth_api_id, "X-DF-API-SECRET": c.accuauth_api_secret}

    def submit(self, as_json: bool = False, headers: dict | None = None, **fields) -> httpx.Response:
        url, h = f"{self.host}/check/phone_number/o1", {**self.headers, **(headers or {})}
        if as_json:
            return httpx.post(url, json=fields, headers=h)
        return httpx.post(url, data=fields, headers=h)

    def task_result(self, task_id: str, as_json: bool = False) -> httpx.Response:
        url = f"{self.host}/check/phone_number/task_result/o1"
        if as_json:
            return httpx.post(url, json={"task_id": task_id}, headers=self.headers)
        return httpx.post(url, data={"task_id": task_id}, headers=self.headers)


@pytest.fixture
def aa(sandbox):
    return AaClient(sandbox)


def test_submit_answers_at_once_for_some_numbers(aa):
    assert outcomes.accuauth_pending_polls(AT_ONCE_PHONE) == 0
    for as_json in (False, True):
        answer = aa.submit(as_json=as_json, phone_number=AT_ONCE_PHONE)
        assert answer.status_code == 200
        body = answer.json()
        assert body["status"] == "OK" and "task_id" not in body
        assert body["result"] == {"phone_number": AT_ONCE_PHONE, "phone_status": "connected"}
        assert body["request_id"].startswith("TID") and len(body["request_id"]) == 35


def test_task_is_pending_for_its_polls_then_ok_and_calls_back_with_get(sandbox, aa, receiver_stub):
    sandbox.control.settings(accuauth_pending_polls=2, accuauth_pending_seconds=0)  # polls only
    submitted = aa.submit(
        phone_number=PENDING_PHONE, callback=receiver_stub.url_for("/aa/cb?token=t1")
    ).json()
    assert submitted["status"] == "OK" and "result" not in submitted
    task_id = submitted["task_id"]

    for as_json in (False, True):  # both body encodings are accepted
        pending = aa.task_result(task_id, as_json=as_json)
        assert pending.status_code == 400
        assert pending.json()["status"] == "PENDING" and pending.json()["reason"] == "check in progress"
    assert receiver_stub.received(answered=None) == []  # no callback before the task finishes

    done = aa.task_result(task_id)
    assert done.status_code == 200
    expected_status = outcomes.accuauth_phone_status(PENDING_PHONE)
    assert done.json()["status"] == "OK"
    assert done.json()["result"] == {"phone_number": PENDING_PHONE, "phone_status": expected_status}
    assert aa.task_result(task_id).json()["status"] == "OK"  # stays answered

    callback = receiver_stub.wait_for(1)[0]
    assert callback.method == "GET" and callback.path == "/aa/cb" and callback.body == b""
    assert callback.query == {
        "token": "t1",
        "request_id": submitted["request_id"],
        "phone_number": PENDING_PHONE,
        "phone_status": expected_status,
        "task_id": task_id,
    }
    sandbox.control.wait_pushes()
    assert len(receiver_stub.received(answered=None)) == 1  # called back exactly once


def test_task_finishes_on_sandbox_time_and_expires_after_24_hours(sandbox, aa, receiver_stub):
    sandbox.control.settings(accuauth_pending_seconds=600)  # ten sandbox minutes, whatever the polls
    task_id = aa.submit(phone_number=AT_ONCE_PHONE, callback=receiver_stub.url).json()["task_id"]
    assert aa.task_result(task_id).status_code == 400
    sandbox.control.clock(advance_s=601)
    callback = receiver_stub.wait_for(1)[0]  # the callback comes without any poll
    assert callback.query["task_id"] == task_id and callback.query["phone_status"] == "connected"
    assert aa.task_result(task_id).json()["result"]["phone_status"] == "connected"

    sandbox.control.clock(advance_s=24 * 3600)
    expired = aa.task_result(task_id)
    assert expired.status_code == 400 and expired.json()["status"] == "INVALID_ARGUMENT"
    assert "expired" in expired.json()["reason"]


def test_documented_errors(sandbox, aa):
    missing = aa.submit()
    assert missing.status_code == 400
    assert missing.json()["status"] == "INVALID_ARGUMENT"
    assert missing.json()["reason"] == "argument 'phone_number': not found"
    assert aa.task_result("no-such-task").json()["status"] == "INVALID_ARGUMENT"

    wrong = aa.submit(phone_number=AT_ONCE_PHONE, headers={"X-DF-API-SECRET": "wrong"})
    assert (wrong.status_code, wrong.json()["status"]) == (401, "UNAUTHORIZED")
    expired = aa.submit(phone_number=AT_ONCE_PHONE, headers={"X-DF-API-ID": "sandbox-expired-api-id"})
    assert (expired.status_code, expired.json()["status"]) == (401, "KEY_EXPIRED")
    unknown = httpx.post(f"{sandbox.accuauth_host}/check/nothing/o1", headers=aa.headers)
    assert (unknown.status_code, unknown.json()["status"]) == (404, "NOT_FOUND")

    sandbox.control.faults(
        {"target": "accuauth", "kind": "code", "accuauth_status": "NO_PERMISSION", "count": 1},
        {"target": "accuauth", "kind": "code", "accuauth_status": "OUT_OF_QUOTA", "after": 1, "count": 1},
        {"target": "accuauth", "kind": "rate_limit", "after": 2, "count": 1},
        {"target": "accuauth", "kind": "error", "after": 3, "count": 1},
    )
    seen = [aa.submit(phone_number=AT_ONCE_PHONE) for _ in range(5)]
    assert [(r.status_code, r.json()["status"]) for r in seen] == [
        (403, "NO_PERMISSION"),
        (403, "OUT_OF_QUOTA"),
        (403, "RATE_LIMIT_EXCEEDED"),
        (500, "INTERNAL_ERROR"),
        (200, "OK"),
    ]
    for answer in seen:
        assert set(answer.json()) >= {"status", "request_id"}

    calls = sandbox.control.calls(event="accuauth.submit")
    assert calls[-1]["headers"]["x-df-api-secret"] == "***"  # secrets never kept in the log
