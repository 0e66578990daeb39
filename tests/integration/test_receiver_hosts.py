"""The same contract through both real hosts: ``python -m phonecheck.receiver`` (``make
receiver``) and the Airflow api-server with the ``telco_webhooks`` plugin.

Each host gets the seed pushes three times, a wrong token, a 2 MiB body and a non-JSON body;
the warehouse must hold exactly one row per push, and the host's output must never print the
token nor a phone number of a query string.
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import psycopg
import pytest

from phonecheck.receiver.processing import process_inbox
from tests import seed_payloads as seed
from tests.fixtures.receiver import ACCUAUTH, CALL, NUMBER_CHECK, VOICE, LiveReceiver

pytestmark = pytest.mark.integration


def exercise_contract(receiver: LiveReceiver) -> None:
    with httpx.Client(timeout=30) as client:
        for _ in range(3):
            assert client.post(receiver.url(NUMBER_CHECK), json=seed.NUMBER_CHECK_PUSH_HLR).status_code == 200
            assert (
                client.post(receiver.url(NUMBER_CHECK), json=seed.NUMBER_CHECK_PUSH_FAILURE).status_code
                == 200
            )
            assert client.post(receiver.url(CALL), json=seed.CALL_RECORD_PUSH).status_code == 200
            voice = client.post(receiver.url(VOICE) + "?" + seed.VOICE_RECEIPT_QUERY_STRING)
            assert (voice.status_code, voice.text) == (200, "success")
            callback = client.get(
                receiver.url(ACCUAUTH),
                params={
                    "request_id": "TID1",
                    "phone_number": "5215512345678",
                    "phone_status": "busy",
                    "task_id": "T-9",
                },
            )
            assert callback.json() == {"status": "OK"}
        assert client.post(receiver.url(CALL, token="nope"), json=seed.CALL_RECORD_PUSH).status_code == 404
        assert client.post(receiver.url(CALL), content=b"x" * (2 * 1024 * 1024)).status_code == 413
        assert client.post(receiver.url(CALL), content=b"not json").status_code == 200

    with psycopg.connect(receiver.dsn) as conn:
        inbox = conn.execute(
            "SELECT endpoint, parse_status, delivery_count FROM raw.webhook_event ORDER BY event_id"
        ).fetchall()
    assert inbox == [
        ("nxcloud_number_check", "parsed", 3),
        ("nxcloud_number_check", "parsed", 3),
        ("nxcloud_call", "parsed", 3),
        ("nxcloud_voice", "parsed", 3),
        ("accuauth_phone_number", "parsed", 3),
        ("nxcloud_call", "error", 1),
    ]
    counts = process_inbox(receiver.dsn)
    assert counts["processed"] == 5 and counts["failed"] == 0
    with psycopg.connect(receiver.dsn) as conn:
        typed = [
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in (
                "telco.nxcloud_number_check",
                "telco.nxcloud_call_record",
                "telco.nxcloud_voice_receipt",
                "telco.accuauth_phone_check",
            )
        ]
    assert typed == [2, 1, 1, 1]
    output = receiver.output()
    assert receiver.token not in output
    # phone numbers ride in query strings (AccuAuth callbacks, voice GETs): no log line shows them
    assert "5215512345678" not in output and "8615088888888" not in output


def test_standalone_receiver(standalone_receiver: LiveReceiver):
    exercise_contract(standalone_receiver)
    assert "/telco-webhooks/nxcloud/call/{token} 413" in standalone_receiver.output()


@pytest.mark.slow
def test_airflow_api_server_mounts_the_receiver(api_server_receiver: LiveReceiver):
    exercise_contract(api_server_receiver)
    # the api-server's own access log sees the route template, not the token
    assert "path=/telco-webhooks/nxcloud/call/{token}" in api_server_receiver.output()


@pytest.mark.parametrize("token", ["change-me-webhook-token", "short-token", ""])
def test_standalone_receiver_refuses_to_start_with_a_sample_or_short_token(token):
    env = {
        **os.environ,
        "TELCO_WEBHOOK_TOKEN": token,
        "WAREHOUSE_DSN": "postgresql://nobody@127.0.0.1:1/none",
    }
    done = subprocess.run(
        [sys.executable, "-m", "phonecheck.receiver"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "TELCO_WEBHOOK_TOKEN" in done.stderr and (token == "" or token not in done.stderr)


def test_a_mounted_receiver_with_a_sample_token_refuses_every_push(
    start_receiver, fresh_warehouse_dsn, caplog
):
    from phonecheck.receiver.app import Receiver, ReceiverConfig

    receiver = Receiver(
        ReceiverConfig(
            token_provider=lambda: "change-me-webhook-token", dsn_provider=lambda: fresh_warehouse_dsn
        )
    )
    assert receiver.token_matches("change-me-webhook-token") is False
    assert "sample value" in caplog.text
