"""``WebhookInboxTrigger`` (the ``telco_push_processing`` AssetWatcher's trigger) against the real
PostgreSQL warehouse, in the style of providers/http's trigger tests: exact serialisation, and every
event it yields: new work, nothing for undecodable rows, no repeat for the same rows, a repeat
after ``reannounce_after``, a new announcement for newer rows; it keeps watching through a
warehouse that refuses connections, and it never writes."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest
from airflow.triggers.base import BaseEventTrigger

from phonecheck_airflow.triggers.inbox import WebhookInboxTrigger

pytestmark = pytest.mark.integration

CLASSPATH = "phonecheck_airflow.triggers.inbox.WebhookInboxTrigger"


def test_serialize_gives_the_exact_classpath_and_kwargs():
    trigger = WebhookInboxTrigger(warehouse_conn_id="wh", poll_interval="5", reannounce_after=60)
    assert trigger.serialize() == (
        CLASSPATH,
        {"warehouse_conn_id": "wh", "poll_interval": 5.0, "reannounce_after": 60.0},
    )
    assert WebhookInboxTrigger().serialize() == (
        CLASSPATH,
        {"warehouse_conn_id": "warehouse", "poll_interval": 5.0, "reannounce_after": 300.0},
    )
    assert isinstance(trigger, BaseEventTrigger)  # what an AssetWatcher accepts
    assert trigger.supports_triggerer_queue is False  # BaseEventTrigger's, not BaseTrigger's


def insert(dsn: str, *rows: tuple[str, str]) -> list[int]:
    """Insert inbox rows ``(dedupe_key, parse_status)``; return their event ids."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [
            conn.execute(
                "INSERT INTO raw.webhook_event (endpoint, vendor, dedupe_key, body, parse_status) "
                "VALUES ('nxcloud_call', 'nxcloud', %s, '\\x7b7d', %s) RETURNING event_id",
                (key, status),
            ).fetchone()[0]
            for key, status in rows
        ]


def snapshot(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT * FROM raw.webhook_event ORDER BY event_id").fetchall()


class CountingInbox(WebhookInboxTrigger):
    """The real trigger, counting its looks at the inbox (so a test can wait for N of them)."""

    looks = 0

    async def pending(self, dsn: str) -> tuple[int, int | None]:
        self.looks += 1
        return await super().pending(dsn)


class Watch:
    """Runs the trigger's event stream in the background and records every event, like the
    triggerer does for an AssetWatcher."""

    def __init__(self, trigger: CountingInbox) -> None:
        self.trigger = trigger
        self.events: list[dict] = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Watch:
        async def consume() -> None:
            async for event in self.trigger.run():
                self.events.append(event.payload)

        self._task = asyncio.ensure_future(consume())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task

    async def until(self, count: int, timeout_s: float = 30) -> list[dict]:
        async with asyncio.timeout(timeout_s):
            while len(self.events) < count:
                if self._task.done():
                    self._task.result()  # raise what ended the stream
                    raise AssertionError(f"the stream ended after {self.events}")
                await asyncio.sleep(0.01)
        return self.events

    async def rounds(self, count: int, timeout_s: float = 30) -> None:
        """Wait until the trigger has looked at the inbox ``count`` more times."""
        target = self.trigger.looks + count
        async with asyncio.timeout(timeout_s):
            while self.trigger.looks < target:
                await asyncio.sleep(0.01)


async def test_new_decodable_rows_fire_one_event_with_counts_and_nothing_is_written(fresh_warehouse_dsn):
    dsn = fresh_warehouse_dsn
    first, _error = insert(dsn, ("k1", "parsed"), ("k2", "error"))
    before = snapshot(dsn)
    async with Watch(CountingInbox(poll_interval=0.02, reannounce_after=3600)) as watch:
        assert await watch.until(1) == [{"pending": 1, "max_event_id": first}]  # the error row is no work
        await watch.rounds(10)
        assert watch.events == [{"pending": 1, "max_event_id": first}]  # same rows: no repeat
        (newer,) = await asyncio.to_thread(insert, dsn, ("k3", "parsed"))
        assert await watch.until(2) == [
            {"pending": 1, "max_event_id": first},
            {"pending": 2, "max_event_id": newer},
        ]
    after = snapshot(dsn)
    assert after[:2] == before and len(after) == 3  # read-only: only the test's insert changed it


async def test_an_empty_or_undecodable_inbox_fires_nothing(fresh_warehouse_dsn):
    insert(fresh_warehouse_dsn, ("k1", "error"))
    trigger = CountingInbox(poll_interval=0.02, reannounce_after=0)
    assert await trigger.pending(fresh_warehouse_dsn) == (0, None)
    async with Watch(trigger) as watch:
        await watch.rounds(10)
        assert watch.events == []


async def test_rows_still_pending_are_announced_again_after_reannounce_after(fresh_warehouse_dsn):
    (event_id,) = insert(fresh_warehouse_dsn, ("k1", "parsed"))
    async with Watch(CountingInbox(poll_interval=0.02, reannounce_after=0)) as watch:
        assert await watch.until(3) == [{"pending": 1, "max_event_id": event_id}] * 3


async def test_processed_rows_are_no_work(fresh_warehouse_dsn):
    insert(fresh_warehouse_dsn, ("k1", "parsed"))
    with psycopg.connect(fresh_warehouse_dsn, autocommit=True) as conn:
        conn.execute("UPDATE raw.webhook_event SET processed_at = now()")
    assert await WebhookInboxTrigger().pending(fresh_warehouse_dsn) == (0, None)


async def test_it_keeps_watching_through_a_warehouse_that_refuses_connections(monkeypatch, capsys):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEAD_WAREHOUSE",
        json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "x", "schema": "x"}),
    )
    trigger = CountingInbox(warehouse_conn_id="dead_warehouse", poll_interval=0.02)
    async with Watch(trigger) as watch:
        await watch.rounds(5)
        assert watch.events == [] and not watch._task.done()  # no event, and still running
    assert "CountingInbox: warehouse look failed (OperationalError); trying again" in capsys.readouterr().out


async def test_an_unknown_connection_fails_the_watcher():
    """No event for an event trigger (it would schedule a run): the triggerer logs the failure."""
    with pytest.raises(Exception, match="no_such_warehouse"):
        async for _ in WebhookInboxTrigger(warehouse_conn_id="no_such_warehouse").run():
            pass
