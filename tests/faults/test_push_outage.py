"""Vendor pushes the way the vendor sends them, through a warehouse outage (docs/receiver.md).

Under the strict sandbox profile voice receipts arrive as ``multipart/form-data`` with a decimal
``second`` / ``cycle``, and PNS call records are retried only twice, 5 vendor minutes apart (the
2024 revision): a receiver that answered 503 during an outage longer than ~10 vendor minutes
would lose them. Both profiles must keep every push.
"""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import psycopg
import pytest

from phonecheck.receiver.processing import process_inbox
from tests.fixtures.receiver import CALL, VOICE

pytestmark = [pytest.mark.integration, pytest.mark.faults]

VENDOR_MINUTE_S = 0.2  # the sandbox's compressed vendor clock for these tests
OUTAGE_VENDOR_MINUTES = 15
CALLS = 20


def send_voice(sandbox, receiver, phones: list[str]) -> str:
    """A voice notification through the sandbox's legacy form API; it pushes one receipt per
    phone to the receiver."""
    creds = sandbox.credentials
    answer = httpx.post(
        f"{sandbox.nxcloud_host}/api/voiceSms/notsend",
        data={
            "appkey": creds.nxcloud_appkey,
            "secretkey": creds.nxcloud_voice_secretkey,
            "phone": ",".join(phones),
            "country_code": "86",
            "content": "your code is 1234",
        },
        headers={"X-Sandbox-Dr-Url": receiver.url(VOICE)},
        timeout=10,
    ).json()
    assert answer["code"] == "0", answer
    return answer["messageid"]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)
    return value


def test_voice_receipts_land_in_telco_however_the_vendor_encodes_them(vendor_profile, sandbox, live_receiver):
    phones = [f"861508888{i:04d}" for i in range(5)]
    message_id = send_voice(sandbox, live_receiver, phones)
    sandbox.control.wait_pushes()
    pushes = sandbox.control.pushes(kind="voice_receipt")
    assert [p["outcome"] for p in pushes] == ["accepted"] * 5
    expected_type = (
        "multipart/form-data" if vendor_profile == "strict" else "application/x-www-form-urlencoded"
    )
    assert {p["content_type"].split(";")[0] for p in pushes} == {expected_type}

    counts = process_inbox(live_receiver.dsn)
    assert counts["failed"] == 0 and counts["loaded"] == {"telco.nxcloud_voice_receipt": 5}, counts
    with psycopg.connect(live_receiver.dsn) as conn:
        rows = conn.execute(
            "SELECT phone, duration, second, cycle FROM telco.nxcloud_voice_receipt "
            "WHERE message_id = %s ORDER BY phone",
            (message_id,),
        ).fetchall()
    assert [r[0] for r in rows] == phones
    for _, duration, second, cycle in rows:
        if vendor_profile == "strict":  # decimals as sent, not rounded
            assert (second, cycle) == (Decimal(duration) + Decimal("0.5"), Decimal("60.0"))
        else:
            assert (second, cycle) == (duration, 60)


def test_call_records_survive_a_15_minute_outage_with_a_2_retry_vendor(
    vendor_profile, sandbox, disposable_warehouse, start_receiver
):
    receiver = start_receiver(lambda: disposable_warehouse.dsn, replay_interval_s=0.2)
    sandbox.control.settings(vendor_minute_s=VENDOR_MINUTE_S)
    assert httpx.get(receiver.base_url + "/healthz", timeout=10).status_code == 200

    disposable_warehouse.stop()
    outage_started = time.monotonic()
    call_ids = [
        sandbox.control.pns_call(url=receiver.url(CALL), callee=f"8523853{i:04d}", id=900_000 + i)["callId"]
        for i in range(CALLS)
    ]
    voice_message = send_voice(sandbox, receiver, ["8615088880001", "8615088880002"])
    # the vendor's whole retry schedule runs while the warehouse is down
    sandbox.control.wait_pushes(timeout_s=60)
    remaining = OUTAGE_VENDOR_MINUTES * VENDOR_MINUTE_S - (time.monotonic() - outage_started)
    if remaining > 0:
        time.sleep(remaining)
    health = httpx.get(receiver.base_url + "/healthz", timeout=10).json()
    assert health["warehouse"] == "unavailable" and health["spool_pending"] is True
    disposable_warehouse.start()
    outage_vendor_minutes = (time.monotonic() - outage_started) / VENDOR_MINUTE_S
    assert outage_vendor_minutes >= OUTAGE_VENDOR_MINUTES

    pushes = sandbox.control.pushes(kind="pns_call_record")
    attempts = {p["call_id"]: p["attempt"] for p in pushes}
    assert set(attempts) == set(call_ids)
    assert {p["outcome"] for p in pushes} == {"accepted"}  # answered from the spool at once

    dsn = disposable_warehouse.dsn

    def replayed() -> bool:
        with psycopg.connect(dsn) as conn:
            n = conn.execute("SELECT count(*) FROM raw.webhook_event").fetchone()[0]
        return n == CALLS + 2

    wait_for(replayed, 60, "the spool replay")
    counts = process_inbox(dsn)
    assert counts["failed"] == 0, counts
    with psycopg.connect(dsn) as conn:
        stored = {r[0] for r in conn.execute("SELECT call_id FROM telco.nxcloud_call_record")}
        voice = conn.execute(
            "SELECT count(*) FROM telco.nxcloud_voice_receipt WHERE message_id = %s", (voice_message,)
        ).fetchone()[0]
    assert stored == set(call_ids) and voice == 2


def test_the_strict_vendor_gives_up_on_call_records_after_two_retries(sandbox, receiver_stub):
    """What the outage test guards against: answered 503, the 2024 schedule stops after two
    retries 5 vendor minutes apart (default profile: every vendor minute for an hour)."""
    sandbox.control.settings(profile="strict", vendor_minute_s=0.02)
    receiver_stub.fail_next(100, status=503)
    sandbox.control.pns_call(url=receiver_stub.url_for("/call"), callee="85238530001")
    sandbox.control.wait_pushes()
    pushes = sandbox.control.pushes(kind="pns_call_record")
    assert [p["attempt"] for p in pushes] == [1, 2, 3]
    assert [p["outcome"] for p in pushes] == ["retry", "retry", "gave_up"]
    gaps = [b["at_ms"] - a["at_ms"] for a, b in zip(pushes, pushes[1:], strict=False)]
    assert all(gap >= 5 * 0.02 * 1000 * 0.9 for gap in gaps), gaps
