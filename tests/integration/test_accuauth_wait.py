"""The AccuAuth wait: the sensor defers (no worker slot held), the trigger serialises, resumes
and fires once with a selector and counts (the answers are in the warehouse); callbacks received
by the real receiver stop the polling of their task; without a trigger the sensor polls in the
worker before its (read-only) poke in ``poke`` / ``reschedule`` mode. The trigger's own event paths (serialisation, done, vendor error,
warehouse down): tests/integration/test_accuauth_trigger.py; timeout / poke_interval / mode handed to the
deferral: tests/integration/test_wait_sensors.py. Real sandbox over HTTP, real PostgreSQL, the real receiver app;
each test under both sandbox profiles."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import threading
import time

import psycopg
import pytest
from airflow.sdk.exceptions import TaskDeferred

from phonecheck.accuauth.api import AccuAuthClient
from phonecheck.accuauth.store import WaitSelector, load_wait
from phonecheck.accuauth.submit import submit_numbers
from phonecheck.numbers import normalise
from phonecheck.sandbox import outcomes
from phonecheck.webhook_urls import ACCUAUTH_PHONE_NUMBER, webhook_url
from phonecheck_airflow.sensors.accuauth import AccuAuthTasksSensor
from phonecheck_airflow.triggers.accuauth import AccuAuthTaskTrigger

pytestmark = pytest.mark.integration

FAST_WAIT = {"poll_interval_s": 0.1, "max_poll_interval_s": 0.3, "max_requests_per_second": 200.0}


def submit(dsn: str, sandbox, phones: list[str], run_key: str, callback: str | None = None):
    c = sandbox.credentials
    with (
        psycopg.connect(dsn) as conn,
        AccuAuthClient(sandbox.accuauth_host, c.accuauth_api_id, c.accuauth_api_secret) as client,
    ):
        return submit_numbers(
            conn,
            client,
            [normalise("+" + p) for p in phones],
            run_key=run_key,
            run_id=run_key,
            callback_url=callback,
        )


async def fire(trigger: AccuAuthTaskTrigger) -> list:
    return [event async for event in trigger.run()]


def wait_for_inbox(dsn: str, count: int, timeout_s: float = 15.0) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        with psycopg.connect(dsn) as conn:
            found = conn.execute(
                "SELECT count(*) FROM raw.webhook_event WHERE endpoint = 'accuauth_phone_number'"
            ).fetchone()[0]
        if found >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def load(dsn: str, payload: dict) -> None:
    with psycopg.connect(dsn) as conn:
        load_wait(conn, WaitSelector.from_dict(payload["selector"]))


def real_polls(sandbox) -> list[dict]:
    """Poll calls the vendor answered meaningfully (not the strict profile's HTTP 500s)."""
    return [c for c in sandbox.control.calls(event="accuauth.task_result") if c["status"] < 500]


def test_the_sensor_defers_and_the_trigger_serialises_resumes_and_fires_once(
    vendor_connections, fresh_warehouse_dsn, vendor_profile
):
    sandbox, dsn = vendor_connections, fresh_warehouse_dsn
    sandbox.control.settings(accuauth_seconds_per_poll=3600.0)  # finish by polls only
    phones = ["525512000071", "525512000093", "525512000062"]  # 3, 5 and 2 PENDING polls first
    report = submit(dsn, sandbox, phones, run_key="test/defer")
    assert report.pending == 3

    sensor = AccuAuthTasksSensor(
        task_id="wait",
        selector={"run_id": "test/defer", "max_submission_id": report.max_submission_id},
        wait_settings=FAST_WAIT,
        deferrable=True,  # as the DAG passes it (Airflow's default_deferrable is False)
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context={})  # poke once (tasks open) → defer: the worker slot is released
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout.total_seconds() == 25 * 3600 + 300  # the trigger's deadline comes first
    assert sandbox.control.calls(event="accuauth.task_result") == []  # the poke never calls the vendor

    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "phonecheck_airflow.triggers.accuauth.AccuAuthTaskTrigger"
    assert kwargs["run_id"] == "test/defer" and kwargs["max_submission_id"] == report.max_submission_id
    assert (
        len(json.dumps(kwargs)) < 600
    )  # small whatever the number of tasks: ids are read from the warehouse

    # the triggerer rebuilds it from (classpath, kwargs) — possibly twice; it only reads
    module, _, name = classpath.rpartition(".")
    resumed = getattr(importlib.import_module(module), name)(**kwargs)
    assert resumed.serialize() == (classpath, kwargs)
    events = asyncio.run(fire(resumed))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "done"
    assert payload["selector"] == {"run_id": "test/defer", "max_submission_id": report.max_submission_id}
    assert payload["stats"]["polls"] == sum(outcomes.accuauth_pending_polls(p) + 1 for p in phones)
    assert len(real_polls(sandbox)) == payload["stats"]["polls"]
    assert payload["stats"]["vendor_calls"] == len(sandbox.control.calls(event="accuauth.task_result"))
    assert len(json.dumps(payload)) < 600  # counts, never results

    returned = sensor.execute_complete(context={}, event=payload)
    load(dsn, returned)
    with psycopg.connect(dsn) as conn:
        found = dict(
            conn.execute(
                "SELECT phone_number, phone_status FROM telco.accuauth_phone_check WHERE status = 'OK'"
            )
        )
        assert found == {p: outcomes.accuauth_phone_status(p) for p in phones}
    # nothing open any more: a new poke succeeds at once, without deferring
    assert sensor.poke(context={}) is True


def test_a_task_finished_by_the_callback_is_not_polled(vendor_connections, live_receiver, vendor_profile):
    """The sandbox calls the real receiver back (GET) while the trigger waits; the inbox row stops
    the polling of that task. Tasks without a callback are polled."""
    sandbox, dsn = vendor_connections, live_receiver.dsn
    # every check pending; the vendor finishes it after 0.5 s (then calls back), never by polls.
    # The callbacks are held until the trigger has listed the open tasks: released earlier, they
    # would land before the listing on a busy machine and the tasks would never be open.
    sandbox.control.settings(accuauth_pending_seconds=0.5, accuauth_pending_polls=1000, pushes_held=True)
    callback = webhook_url(ACCUAUTH_PHONE_NUMBER, base_url=live_receiver.base_url, token=live_receiver.token)
    with_callback = ["525512000110", "525512000121", "525512000132"]
    without_callback = ["525512000143", "525512000154"]
    submit(dsn, sandbox, with_callback, run_key="test/callback", callback=callback)
    report = submit(dsn, sandbox, without_callback, run_key="test/callback")

    listed = threading.Event()

    class Listed(logging.Handler):  # the waiter logs the open tasks it listed
        def emit(self, record: logging.LogRecord) -> None:
            if "open task(s)" in record.getMessage():
                listed.set()

    async def scenario() -> list:
        # the first poll comes 8 s after submission: the released callbacks land well before
        trigger = AccuAuthTaskTrigger(
            "test/callback", report.max_submission_id, poll_interval=8.0, max_poll_interval=8.0
        )
        waiting = asyncio.ensure_future(fire(trigger))
        await asyncio.to_thread(listed.wait, 60)
        await asyncio.to_thread(sandbox.control.settings, pushes_held=False)
        return await waiting

    handler = Listed()
    logging.getLogger("phonecheck.accuauth.waiter").addHandler(handler)
    try:
        (event,) = asyncio.run(scenario())
    finally:
        logging.getLogger("phonecheck.accuauth.waiter").removeHandler(handler)
        sandbox.control.settings(pushes_held=False)
    assert listed.is_set()
    assert wait_for_inbox(dsn, len(with_callback)) == len(with_callback)
    with psycopg.connect(dsn) as conn:
        task_of = dict(conn.execute("SELECT phones[1], task_id FROM ops.number_check_submission"))
    assert event.payload["stats"]["finished_elsewhere"] == len(with_callback)
    polled = {c["body"] for c in real_polls(sandbox)}
    assert polled == {f"task_id={task_of[p]}" for p in without_callback}

    load(dsn, event.payload)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT phone_number, status, phone_status, source, raw_event_id IS NOT NULL FROM telco.accuauth_phone_check"
        ).fetchall()
        statuses = dict(conn.execute("SELECT phones[1], status FROM ops.number_check_submission"))
    found = {r[0]: r[1:] for r in rows}
    for p in with_callback:
        assert found[p] == ("OK", outcomes.accuauth_phone_status(p), "callback", True)
    for p in without_callback:
        assert found[p] == ("OK", outcomes.accuauth_phone_status(p), "poll", False)
    assert set(statuses.values()) == {"complete"}


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_without_a_trigger_the_sensor_polls_outside_poke_and_loads(
    vendor_connections, fresh_warehouse_dsn, mode
):
    """``deferrable=False``: ``poke()`` only reads the warehouse; the trigger's polling runs in the
    worker before it (``reschedule``: one pass per try; ``poke``: the whole wait) and the answers
    are loaded."""
    from airflow.sdk.exceptions import AirflowRescheduleException

    sandbox, dsn = vendor_connections, fresh_warehouse_dsn
    sandbox.control.settings(accuauth_seconds_per_poll=3600.0)
    phones = ["525512000051", "525512000062"]  # 1 and 2 PENDING polls first
    report = submit(dsn, sandbox, phones, run_key="test/poke")
    sensor = AccuAuthTasksSensor(
        task_id="wait",
        selector={"run_id": "test/poke", "max_submission_id": report.max_submission_id},
        wait_settings={"poll_interval_s": 0.05, "max_poll_interval_s": 0.05},
        deferrable=False,
        mode=mode,
        poke_interval=0.1,
        timeout=3600,
    )
    assert sensor.poke(context={}) is False
    assert sandbox.control.calls(event="accuauth.task_result") == []  # a poke never calls the vendor
    if mode == "poke":
        result = sensor.execute(context={})
    else:

        class FirstTry:  # the task instance's reschedule history: none yet
            def get_first_reschedule_date(self, context):
                return None

        # what the scheduler does between reschedules, capped: each try polls the due tasks once,
        # and 2 PENDING answers per task at most need 3 tries once the first poll is due
        tries, result = 0, None
        while result is None and tries < 200:
            tries += 1
            try:
                result = sensor.execute(context={"ti": FirstTry()})
            except AirflowRescheduleException:
                time.sleep(0.1)
        assert result is not None, f"still pending after {tries} tries"
        assert tries >= 2
    assert result["status"] == "done" and result["selector"]["run_id"] == "test/poke"
    assert result["timed_out"] is False
    with psycopg.connect(dsn) as conn:
        found = dict(conn.execute("SELECT phone_number, status FROM telco.accuauth_phone_check"))
    assert found == {p: "OK" for p in phones}


def test_without_a_trigger_the_sensor_hands_over_or_fails_at_its_timeout(
    vendor_connections, fresh_warehouse_dsn
):
    """``timeout=0``: the wait is over before it starts, at any machine's pace."""
    from airflow.sdk.exceptions import AirflowSensorTimeout

    sandbox, dsn = vendor_connections, fresh_warehouse_dsn
    sandbox.control.settings(accuauth_seconds_per_poll=3600.0, accuauth_pending_polls=1000)
    report = submit(dsn, sandbox, ["525512000071"], run_key="test/timeout")
    selector = {"run_id": "test/timeout", "max_submission_id": report.max_submission_id}
    settings = {"poll_interval_s": 0.05, "max_poll_interval_s": 0.05}
    sensor = AccuAuthTasksSensor(
        task_id="wait", selector=selector, wait_settings=settings, deferrable=False, timeout=0
    )
    assert sensor.execute(context={}) == {
        "status": "timeout",
        "selector": selector,
        "stats": {},
        "timed_out": True,
    }
    strict = AccuAuthTasksSensor(
        task_id="wait",
        selector=selector,
        wait_settings=settings,
        deferrable=False,
        timeout=0,
        fail_on_timeout=True,
    )
    with pytest.raises(AirflowSensorTimeout):
        strict.execute(context={})
    with psycopg.connect(dsn) as conn:  # still open: the daily re-poll picks it up
        (status,) = conn.execute("SELECT status FROM telco.accuauth_phone_check").fetchone()
    assert status == "PENDING"
