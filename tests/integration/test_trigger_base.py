"""The trigger base (``phonecheck_airflow.triggers.base``), in the style of providers/http's trigger
tests: every project trigger serialises to its exact classpath and kwargs through the base, and
the triggerer rebuilds an equal one from them; the base's check-or-sleep loop fires each of its
events (found, timeout, error) exactly once, against the real PostgreSQL warehouse.

Each trigger's own event paths: tests/integration/test_accuauth_trigger.py,
tests/integration/test_inbox_trigger.py, tests/integration/test_nxcloud_wait.py."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from typing import Any

import psycopg
import pytest

from phonecheck_airflow.triggers.accuauth import AccuAuthTaskTrigger
from phonecheck_airflow.triggers.base import PhonecheckTrigger
from phonecheck_airflow.triggers.inbox import WebhookInboxTrigger
from phonecheck_airflow.triggers.nxcloud import NxCloudResultsTrigger

pytestmark = pytest.mark.integration

SERIALISED = [
    pytest.param(
        AccuAuthTaskTrigger(run_id="manual__2026", max_submission_id="42", poll_interval="0.5", dag_id="d"),
        "phonecheck_airflow.triggers.accuauth.AccuAuthTaskTrigger",
        {
            "run_id": "manual__2026",
            "max_submission_id": 42,  # a rendered template string becomes a number
            "accuauth_conn_id": "accuauth_default",
            "warehouse_conn_id": "warehouse",
            "poll_interval": 0.5,
            "max_poll_interval": 900.0,
            "backoff_factor": 2.0,
            "max_requests_per_second": 10.0,
            "max_in_flight": 16,
            "warehouse_check_interval": 30.0,
            "dag_id": "d",
            "deadline": None,
        },
        id="accuauth",
    ),
    pytest.param(
        NxCloudResultsTrigger(
            run_key="nxcloud_number_check/manual__1",
            warehouse_conn_id="wh",
            poll_interval="7",
            deadline=1_900_000_000,
        ),
        "phonecheck_airflow.triggers.nxcloud.NxCloudResultsTrigger",
        {
            "run_key": "nxcloud_number_check/manual__1",
            "warehouse_conn_id": "wh",
            "poll_interval": 7.0,
            "deadline": 1_900_000_000.0,
        },
        id="nxcloud",
    ),
    pytest.param(
        WebhookInboxTrigger(poll_interval=5, reannounce_after="60"),
        "phonecheck_airflow.triggers.inbox.WebhookInboxTrigger",
        {"warehouse_conn_id": "warehouse", "poll_interval": 5.0, "reannounce_after": 60.0},
        id="inbox",
    ),
]


@pytest.mark.parametrize(("trigger", "classpath", "kwargs"), SERIALISED)
def test_every_trigger_serialises_to_its_exact_classpath_and_kwargs(trigger, classpath, kwargs):
    assert trigger.serialize() == (classpath, kwargs)
    # what the triggerer does: import the classpath, call it with the kwargs (JSON-encodable)
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    # by name, not identity: a test elsewhere may re-import the module (lazy-import checks)
    assert f"{type(rebuilt).__module__}.{type(rebuilt).__qualname__}" == classpath
    assert rebuilt.serialize() == (classpath, kwargs)


def test_a_subclass_serialises_under_its_own_classpath_without_writing_it():
    class Narrower(NxCloudResultsTrigger):
        pass

    classpath, kwargs = Narrower("d/r", deadline=None).serialize()
    assert (
        classpath
        == f"{__name__}.test_a_subclass_serialises_under_its_own_classpath_without_writing_it.<locals>.Narrower"
    )
    assert kwargs == {
        "run_key": "d/r",
        "warehouse_conn_id": "warehouse",
        "poll_interval": 10.0,
        "deadline": None,
    }


def test_a_parameter_not_kept_as_an_attribute_fails_at_serialize():
    class Forgetful(PhonecheckTrigger):
        def __init__(self, table: str, poll_interval: float = 1.0) -> None:
            super().__init__(poll_interval=poll_interval)

    with pytest.raises(AttributeError, match="table"):
        Forgetful("raw.webhook_event").serialize()


# ---- the base loop, on the real warehouse --------------------------------------------------------


class RowsTrigger(PhonecheckTrigger):
    """Fires when ``raw.webhook_event`` has at least ``rows`` rows (a test subclass of the loop)."""

    def __init__(
        self,
        rows: int,
        warehouse_conn_id: str = "warehouse",
        poll_interval: float = 0.02,
        deadline: float | None = None,
    ) -> None:
        super().__init__(warehouse_conn_id=warehouse_conn_id, poll_interval=poll_interval, deadline=deadline)
        self.rows = rows
        self.looks = 0  # counted by the base loop
        self.last: int | None = None

    async def check(self, dsn: str) -> dict[str, Any] | None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            cur = await conn.execute("SELECT count(*) FROM raw.webhook_event")
            (self.last,) = await cur.fetchone()
        return {"status": "done", "rows": self.last} if self.last >= self.rows else None

    def timeout_event(self) -> dict[str, Any]:
        return {"status": "timeout", "rows": self.last, "looks": self.looks}


def insert_events(dsn: str, count: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(count):
            conn.execute(
                "INSERT INTO raw.webhook_event (endpoint, vendor, dedupe_key, body, parse_status) "
                "VALUES ('nxcloud_call', 'nxcloud', gen_random_uuid()::text, '\\x7b7d', 'parsed')"
            )


async def events_of(trigger: PhonecheckTrigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


def test_the_loop_fires_the_check_event_once_and_returns(fresh_warehouse_dsn):
    insert_events(fresh_warehouse_dsn, 2)
    trigger = RowsTrigger(rows=2, deadline=time.time() + 60)
    assert asyncio.run(events_of(trigger)) == [{"status": "done", "rows": 2}]
    assert trigger.looks == 1


def test_the_loop_sleeps_between_looks_until_the_check_fires(fresh_warehouse_dsn):
    insert_events(fresh_warehouse_dsn, 1)

    async def scenario() -> list[dict]:
        trigger = RowsTrigger(rows=2, deadline=time.time() + 60)
        waiting = asyncio.ensure_future(events_of(trigger))
        while trigger.looks < 3:  # it looked, found 1 row, slept, looked again ...
            await asyncio.sleep(0.01)
        assert not waiting.done()
        await asyncio.to_thread(insert_events, fresh_warehouse_dsn, 1)
        return await waiting

    assert asyncio.run(scenario()) == [{"status": "done", "rows": 2}]


def test_the_loop_fires_timeout_once_at_the_deadline(fresh_warehouse_dsn):
    insert_events(fresh_warehouse_dsn, 1)
    trigger = RowsTrigger(rows=5, deadline=time.time() - 1)
    assert asyncio.run(events_of(trigger)) == [{"status": "timeout", "rows": 1, "looks": 1}]


def test_an_unknown_connection_is_one_error_event_for_a_task_trigger(fresh_warehouse_dsn):
    (event,) = asyncio.run(events_of(RowsTrigger(rows=1, warehouse_conn_id="no_such_warehouse")))
    assert event["status"] == "error" and event["message"].startswith("warehouse connection: ")
    assert set(event) == {"status", "message"}


def test_a_failing_look_is_retried_until_the_deadline(monkeypatch, capsys):
    """A warehouse that refuses connections: every look fails, is logged, and the deadline ends it.
    The deadline passes after the third look, whatever the machine's pace (no wall-clock window)."""

    class ThreeLooks(RowsTrigger):
        def deadline_passed(self) -> bool:
            return self.looks >= 3

    monkeypatch.setenv(
        "AIRFLOW_CONN_DEAD_WAREHOUSE",
        json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "x", "schema": "x"}),
    )
    trigger = ThreeLooks(rows=1, warehouse_conn_id="dead_warehouse", deadline=time.time() + 3600)
    (event,) = asyncio.run(events_of(trigger))
    assert event == {"status": "timeout", "rows": None, "looks": 3}
    logged = capsys.readouterr().out  # Airflow's structured log goes to stdout
    assert logged.count("ThreeLooks: warehouse look failed (OperationalError); trying again") == 3


def test_a_subclass_passing_kwargs_on_serialises_its_parents_parameters_too():
    """The NXCLOUD in-doubt trigger names only its own parameters and passes the run's on."""
    from phonecheck_airflow.triggers.nxcloud import NxCloudInDoubtTrigger

    trigger = NxCloudInDoubtTrigger("d/r", window_s="90", warehouse_conn_id="wh", deadline=5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "phonecheck_airflow.triggers.nxcloud.NxCloudInDoubtTrigger"
    assert kwargs == {
        "run_key": "d/r",
        "window_s": 90.0,
        "nxcloud_conn_id": "nxcloud_default",
        "warehouse_conn_id": "wh",
        "poll_interval": 5.0,
        "deadline": 5.0,
    }
    assert NxCloudInDoubtTrigger(**json.loads(json.dumps(kwargs))).serialize() == (classpath, kwargs)
