"""Push processing driven by Airflow: the inbox trigger fires on new rows (read-only), and the
``telco_push_processing`` DAG turns inbox rows into typed rows."""

from __future__ import annotations

import asyncio

import httpx
import psycopg
import pytest

from tests import seed_payloads as seed
from tests.fixtures.receiver import CALL, VOICE

pytestmark = pytest.mark.integration


def test_dag_processes_the_inbox(live_receiver, run_dag):
    # live_receiver's warehouse is also the `warehouse` connection (fresh_warehouse_dsn sets it)
    assert httpx.post(live_receiver.url(CALL), json=seed.CALL_RECORD_PUSH).status_code == 200
    assert httpx.post(live_receiver.url(VOICE), data=seed.VOICE_RECEIPT_FIELDS).text == "success"
    run = run_dag("telco_push_processing")
    assert run.state == "success"
    with psycopg.connect(live_receiver.dsn) as conn:
        assert conn.execute(
            "SELECT count(*) FROM raw.webhook_event WHERE processed_at IS NULL"
        ).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM telco.nxcloud_call_record").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM telco.nxcloud_voice_receipt").fetchone() == (1,)


async def test_inbox_trigger_fires_on_new_rows_and_writes_nothing(fresh_warehouse_dsn):
    from phonecheck_airflow.triggers.inbox import WebhookInboxTrigger

    trigger = WebhookInboxTrigger(warehouse_conn_id="warehouse", poll_interval=0.05, reannounce_after=3600)
    classpath, kwargs = trigger.serialize()
    assert classpath == "phonecheck_airflow.triggers.inbox.WebhookInboxTrigger"
    assert WebhookInboxTrigger(**kwargs).serialize() == (classpath, kwargs)

    assert await trigger.pending(fresh_warehouse_dsn) == (0, None)
    with psycopg.connect(fresh_warehouse_dsn, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO raw.webhook_event (endpoint, vendor, dedupe_key, body, parse_status)
               VALUES ('nxcloud_call', 'nxcloud', 'k1', '\\x7b7d', 'parsed'),
                      ('nxcloud_call', 'nxcloud', 'k2', '\\x7b7d', 'error')"""
        )
        before = conn.execute("SELECT * FROM raw.webhook_event ORDER BY event_id").fetchall()
    events = trigger.run()
    event = await asyncio.wait_for(anext(events), timeout=30)
    await events.aclose()
    assert event.payload == {"pending": 1, "max_event_id": before[0][0]}  # the error row is not work
    with psycopg.connect(fresh_warehouse_dsn) as conn:
        assert conn.execute("SELECT * FROM raw.webhook_event ORDER BY event_id").fetchall() == before
