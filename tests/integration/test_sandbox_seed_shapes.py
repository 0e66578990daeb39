"""Every seed example payload is reproduced by the sandbox: same field names, same types (field by field)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from phonecheck.sandbox import outcomes
from tests import seed_payloads as seed
from tests.integration.test_sandbox_accuauth import AaClient
from tests.integration.test_sandbox_nxcloud import NxClient

pytestmark = pytest.mark.integration

# Seed fields documented as JSON "number" (int and float both valid), e.g. NXCLOUD query-API doc's price 0.
NUMBER_FIELDS = {"price"}


def assert_same_shape(ours: Any, theirs: Any, path: str = "$") -> None:
    """Same keys at every level and the same JSON type for every value."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{path}: {ours!r} is not an object"
        assert list(ours) == list(theirs) or set(ours) == set(theirs), (
            f"{path}: fields {sorted(ours)} != seed {sorted(theirs)}"
        )
        for key, value in theirs.items():
            assert_same_shape(ours[key], value, f"{path}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list), f"{path}: not an array"
        for index, item in enumerate(ours):
            assert_same_shape(item, theirs[0], f"{path}[{index}]")
    elif path.rsplit(".", 1)[-1] in NUMBER_FIELDS:
        assert isinstance(ours, int | float) and not isinstance(ours, bool), (
            f"{path}: {ours!r} is not a number"
        )
    else:
        assert type(ours) is type(theirs), f"{path}: {type(ours).__name__} != seed {type(theirs).__name__}"


@pytest.fixture
def nx(sandbox):
    return NxClient(sandbox)


@pytest.mark.parametrize(
    ("phone", "level", "seed_push"),
    [
        ("8613800001220", 1, seed.NUMBER_CHECK_PUSH_BASIC),
        ("8613800001220", 5, seed.NUMBER_CHECK_PUSH_HLR),
        ("8613800001224", 4, seed.NUMBER_CHECK_PUSH_CALL),
        ("18617", 1, seed.NUMBER_CHECK_PUSH_FAILURE),
    ],
    ids=["basic", "hlr", "call", "failure"],
)
def test_seed_000_result_pushes(sandbox, nx, receiver_stub, phone, level, seed_push):
    nx.submit([phone], level=level, batch_no="700337042751", dr_url=receiver_stub.url)
    push = receiver_stub.wait_for(1)[0]
    assert push.method == "POST" and push.headers["Content-Type"] == "application/json"
    body = push.json()
    assert_same_shape(body, seed_push)
    assert (body["code"], body["msg"], body["batchNo"]) == (
        seed_push["code"],
        seed_push["msg"],
        "700337042751",
    )
    if level == 4:  # the seed's call example: an unassigned number
        assert body["data"]["dial"] == seed_push["data"]["dial"]
    if level == 5:
        assert body["data"]["basic"]["carrier"] == "China Telecom" and body["cost"]["currency"] == "USD"


def test_seed_001_query_responses(sandbox, nx):
    nx.submit(["8498123456712", "8498123456702"], level=1, batch_no="101713775788")
    day = dt.datetime.fromtimestamp(sandbox.control.clock()["now_ms"] / 1000, dt.UTC).date().isoformat()
    found = nx.query(batchNo="101713775788", page=1, date=day, pageSize=100)
    assert_same_shape(found, seed.NUMBER_CHECK_QUERY_RESPONSE)
    assert set(found["data"]["result"][0]) == set(seed.NUMBER_CHECK_QUERY_RESPONSE["data"]["result"][0])
    assert (
        found["data"]["result"][0]["currency"] == "VND"
        and found["data"]["result"][0]["carrier"] == "Vinaphone"
    )

    seed_row = seed.NUMBER_CHECK_QUERY_RESPONSE["data"]["result"][0]
    extra_fields = {5: set(), 4: {"early", "answered", "response"}}
    for batch_no, level in [("h-1", 5), ("c-1", 4)]:
        nx.submit(["8498123456712"], level=level, batch_no=batch_no)
        row = nx.query(batchNo=batch_no, page=1, date=day, pageSize=100)["data"]["result"][0]
        assert_same_shape({k: row[k] for k in seed_row}, seed_row)
        assert set(row) - set(seed_row) == extra_fields[level] and row["checkLevel"] == level
        if level == 5:  # a number ending in 2 is busy: valid and reachable, not roaming
            assert (row["validity"], row["reachable"], row["roaming"]) == ("YES", "YES", "NO")
        else:
            assert (row["early"], row["answered"], row["response"]) == ("YES", "NO", "busy")

    empty = nx.query(batchNo="no-such-batch", page=1, date=day, pageSize=100)
    assert empty == {
        **seed.NUMBER_CHECK_QUERY_RESPONSE_EMPTY,
        "data": {**seed.NUMBER_CHECK_QUERY_RESPONSE_EMPTY["data"]},
    }

    failed = nx.query(batchNo="101713775788", page=1, date="2023/08/12", pageSize=100)
    assert failed == seed.NUMBER_CHECK_QUERY_RESPONSE_FAILED


def test_seed_002_task_result_answers(sandbox, receiver_stub):
    aa = AaClient(sandbox)
    sandbox.control.settings(accuauth_pending_polls=1, accuauth_pending_seconds=0)
    task_id = aa.submit(phone_number="5215512345670").json()["task_id"]
    pending = aa.task_result(task_id)
    assert pending.status_code == seed.ACCUAUTH_TASK_PENDING_HTTP_STATUS
    assert_same_shape(pending.json(), seed.ACCUAUTH_TASK_PENDING)
    assert (
        pending.json()["status"] == "PENDING"
        and pending.json()["reason"] == seed.ACCUAUTH_TASK_PENDING["reason"]
    )
    ok = aa.task_result(task_id)
    assert ok.status_code == 200
    assert_same_shape(ok.json(), seed.ACCUAUTH_TASK_OK)
    assert ok.json()["result"]["phone_status"] in outcomes.ACCUAUTH_PHONE_STATUSES

    invalid = aa.submit()
    assert invalid.status_code == 400
    assert_same_shape(invalid.json(), seed.ACCUAUTH_ERROR_INVALID_ARGUMENT)
    assert {k: v for k, v in invalid.json().items() if k != "request_id"} == {
        k: v for k, v in seed.ACCUAUTH_ERROR_INVALID_ARGUMENT.items() if k != "request_id"
    }


def test_seed_003_voice_receipt_is_pushed_once_form_encoded(sandbox, receiver_stub):
    c = sandbox.credentials
    sandbox.control.settings(voice_dr_url=receiver_stub.url_for("/voice/dr"))
    receiver_stub.body = "error"  # even a refused receipt is never pushed again
    form = {"appkey": c.nxcloud_appkey, "secretkey": c.nxcloud_voice_secretkey, "phone": "8615088888888"}
    form.update({"country_code": "86", "show_phone": "85235757584", "url": "https://example.com/a.mp3"})
    sent = httpx.post(f"{sandbox.nxcloud_host}/api/voiceSms/gpsend", data=form).json()
    assert sent["code"] == "0" and len(sent["messageid"]) == 32

    receipt = receiver_stub.wait_for(1)[0]
    assert receipt.headers["Content-Type"] == "application/x-www-form-urlencoded"
    fields = receipt.form()
    assert list(fields) == list(seed.VOICE_RECEIPT_FIELDS)
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["messageid"] == sent["messageid"] and fields["phone"] == "8615088888888"
    assert {k: fields[k] for k in ("result", "hangup_cause", "hangup_disposition", "ivr_result")} == {
        k: seed.VOICE_RECEIPT_FIELDS[k]
        for k in ("result", "hangup_cause", "hangup_disposition", "ivr_result")
    }
    dt.datetime.strptime(fields["start_time"], "%Y-%m-%d %H:%M:%S")
    sandbox.control.wait_pushes()
    log = sandbox.control.pushes(kind="voice_receipt")
    assert [(p["attempt"], p["outcome"]) for p in log] == [(1, "refused")]
    assert len(receiver_stub.received(answered=None)) == 1

    wrong_key = httpx.post(
        f"{sandbox.nxcloud_host}/api/voiceSms/gpsend", data={**form, "secretkey": "x"}
    ).json()
    assert wrong_key["code"] == "1"
    assert "secretkey=***" in sandbox.control.calls(event="nxcloud.voice")[-1]["body"]


def test_voice_notification_receipt_has_its_documented_fields(sandbox, receiver_stub):
    c = sandbox.credentials
    form = {
        "appkey": c.nxcloud_appkey,
        "secretkey": c.nxcloud_voice_secretkey,
        "phone": "5215512345673,5215512345670",
    }
    form.update({"country_code": "52", "show_phone": "5215500000000", "content": "1-2-3-4", "ext": "order-9"})
    headers = {"X-Sandbox-Dr-Url": receiver_stub.url}
    assert (
        httpx.post(f"{sandbox.nxcloud_host}/api/voiceSms/notsend", data=form, headers=headers).json()["code"]
        == "0"
    )
    receipts = {r.form()["phone"]: r.form() for r in receiver_stub.wait_for(2)}
    busy = receipts["5215512345673"]
    assert busy["voice_type"] == "1" and busy["ext"] == "order-9" and "basic_price" not in busy
    assert (busy["result"], busy["hangup_cause"], busy["duration"]) == (
        "Unsuccessful connection",
        "USER_BUSY",
        "0",
    )
    assert receipts["5215512345670"]["result"] == "Successful connection"


def test_seed_004_call_record_push_retried_until_200(sandbox, receiver_stub):
    receiver_stub.fail_next(2)
    placed = sandbox.control.pns_call(caller="85235757583", callee="85238533300", url=receiver_stub.url)
    sandbox.control.wait_pushes()
    delivered = receiver_stub.received()
    assert len(delivered) == 1 and len(receiver_stub.received(answered=None)) == 3
    record = delivered[0].json()
    assert_same_shape(record, seed.CALL_RECORD_PUSH)
    assert list(record) == list(seed.CALL_RECORD_PUSH)
    assert record == placed["record"]
    assert (record["callStatus"], record["hangupCause"], record["hangupCode"]) == (1, "", 0)
    assert [p["outcome"] for p in sandbox.control.pushes(kind="pns_call_record")] == [
        "retry",
        "retry",
        "accepted",
    ]

    leg_list = sandbox.control.pns_call(callee="85238533303", url=receiver_stub.url, shape="legList")[
        "record"
    ]
    assert leg_list["callStatus"] == "2" and len(leg_list["legList"]) == 2
    assert leg_list["legList"][1]["hangupCause"] == "USER_BUSY" and leg_list["legList"][1]["hangupCode"] == 17
