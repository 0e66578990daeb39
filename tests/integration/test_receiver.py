"""The webhook receiver over real HTTP on a real warehouse.

Every seed push lands once in ``raw.webhook_event`` and, after processing, in its typed table
with every field mapped; retries store one row; wrong token → 404, > 1 MiB → 413, non-JSON →
stored with its error; processing is idempotent.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from phonecheck.receiver.processing import process_inbox
from tests import seed_payloads as seed
from tests.fixtures.receiver import ACCUAUTH, CALL, NUMBER_CHECK, VOICE, LiveReceiver

pytestmark = pytest.mark.integration

SHANGHAI_OFFSET = "+08:00"  # VOICE_RECEIPT_TIMEZONE default: Asia/Shanghai

NUMBER_CHECK_BASIC_ROW = {
    "batch_no": "700337042751",
    "phone": "234800001xxxxx",
    "message_id": "83ac9512-3c47-495d-a3c4-6d77a9f1149c",
    "check_level": None,  # pushes do not carry it
    "code": 0,
    "msg": "success",
    "pre_check": "YES",
    "region_code": "CN",
    "country_code": "86",
    "national_number": "800001xxxxx",
    "stand_number": "234800001xxxxx",
    "number_type": "2",
    "carrier": "China Telecom",
    "validity": None,
    "reachable": None,
    "roaming": None,
    "early": None,
    "answered": None,
    "response": None,
    "mcc": None,
    "mnc": None,
    "ported": None,
    "active": None,
    "price": Decimal("0.1912"),
    "currency": "USD",
    "e164": None,  # the seed masks digits with x: not a number
    "source": "push",
    "submission_id": None,
    "queried_at": None,
}

NUMBER_CHECK_CASES = {
    "basic": (seed.NUMBER_CHECK_PUSH_BASIC, NUMBER_CHECK_BASIC_ROW),
    "hlr": (
        seed.NUMBER_CHECK_PUSH_HLR,
        {
            **NUMBER_CHECK_BASIC_ROW,
            "validity": "YES",
            "reachable": "UNKNOWN",
            "roaming": "UNKNOWN",
            "price": Decimal("0.9230"),
        },
    ),
    "call": (
        seed.NUMBER_CHECK_PUSH_CALL,
        {
            **NUMBER_CHECK_BASIC_ROW,
            "early": "NO",
            "answered": "NO",
            "response": "invalid_number",
            "price": Decimal("1.0231"),
        },
    ),
    "failure": (
        seed.NUMBER_CHECK_PUSH_FAILURE,
        {
            **{k: None for k in NUMBER_CHECK_BASIC_ROW},
            "batch_no": "700337042751",
            "phone": "18617",
            "message_id": "cc5ef7d6-62be-42c9-abdf-b6ea9d6ed5e6",
            "code": 114,
            "msg": "Invalid number format",
            "source": "push",
        },
    ),
}

VOICE_ROW = {
    "message_id": "74078a0090f17e011505297261994",
    "phone": "8615088888888",
    "country_code": "86",
    "duration": 10,
    "voice_type": "0",
    "basic_price": Decimal("0.0050"),
    "second": 10,
    "cycle": 60,
    "size": 1,
    "customer_price": Decimal("0.0360"),
    "start_time_local": "2020-12-01 00:00:00",
    "end_time_local": "2020-12-01 00:00:10",
    "start_time": datetime.fromisoformat("2020-12-01T00:00:00" + SHANGHAI_OFFSET),
    "end_time": datetime.fromisoformat("2020-12-01T00:00:10" + SHANGHAI_OFFSET),
    "result": "Successful connection",
    "hangup_cause": "NORMAL_CLEARING",
    "hangup_disposition": "send_bye",
    "ivr_result": "",  # sent empty, kept as received
    "record_url": None,
    "ext": None,
    "e164": "+8615088888888",
    "source": "push",
}

CALL_ROW = {
    "record_id": "45",
    "call_id": "1604763745256783872",
    "business_id": "test_busi",
    "customer_bind_id": "1",
    "bind_id": "69f1d1be1a82204c6049b4a2797ed0af",
    "did": "85235757584",
    "did_x": None,
    "did_y": None,
    "caller": "85235757583",
    "callee": "85238533300",
    "extension_caller": None,
    "extension_callee": None,
    "extension_x": None,
    "pns_type": None,
    "call_status": "1",
    "call_status_msg": "",  # sent empty, kept as received
    "duration": 6,
    "start_at_epoch": 1671440452,
    "answer_at_epoch": 1671440454,
    "hangup_at_epoch": 1671440460,
    "start_at": datetime(2022, 12, 19, 9, 0, 52, tzinfo=UTC),
    "answer_at": datetime(2022, 12, 19, 9, 0, 54, tzinfo=UTC),
    "hangup_at": datetime(2022, 12, 19, 9, 1, 0, tzinfo=UTC),
    "hangup_cause": "",  # sent empty (a normal call), kept as received
    "hangup_code": 0,
    "hangup": 0,
    "record_file": "https://remote.record.nxcloud.com/pns/20221219/228c76b1-a685-4b26-9e48-a8a1d14670d4.mp3",
    "ext": None,
    "leg_list": None,
    "source": "push",
}

ACCUAUTH_PARAMS = {
    "request_id": "TID591cb9fb0e284cf296912a4d0ffea889",
    "phone_number": "5215512345678",
    "phone_status": "ring",
    "task_id": "TASK-7f3a9c",
}


def inbox(dsn: str) -> list[dict]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM raw.webhook_event ORDER BY event_id").fetchall()


def typed_rows(dsn: str, table: str) -> list[dict]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(f"SELECT * FROM {table}").fetchall()  # table names are constants here


def post_three_times(send) -> list[httpx.Response]:
    return [send() for _ in range(3)]


def assert_row(row: dict, expected: dict, event: dict) -> None:
    assert row["raw_event_id"] == event["event_id"]
    for column, value in expected.items():
        assert row[column] == value, f"{column}: {row[column]!r} != {value!r}"
    assert row["first_seen_at"] is not None and row["updated_at"] is not None


@pytest.mark.parametrize("case", sorted(NUMBER_CHECK_CASES))
def test_number_check_push_lands_once_and_maps_every_field(live_receiver: LiveReceiver, case: str):
    payload, expected = NUMBER_CHECK_CASES[case]
    answers = post_three_times(lambda: httpx.post(live_receiver.url(NUMBER_CHECK), json=payload))
    assert [a.status_code for a in answers] == [200, 200, 200]

    [event] = inbox(live_receiver.dsn)
    assert event["endpoint"] == "nxcloud_number_check" and event["vendor"] == "nxcloud"
    assert event["dedupe_key"] == f"{payload['batchNo']}|{payload['phone']}|{payload['messageId']}"
    assert event["delivery_count"] == 3 and event["parse_status"] == "parsed"
    assert event["payload"] == payload  # unknown fields would be kept too: the body is kept whole
    assert bytes(event["body"]) == httpx.Request("POST", "/", json=payload).content
    assert event["content_type"] == "application/json"
    assert event["processed_at"] is None

    counts = process_inbox(live_receiver.dsn)
    assert counts == {"claimed": 1, "processed": 1, "failed": 0, "loaded": {"telco.nxcloud_number_check": 1}}
    [row] = typed_rows(live_receiver.dsn, "telco.nxcloud_number_check")
    assert_row(row, expected, event)
    assert row["pushed_at"] == event["received_at"]
    [event] = inbox(live_receiver.dsn)
    assert event["processed_at"] is not None and event["process_error"] is None


@pytest.mark.parametrize("transport", ["form body", "query string"])
def test_voice_receipt_lands_once_and_maps_every_field(live_receiver: LiveReceiver, transport: str):
    def send() -> httpx.Response:
        if transport == "form body":
            return httpx.post(live_receiver.url(VOICE), data=seed.VOICE_RECEIPT_FIELDS)
        # the vendor's example verbatim, raw spaces included (the client percent-encodes them)
        return httpx.post(live_receiver.url(VOICE) + "?" + seed.VOICE_RECEIPT_QUERY_STRING)

    answers = post_three_times(send)
    assert [(a.status_code, a.text) for a in answers] == [(200, "success")] * 3
    assert answers[0].headers["content-type"].startswith("text/plain")

    [event] = inbox(live_receiver.dsn)
    assert event["dedupe_key"] == "74078a0090f17e011505297261994|8615088888888"
    assert event["delivery_count"] == 3 and event["parse_status"] == "parsed"
    assert event["payload"] == seed.VOICE_RECEIPT_FIELDS
    if transport == "query string":
        assert event["query_string"].startswith("phone=8615088888888&countryCode=86")
        assert bytes(event["body"]) == b""
    else:
        assert event["content_type"] == "application/x-www-form-urlencoded"
        assert b"result=Successful+connection" in bytes(event["body"])

    process_inbox(live_receiver.dsn)
    [row] = typed_rows(live_receiver.dsn, "telco.nxcloud_voice_receipt")
    assert_row(row, VOICE_ROW, event)


def test_call_record_lands_once_and_maps_every_field(live_receiver: LiveReceiver):
    answers = post_three_times(lambda: httpx.post(live_receiver.url(CALL), json=seed.CALL_RECORD_PUSH))
    assert [a.status_code for a in answers] == [200, 200, 200]
    [event] = inbox(live_receiver.dsn)
    assert event["dedupe_key"] == "45" and event["delivery_count"] == 3
    process_inbox(live_receiver.dsn)
    [row] = typed_rows(live_receiver.dsn, "telco.nxcloud_call_record")
    assert_row(row, CALL_ROW, event)


def test_call_record_leglist_shape_keys_on_call_id(live_receiver: LiveReceiver):
    push = {
        "bindId": "b1",
        "customerBindId": "c1",
        "callId": "2024-call-1",
        "caller": "85235757583",
        "did": "85235757584",
        "didX": "85200000001",
        "didY": "85200000002",
        "extensionX": "123",
        "callee": "85238533300",
        "pnsType": "axeyb",
        "callStatus": "1",
        "callStatusMsg": "ok",
        "ext": "mine",
        "legList": [
            {"callType": 1, "callStartAt": 1700000000, "callAnswerAt": 1700000003, "callFinishAt": 1700000030,
             "duration": 27, "hangupType": 0, "hangupCause": "NORMAL_CLEARING", "hangupCode": 16},
        ],
    }  # fmt: skip
    assert httpx.post(live_receiver.url(CALL), json=push).status_code == 200
    [event] = inbox(live_receiver.dsn)
    assert event["dedupe_key"] == "2024-call-1"
    process_inbox(live_receiver.dsn)
    [row] = typed_rows(live_receiver.dsn, "telco.nxcloud_call_record")
    assert (row["record_id"], row["call_id"], row["pns_type"], row["call_status"]) == (
        "2024-call-1",
        "2024-call-1",
        "axeyb",
        "1",
    )
    assert row["leg_list"] == push["legList"] and row["hangup_cause"] == "NORMAL_CLEARING"


def test_accuauth_callback_lands_once(live_receiver: LiveReceiver):
    answers = post_three_times(lambda: httpx.get(live_receiver.url(ACCUAUTH), params=ACCUAUTH_PARAMS))
    assert [(a.status_code, a.json()) for a in answers] == [(200, {"status": "OK"})] * 3
    [event] = inbox(live_receiver.dsn)
    assert event["vendor"] == "accuauth" and event["dedupe_key"] == "TASK-7f3a9c"
    assert event["delivery_count"] == 3 and event["payload"] == ACCUAUTH_PARAMS
    process_inbox(live_receiver.dsn)
    [row] = typed_rows(live_receiver.dsn, "telco.accuauth_phone_check")
    assert_row(
        row,
        {
            "task_id": "TASK-7f3a9c",
            "request_id": ACCUAUTH_PARAMS["request_id"],
            "phone_number": "5215512345678",
            "status": "OK",
            "phone_status": "ring",
            "source": "callback",
            "completed_at": event["received_at"],
        },
        event,
    )


def test_wrong_token_answers_404_and_stores_nothing(live_receiver: LiveReceiver):
    for token in ("wrong", live_receiver.token[:-1], live_receiver.token + "x", "ünïcode", ""):
        r = httpx.post(live_receiver.url(NUMBER_CHECK, token=token), json=seed.NUMBER_CHECK_PUSH_BASIC)
        assert r.status_code in (404, 405), token  # an empty token is another path: 404/405
        r = httpx.post(live_receiver.url(VOICE, token=token), data=seed.VOICE_RECEIPT_FIELDS)
        assert r.status_code in (404, 405)
    assert inbox(live_receiver.dsn) == []


def test_body_over_one_mib_answers_413_and_stores_nothing(live_receiver: LiveReceiver):
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    assert httpx.post(live_receiver.url(NUMBER_CHECK), content=big).status_code == 413

    def chunks():  # no Content-Length: the limit must hold while reading
        for _ in range(32):
            yield b" " * 65536

    assert httpx.post(live_receiver.url(CALL), content=chunks()).status_code == 413
    exactly_limit = b'{"x":"' + b"a" * (1024 * 1024 - 8) + b'"}'
    assert len(exactly_limit) == 1024 * 1024
    assert httpx.post(live_receiver.url(CALL), content=exactly_limit).status_code == 200
    [event] = inbox(live_receiver.dsn)
    assert len(bytes(event["body"])) == 1024 * 1024 and event["parse_status"] == "error"


def test_body_that_is_not_json_is_stored_with_its_error_and_acknowledged(live_receiver: LiveReceiver):
    for _ in range(2):
        r = httpx.post(
            live_receiver.url(NUMBER_CHECK), content=b"<xml>oops</xml>", headers={"content-type": "text/xml"}
        )
        assert r.status_code == 200
    [event] = inbox(live_receiver.dsn)
    assert event["parse_status"] == "error" and event["parse_error"].startswith("body is not JSON")
    assert bytes(event["body"]) == b"<xml>oops</xml>" and event["content_type"] == "text/xml"
    assert event["dedupe_key"].startswith("sha256:") and event["delivery_count"] == 2
    assert event["payload"] is None
    assert process_inbox(live_receiver.dsn)["claimed"] == 0  # error rows wait for a human


def test_json_without_dedupe_key_is_kept_with_payload(live_receiver: LiveReceiver):
    assert httpx.post(live_receiver.url(NUMBER_CHECK), json={"unexpected": "shape"}).status_code == 200
    [event] = inbox(live_receiver.dsn)
    assert event["parse_status"] == "error" and "batchNo" in event["parse_error"]
    assert event["payload"] == {"unexpected": "shape"}


def test_unmappable_row_is_kept_with_process_error_and_others_still_load(live_receiver: LiveReceiver):
    bad = {**seed.VOICE_RECEIPT_FIELDS, "messageid": "bad-1", "duration": "ten"}
    good = {**seed.VOICE_RECEIPT_FIELDS, "messageid": "good-1"}
    assert httpx.post(live_receiver.url(VOICE), data=bad).text == "success"
    assert httpx.post(live_receiver.url(VOICE), data=good).text == "success"
    counts = process_inbox(live_receiver.dsn)
    assert counts["processed"] == 1 and counts["failed"] == 1
    events = {e["dedupe_key"].split("|")[0]: e for e in inbox(live_receiver.dsn)}
    assert "duration" in events["bad-1"]["process_error"]
    assert events["good-1"]["process_error"] is None
    assert [r["message_id"] for r in typed_rows(live_receiver.dsn, "telco.nxcloud_voice_receipt")] == [
        "good-1"
    ]


def test_processing_twice_and_late_retries_change_nothing(live_receiver: LiveReceiver):
    httpx.post(live_receiver.url(CALL), json=seed.CALL_RECORD_PUSH)
    httpx.post(live_receiver.url(VOICE), data=seed.VOICE_RECEIPT_FIELDS)
    assert process_inbox(live_receiver.dsn)["processed"] == 2
    before = typed_rows(live_receiver.dsn, "telco.nxcloud_call_record")
    # a vendor retry after processing: counted on the inbox row, nothing to process again
    httpx.post(live_receiver.url(CALL), json=seed.CALL_RECORD_PUSH)
    assert process_inbox(live_receiver.dsn)["claimed"] == 0
    assert typed_rows(live_receiver.dsn, "telco.nxcloud_call_record") == before
    # re-queueing every row (e.g. after a parser fix) is harmless too
    with psycopg.connect(live_receiver.dsn, autocommit=True) as conn:
        conn.execute("UPDATE raw.webhook_event SET processed_at = NULL")
    assert process_inbox(live_receiver.dsn)["processed"] == 2
    assert typed_rows(live_receiver.dsn, "telco.nxcloud_call_record") == before
    assert len(typed_rows(live_receiver.dsn, "telco.nxcloud_voice_receipt")) == 1


def test_logs_carry_route_templates_never_tokens_or_bodies(live_receiver: LiveReceiver, caplog):
    caplog.set_level(logging.DEBUG)
    marker = "body-marker-91e2"
    httpx.post(live_receiver.url(NUMBER_CHECK), json={**seed.NUMBER_CHECK_PUSH_BASIC, "msg": marker})
    httpx.post(live_receiver.url(CALL), content=marker.encode())
    httpx.post(live_receiver.url(VOICE, token="not-the-token"), data={"x": marker})
    access = [r.getMessage() for r in caplog.records if r.name == "phonecheck.receiver.access"]
    assert any("/telco-webhooks/nxcloud/number-check/{token} 200" in line for line in access)
    assert any("/telco-webhooks/nxcloud/voice/{token} 404" in line for line in access)
    # server-side loggers only: the test's own HTTP client logs the URLs it calls
    everything = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    assert live_receiver.token not in everything and "not-the-token" not in everything
    assert marker not in everything


def test_healthz_and_metrics(live_receiver: LiveReceiver):
    r = httpx.get(live_receiver.base_url + "/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    httpx.post(live_receiver.url(NUMBER_CHECK), json=seed.NUMBER_CHECK_PUSH_BASIC)
    httpx.post(live_receiver.url(NUMBER_CHECK), json=seed.NUMBER_CHECK_PUSH_BASIC)
    metrics = httpx.get(live_receiver.base_url + "/metrics").text
    assert 'endpoint="nxcloud_number_check",outcome="stored"} 1' in metrics
    assert 'endpoint="nxcloud_number_check",outcome="duplicate"} 1' in metrics


async def test_concurrent_deliveries_share_commits_and_count_exactly(live_receiver: LiveReceiver):
    """Many pushes at once (group commit: one statement for the waiting ones, keys repeated
    inside a batch): one row per key, every delivery counted, every answer 200."""
    import asyncio

    pushes = [{**seed.CALL_RECORD_PUSH, "id": i % 40, "callId": f"c{i % 40}"} for i in range(200)]
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=50)) as client:
        answers = await asyncio.gather(*(client.post(live_receiver.url(CALL), json=p) for p in pushes))
    assert {a.status_code for a in answers} == {200}
    with psycopg.connect(live_receiver.dsn) as conn:
        rows = conn.execute("SELECT dedupe_key, delivery_count FROM raw.webhook_event").fetchall()
    assert sorted(rows) == sorted((str(i), 5) for i in range(40))
    metrics = httpx.get(live_receiver.base_url + "/metrics").text
    assert 'endpoint="nxcloud_call",outcome="stored"} 40' in metrics
    assert 'endpoint="nxcloud_call",outcome="duplicate"} 160' in metrics
