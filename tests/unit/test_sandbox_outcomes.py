"""The sandbox's pure parts: the outcome table, prices, ids, fault rules and settings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from phonecheck.sandbox import outcomes
from phonecheck.sandbox.config import SandboxConfig
from phonecheck.sandbox.faults import FaultRule, Faults, parse_fault_header


@pytest.mark.parametrize(
    ("last_digit", "live", "dial"),
    [
        (0, ("YES", "YES", "NO"), ("YES", "YES", "bell")),
        (1, ("YES", "YES", "YES"), ("YES", "NO", "music")),
        (2, ("YES", "YES", "NO"), ("YES", "NO", "busy")),
        (3, ("YES", "NO", "NO"), ("NO", "NO", "power_off")),
        (4, ("NO", "NO", "NO"), ("NO", "NO", "invalid_number")),
        (5, ("UNKNOWN", "UNKNOWN", "UNKNOWN"), ("YES", "NO", "no_response")),
        (7, ("YES", "NO", "NO"), ("YES", "YES", "voicemail")),
        (8, ("YES", "NO", "UNKNOWN"), ("NO", "NO", "power_off_or_out_of_service")),
    ],
)
def test_number_check_table_by_last_digit(last_digit, live, dial):
    phone = f"52155123456{last_digit}"
    hlr = outcomes.nxcloud_result(phone, 5, batch_no="b", message_id="m")
    call = outcomes.nxcloud_result(phone, 4, batch_no="b", message_id="m")
    assert (
        hlr["data"]["live"]["validity"],
        hlr["data"]["live"]["reachable"],
        hlr["data"]["live"]["roaming"],
    ) == live
    assert (
        call["data"]["dial"]["early"],
        call["data"]["dial"]["answered"],
        call["data"]["dial"]["response"],
    ) == dial
    assert set(hlr["data"]) == {"basic", "live"} and set(call["data"]) == {"basic", "dial"}
    assert hlr["code"] == 0 and hlr["msg"] == "success"


def test_basic_result_fields_and_price():
    push = outcomes.nxcloud_result("5215512345620", 1, batch_no="b-1", message_id="m-1")
    assert push == {
        "messageId": "m-1",
        "code": 0,
        "msg": "success",
        "batchNo": "b-1",
        "phone": "5215512345620",
        "data": {
            "basic": {
                "preCheck": "YES",
                "regionCode": "MX",
                "countryCode": "52",
                "nationalNumber": "15512345620",
                "standNumber": "5215512345620",
                "numberType": 2,
                "carrier": "AT&T Mexico",
            }
        },
        "cost": {"price": 0.004, "currency": "USD"},
    }
    assert outcomes.nxcloud_price("MX", 1) == (Decimal("0.0040"), "USD")
    assert outcomes.nxcloud_price("VN", 5) == (Decimal("300.0000"), "VND")
    with pytest.raises(KeyError):
        outcomes.nxcloud_price("ZZ", 1)


def test_failures():
    assert outcomes.nxcloud_result("18617", 1) == {
        "messageId": "",
        "code": 114,
        "msg": "Invalid number format",
        "batchNo": "",
        "phone": "18617",
    }
    assert outcomes.nxcloud_failure_code("4930123456780", 1) == 114  # no sandbox price for Germany
    assert outcomes.nxcloud_failure_code("52155123456a0", 1) == 114
    assert outcomes.nxcloud_failure_code("5215512345679", 1) == 122
    fixed_line = "5215512345676"
    assert outcomes.nxcloud_failure_code(fixed_line, 1) is None
    assert outcomes.nxcloud_result(fixed_line, 1)["data"]["basic"]["numberType"] == 1
    assert [outcomes.nxcloud_failure_code(fixed_line, level) for level in (4, 5)] == [120, 120]
    row = outcomes.nxcloud_query_row("18617", 1, batch_no="b", message_id="m")
    assert (row["preCheck"], row["price"], row["numberType"], row["checkLevel"]) == ("NO", 0, 0, 1)
    with pytest.raises(ValueError):
        outcomes.nxcloud_result("5215512345670", 2)


def test_2024_shape():
    push = outcomes.nxcloud_result_2024("5215512345671", 5, batch_no="b", request_id="r")
    assert push["data"] == {
        "numberType": "mobile",
        "operator": "Movistar",  # second-to-last digit 7: carriers[7 % 3]
        "country": "MX",
        "mcc": "334",
        "mnc": "02",
        "ported": "YES",
        "active": "YES",
    }
    assert set(push) == {"requestId", "code", "message", "batchNo", "phone", "data", "cost"}
    assert outcomes.nxcloud_result_2024("5215512345674", 1)["data"]["numberType"] == "invalid"
    failed = outcomes.nxcloud_result_2024("5215512345679", 1)
    assert (failed["code"], failed["data"], failed["cost"]["price"]) == (122, None, 0)


def test_message_ids_and_accuauth_tables():
    assert outcomes.message_id_for("abc", 1, 1) == "abc"
    assert outcomes.message_id_for("abc", 7, 20) == "abc-000007"
    statuses = [outcomes.accuauth_phone_status(f"52155123456{d}") for d in range(10)]
    assert statuses[:8] == list(outcomes.ACCUAUTH_PHONE_STATUSES) and statuses[8:] == ["ring", "connected"]
    assert [outcomes.accuauth_pending_polls(f"5215512345{d}0") for d in range(10)] == [
        0,
        0,
        0,
        0,
        0,
        1,
        2,
        3,
        4,
        5,
    ]
    assert outcomes.voice_outcome("8615088888888")["result"] == "Successful connection"
    assert outcomes.voice_outcome("8615088888883")["hangup_cause"] == "USER_BUSY"
    assert outcomes.pns_outcome("85238533300")["callStatus"] == 1


def test_fault_rules_are_deterministic():
    burst = FaultRule(target="nxcloud", kind="rate_limit", after=1, count=2)
    assert [burst.fires() for _ in range(5)] == [False, True, True, False, False]
    assert (
        burst.matches("nxcloud.check")
        and not burst.matches("nxcloudx")
        and not burst.matches("accuauth.submit")
    )

    def pattern() -> list[bool]:
        rule = FaultRule(target="*", kind="error", fraction=0.3, seed=42)
        return [rule.fires() for _ in range(50)]

    assert pattern() == pattern() and 5 < sum(pattern()) < 25

    faults = Faults()
    faults.set(
        [{"target": "push", "kind": "slow", "delay_s": 0.5}, {"target": "push", "kind": "drop", "count": 1}]
    )
    first, second = faults.decide("push.number_check"), faults.decide("push.number_check")
    assert (first.delay_s, first.fault.kind) == (0.5, "drop") and (second.delay_s, second.fault) == (
        0.5,
        None,
    )

    header = parse_fault_header("error;status=503;delay_s=1.5", "nxcloud.check")
    assert (header.kind, header.status, header.delay_s) == ("error", 503, 1.5)
    with pytest.raises(ValueError):
        FaultRule(target="*", kind="explode")
    with pytest.raises(ValueError):
        FaultRule.from_json({"target": "*", "kind": "error", "colour": "red"})


def test_settings_replace():
    config = SandboxConfig()
    assert config.replace({"vendor_minute_s": 0.05}).vendor_minute_s == 0.05
    with pytest.raises(ValueError, match="unknown sandbox setting"):
        config.replace({"vendor_minutes": 1})
    with pytest.raises(ValueError):
        config.replace({"push_shape": "2025"})
