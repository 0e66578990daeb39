"""The sandbox's NXCLOUD over real HTTP, driven with a signer of the test's own (not phonecheck.signing)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time

import httpx
import pytest

from phonecheck.sandbox import outcomes
from phonecheck.sandbox.config import SandboxConfig
from phonecheck.sandbox.state import SandboxState
from tests.fixtures.sandbox import TEST_STRICT_QUERY_INTERVAL_S

pytestmark = pytest.mark.integration

VENDOR_KEY, VENDOR_SECRET, VENDOR_TS = "fme2na3kdi3ki", "abciiiko2k3", "1655710885431"
VENDOR_VECTORS = [
    ('{"name":"牛小信","id":10001}', "87c3560d3331ae23f1021e2025722354"),
    ('{"id":10001,"name":"牛小信"}', "7750759da06333f20d0640be09355e34"),
    ('{"id": 10001, "name": "牛小信"}', "d0c24a9886c629330d7f3f2056c65bc2"),
]


def own_sign(headers: dict[str, str], body: str, secret: str, algorithm: str = "md5") -> str:
    """An independent minimal NXCLOUD signer, written from docs/vendors/nxcloud.md."""
    text = "&".join(f"{k}={headers[k]}" for k in sorted(["accessKey", "action", "bizType", "ts"]))
    if body:
        text += "&body=" + body
    text += "&accessSecret=" + secret
    return hashlib.new(algorithm, text.encode("utf-8")).hexdigest()


class NxClient:
    """Signs and sends raw bodies to the sandbox's NXCLOUD, so tests control every byte."""

    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox
        self.key = sandbox.credentials.nxcloud_access_key
        self.secret = sandbox.credentials.nxcloud_access_secret
        self.appkey = sandbox.credentials.nxcloud_appkey

    def post(
        self,
        path: str,
        body: str,
        *,
        key: str | None = None,
        secret: str | None = None,
        ts: str | None = None,
        action: str = "numbercheck",
        algorithm: str = "md5",
        sent_body: bytes | None = None,
        content_type: str = "application/json",
        extra_headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        ts = ts or str(self.sandbox.control.clock()["now_ms"])
        headers = {"accessKey": key or self.key, "action": action, "bizType": "1", "ts": ts}
        headers["sign"] = own_sign(headers, body, secret or self.secret, algorithm)
        if algorithm != "md5":
            headers["algorithm"] = algorithm
        headers["Content-Type"] = content_type
        headers.update(extra_headers or {})
        content = body.encode("utf-8") if sent_body is None else sent_body
        return httpx.post(f"{self.sandbox.nxcloud_host}{path}", content=content, headers=headers, timeout=30)

    def submit(
        self, phones: list[str], level: int = 1, batch_no: str = "b-1", dr_url: str | None = None, **kw
    ):
        payload = {"phone": ",".join(phones), "batchNo": batch_no, "checkLevel": level, "appkey": self.appkey}
        if dr_url:
            payload["drUrl"] = dr_url
        return self.post("/api/number/check", json.dumps(payload), **kw)

    def query(self, **payload) -> dict:
        response = self.post("/api/number/query", json.dumps(payload))
        assert response.status_code == 200
        return response.json()


@pytest.fixture
def nx(sandbox):
    return NxClient(sandbox)


def today(sandbox) -> str:
    return dt.datetime.fromtimestamp(sandbox.control.clock()["now_ms"] / 1000, dt.UTC).date().isoformat()


@pytest.mark.parametrize(("body", "documented_sign"), VENDOR_VECTORS)
def test_vendor_test_vectors_verify_over_http(sandbox, nx, body, documented_sign):
    assert own_sign(
        {"accessKey": VENDOR_KEY, "action": "send", "bizType": "1", "ts": VENDOR_TS}, body, VENDOR_SECRET
    ) == (documented_sign)
    sandbox.control.settings(nxcloud_extra_credentials={VENDOR_KEY: VENDOR_SECRET})
    sandbox.control.clock(set_ms=int(VENDOR_TS))

    verified = nx.post(
        "/api/number/check", body, key=VENDOR_KEY, secret=VENDOR_SECRET, ts=VENDOR_TS, action="send"
    )
    # The signature passes; the vendor's example action "send" is then refused as a bad action.
    assert verified.json()["code"] == 1002
    call = sandbox.control.calls(event="nxcloud.check")[-1]
    assert call["headers"]["sign"] == documented_sign and call["body"] == body

    other_body = next(b for b, _ in VENDOR_VECTORS if b != body)  # same JSON, other bytes
    tampered = nx.post(
        "/api/number/check",
        body,
        key=VENDOR_KEY,
        secret=VENDOR_SECRET,
        ts=VENDOR_TS,
        action="send",
        sent_body=other_body.encode(),
    )
    assert tampered.json()["code"] == 1003


def test_signature_refusals_use_the_documented_codes(sandbox, nx):
    phones = ["5215512345670"]
    assert nx.submit(phones).json()["code"] == 0
    assert nx.submit(phones, algorithm="sha256").json()["code"] == 0
    assert nx.submit(phones, secret="wrong-secret").json() == {
        "code": 1003,
        "msg": "sign verification failed",
        "data": {},
    }

    body = json.dumps({"phone": "5215512345670", "batchNo": "b-1", "checkLevel": 1, "appkey": nx.appkey})
    changed = body.replace("b-1", "b-2").encode()
    assert nx.post("/api/number/check", body, sent_body=changed).json()["code"] == 1003
    assert nx.post("/api/number/check", body, content_type="text/plain").json()["code"] == 1003

    now_ms = sandbox.control.clock()["now_ms"]
    stale = nx.submit(phones, ts=str(now_ms - 61_000))
    assert stale.status_code == 200 and stale.json()["code"] == 1004
    assert nx.submit(phones, ts=str(now_ms - 55_000)).json()["code"] == 0
    assert nx.submit(phones, ts=str(now_ms // 1000)).json()["code"] == 1004  # seconds, not ms

    assert nx.submit(phones, key="unknown-key").json()["code"] == 1005
    missing = httpx.post(
        f"{sandbox.nxcloud_host}/api/number/check", content=body, headers={"accessKey": nx.key}
    )
    assert missing.json()["code"] == 1001

    sandbox.control.clock(offset_s=120)  # the vendor's clock runs two minutes ahead of ours
    assert nx.submit(phones, ts=str(now_ms)).json()["code"] == 1004


def test_submit_errors(sandbox, nx):
    phones = ["5215512345670"]
    assert nx.submit(phones, level=2).json()["code"] == 207
    assert nx.submit(phones, batch_no="x" * 65).json()["code"] == 212
    assert nx.submit(phones, batch_no="x" * 64).json()["code"] == 0
    bad_app = json.dumps({"phone": phones[0], "appkey": "nope"})
    assert nx.post("/api/number/check", bad_app).json()["code"] == 202
    foreign = json.dumps({"phone": phones[0], "appkey": "sandbox-foreign-appkey"})
    assert nx.post("/api/number/check", foreign).json()["code"] == 210
    too_many = [f"52155{i:08d}" for i in range(5001)]
    assert nx.submit(too_many).json()["code"] == 201
    auto = nx.post("/api/number/check", json.dumps({"phone": phones[0], "appkey": nx.appkey})).json()
    assert auto["code"] == 0 and len(auto["data"]["batchNo"]) == 12 and auto["data"]["batchNo"].isdigit()


def test_batch_of_1000_one_push_per_number_retried_until_200_and_queried_100_per_page(
    sandbox, nx, receiver_stub
):
    phones = [f"52155{i:08d}" for i in range(1000)]
    receiver_stub.fail_next(300, status=503)  # the first 300 deliveries fail: those must be retried
    answer = nx.submit(
        phones, level=5, batch_no="batch-1000", dr_url=receiver_stub.url_for("/nx/numbercheck")
    ).json()
    assert answer["code"] == 0 and answer["data"]["batchNo"] == "batch-1000"
    request_id = answer["data"]["messageId"]
    sandbox.control.wait_pushes(timeout_s=60)

    accepted = receiver_stub.received(answered=200)
    assert len(receiver_stub.received(answered=503)) == 300
    assert sorted(r.json()["phone"] for r in accepted) == phones  # exactly one accepted push per number
    by_phone = {r.json()["phone"]: r.json() for r in accepted}
    for index, phone in enumerate(phones, start=1):
        message_id = f"{request_id}-{index:06d}"
        assert by_phone[phone] == outcomes.nxcloud_result(
            phone, 5, batch_no="batch-1000", message_id=message_id
        )

    log = sandbox.control.pushes(kind="number_check", batch_no="batch-1000")
    assert sum(1 for p in log if p["outcome"] == "accepted") == 1000
    assert sum(1 for p in log if p["outcome"] == "retry") == 300
    assert {p["attempt"] for p in log if p["outcome"] == "accepted"} == {1, 2}

    rows = []
    for page in range(1, 11):
        result = nx.query(batchNo="batch-1000", page=page, pageSize=100, date=today(sandbox))
        assert result["code"] == 0
        data = result["data"]
        assert (data["page"], data["pageSize"], data["totalSize"], data["totalPage"]) == (page, 100, 1000, 10)
        assert len(data["result"]) == 100
        rows.extend(data["result"])
    assert nx.query(batchNo="batch-1000", page=11, pageSize=100, date=today(sandbox))["data"]["result"] == []
    assert [r["phone"] for r in rows] == phones
    for row in rows:
        push = by_phone[row["phone"]]
        assert row["messageId"] == push["messageId"] and row["checkLevel"] == 5
        if push["code"] == 0:
            assert (
                row["price"] == push["cost"]["price"] and row["validity"] == push["data"]["live"]["validity"]
            )
        else:  # digits 6 and 9 fail an HLR check (codes 120 / 122): no cost in the push, price 0 in the row
            assert push["code"] in (120, 122) and "cost" not in push and row["price"] == 0
        assert row == outcomes.nxcloud_query_row(
            row["phone"], 5, batch_no="batch-1000", message_id=row["messageId"]
        )


def test_query_refusals(sandbox, nx):
    assert nx.submit(["5215512345670"], batch_no="q-1").json()["code"] == 0
    day = today(sandbox)
    ok = nx.query(batchNo="q-1", page=1, pageSize=100, date=day)
    assert ok["code"] == 0 and ok["data"]["totalSize"] == 1

    too_big = nx.query(batchNo="q-1", page=1, pageSize=101, date=day)
    assert too_big["code"] == 88 and "pageSize" in too_big["msg"] and too_big["data"] == {}

    now = dt.date.fromisoformat(day)
    fifteen = nx.query(batchNo="q-1", page=1, pageSize=100, date=(now - dt.timedelta(days=15)).isoformat())
    assert fifteen["code"] == 88 and "14 days" in fifteen["msg"]
    fourteen = nx.query(batchNo="q-1", page=1, pageSize=100, date=(now - dt.timedelta(days=14)).isoformat())
    assert fourteen["code"] == 0 and fourteen["data"]["totalSize"] == 0

    neither = nx.query(page=1, pageSize=100, date=day)
    assert neither["code"] == 88 and "batchNo and messageId" in neither["msg"]
    assert nx.query(batchNo="q-1", page=1, pageSize=100, date="2024/01/01")["code"] == 88
    assert nx.query(batchNo="q-1", page=1, pageSize=100, date=day, appkey="nope")["code"] == 202
    assert (
        nx.query(batchNo="q-1", page=1, pageSize=100, date=day, appkey="sandbox-foreign-appkey")["code"]
        == 210
    )


def test_query_by_message_id_and_rate_limit(sandbox, nx):
    request_id = nx.submit(["5215512345670", "5215512345671"], batch_no="m-1").json()["data"]["messageId"]
    day = today(sandbox)
    one = nx.query(messageId=f"{request_id}-000002", page=1, pageSize=100, date=day)
    assert [r["phone"] for r in one["data"]["result"]] == ["5215512345671"]
    whole = nx.query(messageId=request_id, page=1, pageSize=100, date=day)
    assert whole["data"]["totalSize"] == 2

    sandbox.control.settings(query_min_interval_s=3)
    assert nx.query(batchNo="m-1", page=1, pageSize=100, date=day)["code"] == 0
    limited = nx.query(batchNo="m-1", page=1, pageSize=100, date=day)
    assert limited["code"] == 88 and "one query every 3 s" in limited["msg"]


def test_strict_profile_enforces_the_documented_query_interval(sandbox, nx):
    """Strict: one query per interval per accessKey whatever query_min_interval_s says; the
    interval is the documented 3 s unless the sandbox was started (or set) with a shorter one."""
    nx.submit(["5215512345670"], batch_no="s-1")
    sandbox.control.settings(profile="strict")
    assert sandbox.control.health()["query_min_interval_s"] == TEST_STRICT_QUERY_INTERVAL_S
    # long enough that two calls in a row fall within it on a busy machine; 0 cannot loosen strict
    sandbox.control.settings(strict_query_min_interval_s=0.5, query_min_interval_s=0)
    interval = sandbox.control.health()["query_min_interval_s"]
    assert interval == 0.5
    day = today(sandbox)
    assert nx.query(batchNo="s-1", page=1, pageSize=100, date=day)["code"] == 0
    too_soon = nx.query(batchNo="s-1", page=1, pageSize=100, date=day)
    assert too_soon["code"] == 88 and "秒最多查询一次" in too_soon["msg"]  # strict: Chinese texts
    time.sleep(interval * 1.5)
    assert nx.query(batchNo="s-1", page=1, pageSize=100, date=day)["code"] == 0
    health = sandbox.control.health()
    assert health["query_refusals"] == 1 and health["calls"]["nxcloud.query"] == 3


def test_strict_query_interval_defaults_to_the_documented_three_seconds():
    assert SandboxState(SandboxConfig(profile="strict")).query_min_interval_s == 3.0
    assert SandboxState(SandboxConfig()).query_min_interval_s == 0.0
    assert SandboxState(SandboxConfig(query_min_interval_s=0.5)).query_min_interval_s == 0.5


def test_push_is_given_up_after_sixty_vendor_minutes(sandbox, nx, receiver_stub):
    receiver_stub.fail_next(10**6, status=500)
    nx.submit(["5215512345670"], batch_no="g-1", dr_url=receiver_stub.url)
    sandbox.control.wait_pushes(timeout_s=30)
    log = sandbox.control.pushes(batch_no="g-1")
    assert [p["attempt"] for p in log] == list(range(1, 62))  # first try + one retry per vendor minute
    assert [p["outcome"] for p in log] == ["retry"] * 60 + ["gave_up"]
    assert len(receiver_stub.received(answered=500)) == 61


def test_held_pushes_wait_until_released(sandbox, nx, receiver_stub):
    sandbox.control.settings(pushes_held=True)
    nx.submit(["5215512345670", "5215512345671"], batch_no="h-1", dr_url=receiver_stub.url)
    with pytest.raises(TimeoutError, match="2 push"):  # nothing may go while held
        sandbox.control.wait_pushes(timeout_s=1)
    assert receiver_stub.received() == [] and sandbox.control.pushes(batch_no="h-1") == []
    sandbox.control.settings(pushes_held=False)
    sandbox.control.wait_pushes()
    assert sorted(p["outcome"] for p in sandbox.control.pushes(batch_no="h-1")) == ["accepted", "accepted"]
    assert len(receiver_stub.received()) == 2


def test_faults_rate_limit_errors_drops_and_duplicates(sandbox, nx, receiver_stub):
    sandbox.control.faults({"target": "nxcloud.check", "kind": "rate_limit", "count": 2})
    answers = [nx.submit(["5215512345670"]) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[2].json()["code"] == 0

    def error_pattern() -> list[int]:
        sandbox.control.faults(
            {"target": "nxcloud", "kind": "error", "status": 503, "fraction": 0.5, "seed": 7}
        )
        return [nx.submit(["5215512345670"]).status_code for _ in range(12)]

    first = error_pattern()
    assert set(first) == {200, 503} and error_pattern() == first  # seeded: the same every run

    sandbox.control.faults(
        {"target": "push", "kind": "drop", "count": 1},
        {"target": "push.number_check", "kind": "duplicate", "after": 1, "count": 1},
    )
    nx.submit(["5215512345670", "5215512345671", "5215512345672"], batch_no="f-1", dr_url=receiver_stub.url)
    sandbox.control.wait_pushes()
    outcomes_seen = sorted(p["outcome"] for p in sandbox.control.pushes(batch_no="f-1"))
    assert outcomes_seen == ["accepted", "accepted", "dropped", "duplicate"]
    assert len(receiver_stub.received()) == 3  # two numbers delivered, one of them twice

    sandbox.control.faults({"target": "nxcloud.query", "kind": "slow", "delay_s": 0.2})
    slowed = nx.query(batchNo="f-1", page=1, pageSize=100, date=today(sandbox))
    assert slowed["code"] == 0 and slowed["data"]["totalSize"] == 3

    header_fault = nx.submit(["5215512345670"], extra_headers={"X-Sandbox-Fault": "code;code=211"})
    assert header_fault.json()["code"] == 211


def test_2024_push_shape_per_batch(sandbox, nx, receiver_stub):
    answer = nx.submit(
        ["5215512345670", "18617", "5215512345679"],
        level=5,
        batch_no="n-1",
        dr_url=receiver_stub.url,
        extra_headers={"X-Sandbox-Push-Shape": "2024"},
    ).json()
    assert set(answer) == {"code", "message", "data", "traceId"}
    assert answer["data"]["failNumber"] == [{"number": "18617", "reason": "Invalid number format"}]
    sandbox.control.wait_pushes()
    pushes = {r.json()["phone"]: r.json() for r in receiver_stub.received()}
    assert set(pushes) == {"5215512345670", "5215512345679"}
    good = pushes["5215512345670"]
    assert good == outcomes.nxcloud_result_2024(
        "5215512345670", 5, batch_no="n-1", request_id=good["requestId"]
    )
    assert set(good["data"]) == {"numberType", "operator", "country", "mcc", "mnc", "ported", "active"}
    assert pushes["5215512345679"]["data"] is None and pushes["5215512345679"]["code"] == 122
