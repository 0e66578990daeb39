"""Parsers map every field of every documented shape (seed payloads verbatim)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest

from phonecheck.parsers import PayloadError
from phonecheck.parsers import accuauth as aa
from phonecheck.parsers import nxcloud as nx
from tests import seed_payloads as seed

BASIC_FIELDS = {
    "pre_check": "YES",
    "region_code": "CN",
    "country_code": "86",
    "national_number": "800001xxxxx",
    "stand_number": "234800001xxxxx",
    "number_type": "2",
    "carrier": "China Telecom",
}


def test_number_check_push_basic_maps_every_field():
    row = nx.parse_number_check_push(seed.NUMBER_CHECK_PUSH_BASIC)
    assert row | {} == row
    assert {k: row[k] for k in BASIC_FIELDS} == BASIC_FIELDS
    assert row["message_id"] == "83ac9512-3c47-495d-a3c4-6d77a9f1149c"
    assert (row["code"], row["msg"], row["batch_no"], row["phone"]) == (
        0,
        "success",
        "700337042751",
        "234800001xxxxx",
    )
    assert (row["price"], row["currency"]) == (Decimal("0.1912"), "USD")
    assert row["validity"] is row["early"] is row["check_level"] is None
    assert row["source"] == "push"
    assert row["e164"] is None  # masked example number cannot be normalised


def test_number_check_push_hlr_and_call():
    hlr = nx.parse_number_check_push(seed.NUMBER_CHECK_PUSH_HLR)
    assert (hlr["validity"], hlr["reachable"], hlr["roaming"]) == ("YES", "UNKNOWN", "UNKNOWN")
    assert hlr["price"] == Decimal("0.9230")
    call = nx.parse_number_check_push(seed.NUMBER_CHECK_PUSH_CALL)
    assert (call["early"], call["answered"], call["response"]) == ("NO", "NO", "invalid_number")
    assert call["price"] == Decimal("1.0231")
    assert {k: call[k] for k in BASIC_FIELDS} == BASIC_FIELDS


def test_number_check_push_failure():
    row = nx.parse_number_check_push(seed.NUMBER_CHECK_PUSH_FAILURE)
    assert (row["code"], row["msg"], row["phone"]) == (114, "Invalid number format", "18617")
    assert row["message_id"] == "cc5ef7d6-62be-42c9-abdf-b6ea9d6ed5e6"
    assert row["price"] is None and row["pre_check"] is None


def test_number_check_push_2024_shape():
    payload = {
        "requestId": "a" * 32,
        "code": 0,
        "message": "Success",
        "batchNo": "b-1",
        "phone": "8613800138000",
        "data": {"numberType": "mobile", "operator": "China Mobile", "country": "CN", "mcc": "460",
                 "mnc": "00", "ported": "no", "active": "yes"},
        "cost": {"price": 0.01, "currency": "USD"},
    }  # fmt: skip
    row = nx.parse_number_check_push(payload)
    assert (row["message_id"], row["msg"], row["number_type"], row["carrier"], row["region_code"]) == (
        "a" * 32, "Success", "mobile", "China Mobile", "CN",
    )  # fmt: skip
    assert (row["mcc"], row["mnc"], row["ported"], row["active"]) == ("460", "00", "NO", "YES")
    assert row["e164"] == "+8613800138000"
    failure = nx.parse_number_check_push(
        {**payload, "code": 266, "message": "subBalance failed", "data": None}
    )
    assert failure["code"] == 266 and failure["number_type"] is None


def test_unknown_values_are_kept_as_received():
    payload = {
        **seed.NUMBER_CHECK_PUSH_HLR,
        "data": {"basic": {"numberType": 42}, "live": {"validity": "MAYBE"}},
    }
    row = nx.parse_number_check_push(payload)
    assert (row["number_type"], row["validity"]) == ("42", "MAYBE")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"code": 0, "phone": "1"}, "batchNo"),
        ({"code": 0, "batchNo": "b"}, "phone"),
        ({"batchNo": "b", "phone": "1"}, "code"),
        ({"batchNo": "b", "phone": "1", "code": "x"}, "code"),
        ({"batchNo": "b", "phone": "1", "code": 0, "cost": {"price": "abc"}}, "cost.price"),
        ({"batchNo": "b", "phone": "1", "code": 0, "data": []}, "data"),
        ({"batchNo": "b" * 65, "phone": "1", "code": 0}, "64"),
        ([1, 2], "object"),
    ],
)
def test_bad_number_check_push_says_why(payload, message):
    with pytest.raises(PayloadError, match=message):
        nx.parse_number_check_push(payload)


def test_query_rows_map_every_field():
    rows = [nx.parse_query_row(r) for r in seed.NUMBER_CHECK_QUERY_RESPONSE["data"]["result"]]
    first = rows[0]
    # undocumented level 2: kept as received (the loader of our batches puts our level in check_level)
    assert (first["check_level"], first["vendor_check_level"]) == (2, 2)
    assert (first["validity"], first["reachable"], first["roaming"]) == (None, None, None)  # "" = unknown
    assert (first["price"], first["currency"], first["carrier"], first["region_code"]) == (
        0,
        "VND",
        "Viettel",
        "VN",
    )
    assert first["message_id"] == "33f7c158a4194abe9ccdf3eac34a8422-2"
    assert (first["stand_number"], first["national_number"], first["country_code"]) == (
        "84****",
        "98****",
        "84",
    )
    assert first["number_type"] == "2" and first["pre_check"] == "YES" and first["source"] == "query"
    assert first["code"] is None


@pytest.mark.parametrize("level", [1, 4, 5])
def test_a_documented_query_check_level_is_the_check_level(level):
    row = nx.parse_query_row({**seed.NUMBER_CHECK_QUERY_RESPONSE["data"]["result"][0], "checkLevel": level})
    assert (row["check_level"], row["vendor_check_level"]) == (level, level)


def test_empty_strings_are_unknown_in_typed_push_columns():
    push = {**seed.NUMBER_CHECK_PUSH_BASIC, "msg": ""}
    push["data"] = {
        "basic": {**push["data"]["basic"], "carrier": " "},
        "live": {"validity": "", "reachable": "yes"},
    }
    row = nx.parse_number_check_push(push)
    assert (row["msg"], row["carrier"], row["validity"], row["reachable"]) == (None, None, None, "YES")


def test_dedupe_keys():
    assert nx.number_check_dedupe_key(seed.NUMBER_CHECK_PUSH_BASIC) == (
        "700337042751|234800001xxxxx|83ac9512-3c47-495d-a3c4-6d77a9f1149c"
    )
    assert (
        nx.voice_receipt_dedupe_key(seed.VOICE_RECEIPT_FIELDS)
        == "74078a0090f17e011505297261994|8615088888888"
    )
    assert nx.call_record_dedupe_key(seed.CALL_RECORD_PUSH) == "45"
    assert nx.call_record_dedupe_key({"callId": "c-1", "legList": []}) == "c-1"
    assert aa.callback_dedupe_key({"task_id": "t1"}) == "t1"


def test_voice_receipt_from_query_string_maps_every_field():
    fields = dict(parse_qsl(seed.VOICE_RECEIPT_QUERY_STRING, keep_blank_values=True))
    row = nx.parse_voice_receipt(fields, ZoneInfo("Asia/Shanghai"))
    assert (row["message_id"], row["phone"], row["country_code"]) == (
        "74078a0090f17e011505297261994",
        "8615088888888",
        "86",
    )
    assert (row["duration"], row["voice_type"], row["second"], row["cycle"], row["size"]) == (
        10,
        "0",
        10,
        60,
        1,
    )
    assert (row["basic_price"], row["customer_price"]) == (Decimal("0.005"), Decimal("0.036"))
    assert (row["start_time_local"], row["end_time_local"]) == ("2020-12-01 00:00:00", "2020-12-01 00:00:10")
    assert row["start_time"] == datetime(2020, 11, 30, 16, 0, 0, tzinfo=UTC)
    assert row["end_time"] == datetime(2020, 11, 30, 16, 0, 10, tzinfo=UTC)
    assert (row["result"], row["hangup_cause"], row["hangup_disposition"], row["ivr_result"]) == (
        "Successful connection", "NORMAL_CLEARING", "send_bye", "",
    )  # fmt: skip
    assert row["record_url"] is None and row["ext"] is None and row["e164"] == "+8615088888888"


def test_voice_receipt_timezone_is_configurable(monkeypatch):
    monkeypatch.setenv("VOICE_RECEIPT_TIMEZONE", "UTC")
    row = nx.parse_voice_receipt(seed.VOICE_RECEIPT_FIELDS)
    assert row["start_time"] == datetime(2020, 12, 1, tzinfo=UTC)
    with pytest.raises(PayloadError, match="start_time"):
        nx.parse_voice_receipt({**seed.VOICE_RECEIPT_FIELDS, "start_time": "yesterday"})


def test_call_record_flat_maps_every_field():
    row = nx.parse_call_record(seed.CALL_RECORD_PUSH)
    p = seed.CALL_RECORD_PUSH
    assert (row["record_id"], row["call_id"], row["business_id"], row["customer_bind_id"], row["bind_id"]) == (
        "45", p["callId"], "test_busi", "1", p["bindId"],
    )  # fmt: skip
    assert (row["did"], row["caller"], row["callee"]) == (p["did"], p["caller"], p["callee"])
    assert (row["call_status"], row["call_status_msg"], row["duration"]) == ("1", "", 6)
    assert (row["start_at_epoch"], row["answer_at_epoch"], row["hangup_at_epoch"]) == (
        1671440452,
        1671440454,
        1671440460,
    )
    assert row["answer_at"] == datetime(2022, 12, 19, 9, 0, 54, tzinfo=UTC)
    assert (row["hangup_cause"], row["hangup_code"], row["hangup"]) == ("", 0, 0)
    assert row["record_file"] == p["recordFile"] and row["leg_list"] is None


def test_call_record_leglist_shape():
    payload = {
        "bindId": "b", "customerBindId": "c", "callId": "call-9", "caller": "1", "did": "2", "didX": "3",
        "didY": "4", "extensionX": "5", "callee": "6", "pnsType": "axeyb", "callStatus": "1",
        "callStatusMsg": "ok", "ext": "e",
        "legList": [
            {"callType": 1, "callStartAt": 100, "callAnswerAt": 101, "callFinishAt": 130, "duration": 29,
             "callRecordFile": "", "hangupType": 0, "hangupCause": "NORMAL_CLEARING", "hangupCode": 16},
            {"callType": 2, "callStartAt": 102, "callAnswerAt": 105, "callFinishAt": 131, "duration": 26,
             "callRecordFile": "https://r/x.mp3", "hangupType": 1, "hangupCause": "USER_BUSY", "hangupCode": 17},
        ],
    }  # fmt: skip
    row = nx.parse_call_record(payload)
    assert (row["record_id"], row["call_id"], row["call_status"], row["pns_type"]) == (
        "call-9",
        "call-9",
        "1",
        "axeyb",
    )
    assert (row["start_at_epoch"], row["answer_at_epoch"], row["hangup_at_epoch"], row["duration"]) == (
        100,
        105,
        131,
        29,
    )
    assert (row["hangup_cause"], row["hangup_code"], row["hangup"]) == ("USER_BUSY", 17, 1)
    assert row["record_file"] == "https://r/x.mp3" and len(row["leg_list"]) == 2
    assert (row["did_x"], row["did_y"], row["extension_x"], row["ext"]) == ("3", "4", "5", "e")


def test_accuauth_answers():
    submitted = datetime(2026, 1, 1, tzinfo=UTC)
    at_once = aa.parse_submit_response(
        {
            "request_id": "TID1",
            "status": "OK",
            "result": {"phone_number": "525512345678", "phone_status": "busy"},
        },
        "525512345678",
        submitted,
    )
    assert (at_once["task_id"], at_once["status"], at_once["phone_status"], at_once["e164"]) == (
        "TID1", "OK", "busy", "+525512345678",
    )  # fmt: skip
    pending = aa.parse_submit_response(
        {"request_id": "TID2", "status": "OK", "task_id": "T2"}, "525512345678"
    )
    assert (pending["task_id"], pending["status"], pending["phone_status"]) == ("T2", "PENDING", None)
    polled = aa.parse_task_result(seed.ACCUAUTH_TASK_OK, "T2", "525512345678")
    assert (polled["status"], polled["phone_status"], polled["request_id"]) == (
        "OK", "ring", "TID591cb9fb0e284cf296912a4d0ffea889",
    )  # fmt: skip
    assert aa.parse_task_result(seed.ACCUAUTH_TASK_PENDING, "T2", "5")["reason"] == "check in progress"
    cb = aa.parse_callback(
        {"request_id": "R", "phone_number": "525512345678", "phone_status": "empty", "task_id": "T2"}
    )
    assert (cb["status"], cb["phone_status"], cb["source"]) == ("OK", "empty", "callback")
    with pytest.raises(PayloadError, match="task_id"):
        aa.parse_callback({"phone_number": "1", "phone_status": "ring"})


def test_voice_receipt_second_and_cycle_keep_their_decimals():
    fields = dict(parse_qsl(seed.VOICE_RECEIPT_QUERY_STRING, keep_blank_values=True))
    row = nx.parse_voice_receipt({**fields, "second": "9.75", "cycle": "60.0"}, ZoneInfo("Asia/Shanghai"))
    assert (row["second"], row["cycle"]) == (Decimal("9.75"), Decimal("60.0"))
    with pytest.raises(PayloadError, match="second"):
        nx.parse_voice_receipt({**fields, "second": "ten"}, ZoneInfo("Asia/Shanghai"))
