"""NxCloudResultsSensor and NxCloudResultsTrigger against a real warehouse: the trigger's
serialisation (exact classpath and kwargs) and every event it can fire, and the sensor's
standard ``timeout`` / ``poke_interval`` / ``mode`` handling."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import pytest
from psycopg.types.json import Jsonb

from phonecheck_airflow.triggers.nxcloud import NxCloudResultsTrigger

pytestmark = pytest.mark.integration
CLASSPATH = "phonecheck_airflow.triggers.nxcloud.NxCloudResultsTrigger"


def first_event(trigger: NxCloudResultsTrigger) -> dict:
    async def collect():
        async for event in trigger.run():
            return event.payload
        return None

    return asyncio.run(collect())


def submit(wh, batch_no: str, phones: list[str], pushed: list[str]) -> None:
    wh.execute(
        "INSERT INTO ops.number_check_submission (vendor, batch_no, check_level, region_code, phones, phone_count, "
        "status) VALUES ('nxcloud', %s, 1, 'MX', %s, %s, 'submitted')",
        (batch_no, phones, len(phones)),
    )
    for phone in pushed:
        wh.execute(
            "INSERT INTO raw.webhook_event (endpoint, vendor, dedupe_key, payload, body, parse_status) "
            "VALUES ('nxcloud_number_check', 'nxcloud', %s, %s, %s, 'parsed')",
            (f"{batch_no}|{phone}", Jsonb({"batchNo": batch_no, "phone": phone}), b"{}"),
        )


def test_trigger_serialises_to_its_exact_classpath_and_kwargs():
    trigger = NxCloudResultsTrigger(
        batch_nos=("b-1", "b-2"), warehouse_conn_id="wh", poll_interval="0.5", deadline=1_900_000_000
    )
    assert trigger.serialize() == (
        CLASSPATH,
        {
            "batch_nos": ["b-1", "b-2"],
            "warehouse_conn_id": "wh",
            "poll_interval": 0.5,
            "deadline": 1_900_000_000.0,
        },
    )
    classpath, kwargs = trigger.serialize()
    assert NxCloudResultsTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert NxCloudResultsTrigger(batch_nos=[]).serialize()[1]["deadline"] is None


def test_trigger_fires_done_when_every_number_has_a_result(wh):
    submit(wh, "w-done", ["1", "2", "3"], pushed=["1", "2", "3"])
    event = first_event(NxCloudResultsTrigger(["w-done"], poll_interval=0.05, deadline=time.time() + 30))
    assert event == {"status": "done", "expected": 3, "results": 3, "polls": 1}


def test_trigger_fires_done_after_a_late_push(wh):
    submit(wh, "w-late", ["1", "2"], pushed=["1"])

    async def scenario():
        trigger = NxCloudResultsTrigger(["w-late"], poll_interval=0.05, deadline=time.time() + 30)
        run = trigger.run().__anext__()
        task = asyncio.ensure_future(run)
        await asyncio.sleep(0.3)
        assert not task.done()
        await asyncio.to_thread(submit_push, "w-late", "2")
        return (await task).payload

    def submit_push(batch_no: str, phone: str) -> None:
        wh.execute(
            "INSERT INTO raw.webhook_event (endpoint, vendor, dedupe_key, payload, body, parse_status) "
            "VALUES ('nxcloud_number_check', 'nxcloud', %s, %s, %s, 'parsed')",
            (f"{batch_no}|{phone}", Jsonb({"batchNo": batch_no, "phone": phone}), b"{}"),
        )

    event = asyncio.run(scenario())
    assert (
        event["status"] == "done" and (event["expected"], event["results"]) == (2, 2) and event["polls"] > 1
    )


def test_trigger_fires_timeout_at_its_deadline(wh):
    submit(wh, "w-timeout", ["1", "2"], pushed=["2"])
    event = first_event(NxCloudResultsTrigger(["w-timeout"], poll_interval=0.05, deadline=time.time() - 1))
    assert event == {"status": "timeout", "expected": 2, "results": 1, "polls": 1}


def test_trigger_fires_error_when_the_warehouse_connection_is_unknown(wh):
    event = first_event(NxCloudResultsTrigger(["x"], warehouse_conn_id="no_such_warehouse"))
    assert event["status"] == "error" and "warehouse connection" in event["message"]


def test_trigger_keeps_waiting_through_a_failing_warehouse_and_times_out(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEAD_WAREHOUSE",
        json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "x", "schema": "x"}),
    )
    trigger = NxCloudResultsTrigger(["x"], warehouse_conn_id="dead_warehouse", poll_interval=0.05,
                                    deadline=time.time() + 0.3)  # fmt: skip
    event = first_event(trigger)
    assert event["status"] == "timeout" and event["expected"] is None and event["polls"] >= 2


# ---- the sensor --------------------------------------------------------------------------------


def sensor(**kwargs):
    from phonecheck_airflow.sensors.nxcloud import NxCloudResultsSensor

    return NxCloudResultsSensor(task_id="wait", **kwargs)


def test_sensor_imports_its_trigger_only_when_it_defers(wh):
    from airflow.sdk.exceptions import TaskDeferred

    sys.modules.pop("phonecheck_airflow.triggers.nxcloud", None)
    sys.modules.pop("phonecheck_airflow.sensors.nxcloud", None)
    submit(wh, "s-done", ["1"], pushed=["1"])
    assert sensor(batch_nos=["s-done"]).execute({}) == {"expected": 1, "results": 1, "timed_out": False}
    assert "phonecheck_airflow.triggers.nxcloud" not in sys.modules

    submit(wh, "s-open", ["1", "2"], pushed=[])
    with pytest.raises(TaskDeferred) as deferred:
        sensor(batch_nos=["s-open"], timeout=120, poke_interval=7).execute({})
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == CLASSPATH and kwargs["poll_interval"] == 7.0  # the standard attributes
    assert 100 < kwargs["deadline"] - time.time() <= 120
    assert deferred.value.timeout.total_seconds() == 120 + 300


def test_sensor_params_win_over_the_standard_attributes(wh):
    from airflow.sdk.exceptions import TaskDeferred

    submit(wh, "s-params", ["1"], pushed=[])
    with pytest.raises(TaskDeferred) as deferred:
        sensor(batch_nos=["s-params"], poll_interval_s="0.5", wait_timeout_s="60", timeout=9999).execute({})
    kwargs = deferred.value.trigger.serialize()[1]
    assert kwargs["poll_interval"] == 0.5 and kwargs["deadline"] - time.time() <= 60


def test_sensor_in_poke_mode_waits_in_the_worker_and_hands_over_on_timeout(wh):
    submit(wh, "s-poke", ["1", "2"], pushed=["1"])
    waiting = sensor(batch_nos=["s-poke"], deferrable=False, mode="poke", timeout=0.3, poke_interval=0.05)
    assert waiting.execute({}) == {"expected": 2, "results": 1, "timed_out": True}
    from airflow.sdk.exceptions import AirflowSensorTimeout

    strict = sensor(
        batch_nos=["s-poke"], deferrable=False, timeout=0.1, poke_interval=0.05, fail_on_timeout=True
    )
    with pytest.raises(AirflowSensorTimeout):
        strict.execute({})


def test_sensor_event_paths(wh):
    from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

    waiting = sensor(batch_nos=["x"], wait_timeout_s=60)
    done = {"status": "done", "expected": 2, "results": 2, "polls": 3}
    assert waiting.execute_complete({}, done) == {"expected": 2, "results": 2, "timed_out": False}
    timeout = {"status": "timeout", "expected": 2, "results": 1, "polls": 9}
    assert waiting.execute_complete({}, timeout) == {"expected": 2, "results": 1, "timed_out": True}
    with pytest.raises(AirflowSensorTimeout, match="only 1/2"):
        sensor(batch_nos=["x"], wait_timeout_s=60, fail_on_timeout=True).execute_complete({}, timeout)
    with pytest.raises(AirflowException, match="warehouse down"):
        waiting.execute_complete({}, {"status": "error", "message": "warehouse down"})
    with pytest.raises(AirflowException, match="no event"):
        waiting.execute_complete({}, None)
