"""Warehouse outage: every push type is spooled, acknowledged and replayed exactly once
(docs/receiver.md).

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
from phonecheck.receiver.spool import Spool
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


def test_outage_spools_every_push_type_and_replays_each_once(disposable_warehouse, start_receiver):
    receiver = start_receiver(lambda: disposable_warehouse.dsn, replay_interval_s=0.2)
    assert httpx.post(receiver.url(CALL), json=seed.CALL_RECORD_PUSH).status_code == 200  # pool is warm

    disposable_warehouse.stop()
    client = httpx.Client(timeout=30)
    # retried pushes are kept too: a call record is retried only twice, 5 minutes apart
    assert client.post(receiver.url(NUMBER_CHECK), json=seed.NUMBER_CHECK_PUSH_BASIC).status_code == 200
    assert client.post(receiver.url(CALL), json={**seed.CALL_RECORD_PUSH, "id": 46, "callId": "c46"}).status_code == 200  # fmt: skip
    assert client.get(receiver.url(ACCUAUTH), params={"task_id": "T1", "phone_number": "52", "phone_status": "ring"}).status_code == 200  # fmt: skip
    health = client.get(receiver.base_url + "/healthz")
    assert health.status_code == 503 and health.json()["warehouse"] == "unavailable"
    assert health.json()["spool_writable"] is True

    answers = [client.post(receiver.url(VOICE), data=voice_fields(i)) for i in range(100)]
    assert [(a.status_code, a.text) for a in answers] == [(200, "success")] * 100
    # the vendor retries the number-check push it was already answered for: counted, not doubled
    assert client.post(receiver.url(NUMBER_CHECK), json=seed.NUMBER_CHECK_PUSH_BASIC).status_code == 200
    assert any(receiver.spool_dir.glob("spool-*.rec"))

    disposable_warehouse.start()
    dsn = disposable_warehouse.dsn

    def replayed() -> bool:
        with psycopg.connect(dsn) as conn:
            n = conn.execute("SELECT count(*) FROM raw.webhook_event WHERE via_spool").fetchone()[0]
        return n == 103 and not any(receiver.spool_dir.glob("spool-*.rec"))

    wait_for(replayed, what="the spool replay")
    assert client.get(receiver.base_url + "/healthz").status_code == 200
    client.close()

    counts = process_inbox(dsn)
    assert counts["failed"] == 0
    with psycopg.connect(dsn) as conn:
        voice = conn.execute(
            """SELECT count(*), count(DISTINCT (message_id, phone)), bool_and(e.via_spool),
                      max(e.delivery_count), bool_and(e.processed_at IS NOT NULL)
               FROM telco.nxcloud_voice_receipt v JOIN raw.webhook_event e ON e.event_id = v.raw_event_id"""
        ).fetchone()
        ledger = conn.execute("SELECT count(*) FROM ops.receiver_spool_record").fetchone()[0]
        number_checks = conn.execute(
            "SELECT count(*), max(e.delivery_count) FROM telco.nxcloud_number_check n "
            "JOIN raw.webhook_event e ON e.event_id = n.raw_event_id"
        ).fetchone()
        calls = conn.execute("SELECT count(*) FROM telco.nxcloud_call_record").fetchone()[0]
        callbacks = conn.execute("SELECT count(*) FROM telco.accuauth_phone_check").fetchone()[0]
    assert voice == (100, 100, True, 1, True)
    assert ledger == 104  # every spooled delivery, the repeated number-check push included
    assert number_checks == (1, 2)  # one row, both deliveries counted
    assert (calls, callbacks) == (2, 1)


async def test_replay_of_the_same_spool_file_twice_stores_once(fresh_warehouse_dsn, tmp_path):
    """A crash between the replay commit and the unlink: the next replay stores nothing."""
    from datetime import UTC, datetime

    spool = Spool(tmp_path / "spool")
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
        first = await store.replay(claimed.path.name, claimed.records)
        assert (first.stored, first.already, first.refused) == (3, 0, ())
        claimed.release()  # "crash": the file is still there
        [again] = spool.claim()
        second = await store.replay(again.path.name, again.records)
        assert (second.stored, second.already) == (0, 3)
        spool.discard(again)
    finally:
        await store.close()
    assert spool.claim() == [] and not spool.has_files()
    with psycopg.connect(fresh_warehouse_dsn) as conn:
        rows = conn.execute("SELECT delivery_count, via_spool FROM raw.webhook_event").fetchall()
    assert rows == [(1, True)] * 3
