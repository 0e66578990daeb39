"""NxCloudResultsSensor and NxCloudResultsTrigger against a real warehouse: the trigger's
serialisation (exact classpath and kwargs, the same size whatever the run holds) and every event
it can fire, the run's batches read by run key, and the sensor's standard ``timeout`` /
``poke_interval`` / ``mode`` handling (templated, as the DAG feeds them from its params)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from types import SimpleNamespace

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


DAG_ID = "nxcloud_number_check"


def key(run_id: str) -> str:
    return f"{DAG_ID}/{run_id}"


def submit(wh, batch_no: str, phones: list[str], pushed: list[str], *, run_id: str | None = None,
           status: str = "submitted") -> None:  # fmt: skip
    """A submission of run ``run_id`` (default: the batch's own run ``run-<batch_no>``)."""
    wh.execute(
        "INSERT INTO ops.number_check_submission (vendor, batch_no, check_level, region_code, phones, phone_count, "
        "status, dag_id, run_id) VALUES ('nxcloud', %s, 1, 'MX', %s, %s, %s, %s, %s)",
        (batch_no, phones, len(phones), status, DAG_ID, run_id or f"run-{batch_no}"),
    )
    for phone in pushed:
        wh.execute(
            "INSERT INTO raw.webhook_event (endpoint, vendor, dedupe_key, payload, body, parse_status) "
            "VALUES ('nxcloud_number_check', 'nxcloud', %s, %s, %s, 'parsed')",
            (f"{batch_no}|{phone}", Jsonb({"batchNo": batch_no, "phone": phone}), b"{}"),
        )


def test_trigger_serialises_to_its_exact_classpath_and_kwargs():
    trigger = NxCloudResultsTrigger(
        run_key=key("manual__1"), warehouse_conn_id="wh", poll_interval="0.5", deadline=1_900_000_000
    )
    assert trigger.serialize() == (
        CLASSPATH,
        {
            "run_key": "nxcloud_number_check/manual__1",
            "warehouse_conn_id": "wh",
            "poll_interval": 0.5,
            "deadline": 1_900_000_000.0,
        },
    )
    classpath, kwargs = trigger.serialize()
    assert NxCloudResultsTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert NxCloudResultsTrigger(run_key=key("x")).serialize()[1]["deadline"] is None


def test_trigger_counts_only_the_runs_accepted_batches(wh):
    """The batches come from the run's submissions: every batch of the run counts, a refused
    (failed) batch and another run's batch do not."""
    submit(wh, "w-run-1", ["1", "2"], pushed=["1", "2"], run_id="multi")
    submit(wh, "w-run-2", ["3", "4", "5"], pushed=["3"], run_id="multi")
    submit(wh, "w-run-refused", ["6"], pushed=[], run_id="multi", status="failed")
    submit(wh, "w-other-run", ["7"], pushed=[], run_id="other")
    event = first_event(NxCloudResultsTrigger(key("multi"), poll_interval=0.05, deadline=time.time() - 1))
    assert event == {"status": "timeout", "expected": 5, "results": 3, "polls": 1}


def test_trigger_fires_done_when_every_number_has_a_result(wh):
    submit(wh, "w-done", ["1", "2", "3"], pushed=["1", "2", "3"])
    event = first_event(
        NxCloudResultsTrigger(key("run-w-done"), poll_interval=0.05, deadline=time.time() + 30)
    )
    assert event == {"status": "done", "expected": 3, "results": 3, "polls": 1}


def test_trigger_fires_done_after_a_late_push(wh):
    submit(wh, "w-late", ["1", "2"], pushed=["1"])

    async def scenario():
        trigger = NxCloudResultsTrigger(key("run-w-late"), poll_interval=0.05, deadline=time.time() + 3600)
        run = trigger.run().__anext__()
        task = asyncio.ensure_future(run)
        while trigger.__dict__.get("looks", 0) < 2:  # it looked, found 1 of 2, slept, looked again
            await asyncio.sleep(0.01)
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
    event = first_event(
        NxCloudResultsTrigger(key("run-w-timeout"), poll_interval=0.05, deadline=time.time() - 1)
    )
    assert event == {"status": "timeout", "expected": 2, "results": 1, "polls": 1}


def test_trigger_fires_error_when_the_warehouse_connection_is_unknown(wh):
    event = first_event(NxCloudResultsTrigger(key("x"), warehouse_conn_id="no_such_warehouse"))
    assert event["status"] == "error" and "warehouse connection" in event["message"]


def test_trigger_keeps_waiting_through_a_failing_warehouse_and_times_out(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEAD_WAREHOUSE",
        json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "x", "schema": "x"}),
    )

    class ThreeLooks(NxCloudResultsTrigger):  # the deadline passes after the third look, at any pace
        def deadline_passed(self) -> bool:
            return self.looks >= 3

    trigger = ThreeLooks(key("x"), warehouse_conn_id="dead_warehouse", poll_interval=0.05)
    assert first_event(trigger) == {"status": "timeout", "expected": None, "results": None, "polls": 3}


# ---- the sensor --------------------------------------------------------------------------------


NOW = 1_800_000_000.0  # the clock the deferring sensor reads: deadlines are exact, not windows


def sensor(**kwargs):
    from phonecheck_airflow.sensors.nxcloud import NxCloudResultsSensor

    kwargs.setdefault("deferrable", True)  # what the DAG passes (Airflow's default is False)
    waiting = NxCloudResultsSensor(task_id="wait", **kwargs)
    waiting.clock = lambda: NOW
    return waiting


def test_sensor_imports_its_trigger_only_when_it_defers(wh):
    from airflow.sdk.exceptions import TaskDeferred

    sys.modules.pop("phonecheck_airflow.triggers.nxcloud", None)
    sys.modules.pop("phonecheck_airflow.sensors.nxcloud", None)
    submit(wh, "s-done", ["1"], pushed=["1"])
    assert sensor(run_key=key("run-s-done")).execute({}) == {
        "run_key": key("run-s-done"), "expected": 1, "results": 1, "timed_out": False,
    }  # fmt: skip
    assert "phonecheck_airflow.triggers.nxcloud" not in sys.modules

    submit(wh, "s-open", ["1", "2"], pushed=[])
    with pytest.raises(TaskDeferred) as deferred:
        sensor(run_key=key("run-s-open"), timeout=120, poke_interval=7).execute({})
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == CLASSPATH and kwargs["poll_interval"] == 7.0  # the standard attributes
    assert kwargs["run_key"] == key("run-s-open")
    assert kwargs["deadline"] == NOW + 120  # timeout counted from the deferral
    assert deferred.value.timeout.total_seconds() == 120 + 300


def test_sensor_takes_templated_timeout_and_poke_interval_and_this_runs_key_by_default(wh):
    """What the DAG does: the standard names, templated from its params, rendered to text."""
    from airflow.sdk.exceptions import TaskDeferred

    submit(wh, "s-params", ["1"], pushed=[])
    waiting = sensor(
        poke_interval="{{ params.wait_poll_seconds }}", timeout="{{ params.wait_timeout_minutes * 60 }}"
    )
    assert {"run_key", "timeout", "poke_interval"} <= set(waiting.template_fields)
    waiting.poke_interval, waiting.timeout = "0.5", "60"  # as rendered
    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute({"dag": SimpleNamespace(dag_id=DAG_ID), "run_id": "run-s-params"})
    kwargs = deferred.value.trigger.serialize()[1]
    assert kwargs["run_key"] == key("run-s-params")
    assert kwargs["poll_interval"] == 0.5 and kwargs["deadline"] == NOW + 60
    assert deferred.value.timeout.total_seconds() == 60 + 300


def test_sensor_in_poke_mode_waits_in_the_worker_and_hands_over_on_timeout(wh):
    submit(wh, "s-poke", ["1", "2"], pushed=["1"])
    # timeout 0: the first poke that finds a result missing is past it, at any pace
    waiting = sensor(run_key=key("run-s-poke"), deferrable=False, mode="poke", timeout=0, poke_interval=0.05)
    assert waiting.execute({}) == {
        "run_key": key("run-s-poke"),
        "expected": 2,
        "results": 1,
        "timed_out": True,
    }
    from airflow.sdk.exceptions import AirflowSensorTimeout

    strict = sensor(
        run_key=key("run-s-poke"), deferrable=False, timeout=0, poke_interval=0.05, fail_on_timeout=True
    )
    with pytest.raises(AirflowSensorTimeout):
        strict.execute({})


def test_sensor_event_paths(wh):
    from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

    waiting = sensor(run_key=key("x"), timeout="60")  # resumed: the template is rendered again
    done = {"status": "done", "expected": 2, "results": 2, "polls": 3}
    assert waiting.execute_complete({}, done) == {
        "run_key": key("x"), "expected": 2, "results": 2, "timed_out": False,
    }  # fmt: skip
    timeout = {"status": "timeout", "expected": 2, "results": 1, "polls": 9}
    assert waiting.execute_complete({}, timeout) == {
        "run_key": key("x"), "expected": 2, "results": 1, "timed_out": True,
    }  # fmt: skip
    with pytest.raises(AirflowSensorTimeout, match="only 1/2 numbers have a result after 60 s"):
        sensor(run_key=key("x"), timeout=60, fail_on_timeout=True).execute_complete({}, timeout)
    with pytest.raises(AirflowException, match="warehouse down"):
        waiting.execute_complete({}, {"status": "error", "message": "warehouse down"})
    with pytest.raises(AirflowException, match="no event"):
        waiting.execute_complete({}, None)


def test_sensor_in_reschedule_mode_frees_its_slot_until_the_next_poke_and_hands_over_on_timeout(wh):
    from datetime import UTC, datetime, timedelta

    from airflow.sdk.exceptions import AirflowRescheduleException

    submit(wh, "s-resched", ["1", "2"], pushed=["2"])
    waiting = sensor(run_key=key("run-s-resched"), mode="reschedule", timeout="600", poke_interval="30")
    first_try = SimpleNamespace(get_first_reschedule_date=lambda context: None)
    before = datetime.now(UTC)
    with pytest.raises(AirflowRescheduleException) as rescheduled:
        waiting.execute({"ti": first_try})
    after = datetime.now(UTC)
    poke_interval = timedelta(seconds=30)  # the templated poke_interval, rendered
    assert before + poke_interval <= rescheduled.value.reschedule_date <= after + poke_interval

    long_ago = datetime.now(UTC) - timedelta(seconds=601)  # first poke longer ago than the timeout
    later_try = SimpleNamespace(get_first_reschedule_date=lambda context: long_ago)
    again = sensor(run_key=key("run-s-resched"), mode="reschedule", timeout="600", poke_interval="30")
    assert again.execute({"ti": later_try}) == {
        "run_key": key("run-s-resched"), "expected": 2, "results": 1, "timed_out": True,
    }  # fmt: skip


def test_trigger_and_hook_space_query_calls_of_one_account_alike(
    vendor_connections, fresh_warehouse_dsn, monkeypatch
):
    """The in-doubt trigger's probes and the tasks' hook share the account's query slot in
    the warehouse: both space calls by the vendor's interval plus the arrival margin, so neither
    sends a call the vendor may count as too soon after the other's."""
    from phonecheck import warehouse
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse.airflow_connection_json(fresh_warehouse_dsn))
    from phonecheck_airflow.triggers.nxcloud import NxCloudInDoubtTrigger

    trigger = NxCloudInDoubtTrigger(key("spacing"), window_s=600)
    trigger_client = asyncio.run(trigger._client(fresh_warehouse_dsn))
    hook_client = NxCloudHook(warehouse_conn_id="warehouse").get_client()
    settings = hook_client.settings
    assert trigger_client.query_limiter.min_interval_s == hook_client.query_limiter.min_interval_s
    assert (
        hook_client.query_limiter.min_interval_s == settings.query_spacing_s > settings.query_min_interval_s
    )
