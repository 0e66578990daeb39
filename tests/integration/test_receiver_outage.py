"""Warehouse outage: retried pushes get 503, voice receipts are spooled and replayed (issue #6).

"Warehouse stopped" is a PostgreSQL server of this test's own (``disposable_warehouse``: pgserver
in a tmp dir, stopped with its ``cleanup()`` and started again on the same data directory), so
the shared embedded server keeps serving every other test.
"""

from __future__ import annotations

import time

import httpx
import psycopg
import pytest

from phonecheck.receiver.intake import Endpoint, build_event
from phonecheck.receiver.processing import process_inbox
from phonecheck.receiver.spool import VoiceSpool
from phonecheck.receiver.store import InboxStore
from tests import seed_payloads as seed
from tests.fixtures.receiver import ACCUAUTH, CALL, NUMBER_CHECK, VOICE

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def voice_fields(i: int) -> dict[str, str]:
    return {**seed.VOICE_RECEIPT_FIELDS, "messageid": f"outage-{i:03d}", "phone": f"86150888{i:05d}"}


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_outage_refuses_retried_pushes_and_spools_voice_receipts(disposable_warehouse, start_receiver):
    receiver = start_receiver(lambda: disposable_warehouse.dsn, replay_interval_s=0.2)
    assert httpx.post(receiver.url(CALL), json=seed.CALL_RECORD_PUSH).status_code == 200  # pool is warm

    disposable_warehouse.stop()
    client = httpx.Client(timeout=30)
    assert client.post(receiver.url(NUMBER_CHECK), json=seed.NUMBER_CHECK_PUSH_BASIC).status_code == 503
    assert client.post(receiver.url(CALL), json={**seed.CALL_RECORD_PUSH, "id": 46}).status_code == 503
    assert client.get(receiver.url(ACCUAUTH), params={"task_id": "T1", "phone_number": "52", "phone_status": "ring"}).status_code == 503  # fmt: skip
    assert client.get(receiver.base_url + "/healthz").status_code == 503

    answers = [client.post(receiver.url(VOICE), data=voice_fields(i)) for i in range(100)]
    assert [(a.status_code, a.text) for a in answers] == [(200, "success")] * 100
    assert receiver.spool_dir.exists() and any(receiver.spool_dir.iterdir())

    disposable_warehouse.start()
    dsn = disposable_warehouse.dsn

    def replayed() -> bool:
        with psycopg.connect(dsn) as conn:
            n = conn.execute(
                "SELECT count(*) FROM raw.webhook_event WHERE endpoint = 'nxcloud_voice'"
            ).fetchone()[0]
        return n == 100 and not any(receiver.spool_dir.glob("*.jsonl"))

    wait_for(replayed, what="the spool replay")
    # the vendor retries the refused pushes once the warehouse is back
    assert client.post(receiver.url(NUMBER_CHECK), json=seed.NUMBER_CHECK_PUSH_BASIC).status_code == 200
    client.close()

    counts = process_inbox(dsn)
    assert counts["failed"] == 0
    with psycopg.connect(dsn) as conn:
        voice = conn.execute(
            """SELECT count(*), count(DISTINCT (message_id, phone)), bool_and(e.via_spool),
                      max(e.delivery_count), bool_and(e.processed_at IS NOT NULL)
               FROM telco.nxcloud_voice_receipt v JOIN raw.webhook_event e ON e.event_id = v.raw_event_id"""
        ).fetchone()
        ledger = conn.execute("SELECT sum(record_count) FROM ops.receiver_spool_replay").fetchone()[0]
        number_checks = conn.execute("SELECT count(*) FROM telco.nxcloud_number_check").fetchone()[0]
    assert voice == (100, 100, True, 1, True)
    assert ledger == 100
    assert number_checks == 1


async def test_replay_of_the_same_spool_file_twice_stores_once(fresh_warehouse_dsn, tmp_path):
    """A crash between the replay commit and the unlink: the next replay only removes the file."""
    from datetime import UTC, datetime

    spool = VoiceSpool(tmp_path / "spool")
    for i in range(3):
        qs = "&".join(f"{k}={v}" for k, v in voice_fields(i).items()).encode()
        spool.append(
            build_event(
                Endpoint.NXCLOUD_VOICE,
                body=b"",
                query_string=qs,
                content_type=None,
                received_at=datetime.now(UTC),
            )
        )
    spool.seal()
    store = InboxStore(lambda: fresh_warehouse_dsn, min_size=1, max_size=2)
    try:
        [claimed] = spool.claim()
        assert await store.replay(claimed.path.name, claimed.events) is True
        claimed.release()  # "crash": the file is still there
        [again] = spool.claim()
        assert await store.replay(again.path.name, again.events) is False
        spool.discard(again)
    finally:
        await store.close()
    assert spool.claim() == [] and not spool.has_files()
    with psycopg.connect(fresh_warehouse_dsn) as conn:
        rows = conn.execute("SELECT delivery_count, via_spool FROM raw.webhook_event").fetchall()
    assert rows == [(1, True)] * 3
