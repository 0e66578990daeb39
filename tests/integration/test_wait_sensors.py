"""Both wait sensors (``AccuAuthTasksSensor``, ``NxCloudResultsSensor``) honour the standard sensor
arguments the way Airflow's own sensors do: ``timeout`` and ``poke_interval`` given to the sensor
reach the deferral and the trigger, ``mode="reschedule"`` waits by rescheduling instead of
deferring, and a deferral that runs out ends the sensor with ``AirflowSensorTimeout`` (or a skip
with ``soft_fail``), exactly as the task runner resumes a deferred sensor whose trigger timed out.
Real warehouse, real sandbox over HTTP; the deferral is what ``execute`` raises.

``deferrable`` defaults to Airflow's ``[operators] default_deferrable`` and the DAGs pass True.

Each sensor's own paths (poke once then defer, events, poke-mode loops):
tests/integration/test_accuauth_wait.py and tests/integration/test_nxcloud_wait.py."""

from __future__ import annotations

import time

import psycopg
import pytest
from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason
from airflow.sdk.exceptions import (
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from phonecheck.accuauth.api import AccuAuthClient
from phonecheck.accuauth.submit import submit_numbers
from phonecheck.numbers import normalise
from phonecheck_airflow.sensors.accuauth import AccuAuthTasksSensor
from phonecheck_airflow.sensors.nxcloud import NxCloudResultsSensor

pytestmark = pytest.mark.integration


class FirstTry:
    """The task instance's reschedule history as the task runner hands it over: none yet."""

    def get_first_reschedule_date(self, context):
        return None


def trigger_timed_out(sensor) -> None:
    """What the task runner does when the scheduler timed the deferral out: resume with ``__fail__``."""
    sensor.resume_execution(TRIGGER_FAIL_REPR, {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, context={})


# ---- AccuAuth ------------------------------------------------------------------------------------


def accuauth_open_task(dsn: str, sandbox, run_key: str) -> int:
    """One PENDING AccuAuth task of ``run_key``; its max submission id."""
    sandbox.control.settings(accuauth_seconds_per_poll=3600.0, accuauth_pending_polls=1000)
    c = sandbox.credentials
    with (
        psycopg.connect(dsn) as conn,
        AccuAuthClient(sandbox.accuauth_host, c.accuauth_api_id, c.accuauth_api_secret) as client,
    ):
        report = submit_numbers(conn, client, [normalise("+525512000071")], run_key=run_key, run_id=run_key)
    assert report.pending == 1
    return report.max_submission_id


NOW = 1_800_000_000.0  # the clock a deferring sensor reads: the deadline it hands over is exact


def accuauth_sensor(max_submission_id: int, run_key: str, **kwargs) -> AccuAuthTasksSensor:
    selector = {"run_id": run_key, "max_submission_id": max_submission_id}
    kwargs.setdefault("deferrable", True)  # what the DAG passes (Airflow's default is False)
    sensor = AccuAuthTasksSensor(task_id="wait", selector=selector, **kwargs)
    sensor.clock = lambda: NOW
    return sensor


def test_accuauth_timeout_and_poke_interval_reach_the_deferral_and_the_trigger(
    vendor_connections, fresh_warehouse_dsn
):
    max_id = accuauth_open_task(fresh_warehouse_dsn, vendor_connections, "t/defer")
    with pytest.raises(TaskDeferred) as deferred:
        accuauth_sensor(max_id, "t/defer", timeout=600, poke_interval=7).execute(context={})
    # the trigger reports the deadline; the deferral's timeout only catches one that never fires
    assert deferred.value.timeout.total_seconds() == 600 + 300
    kwargs = deferred.value.trigger.serialize()[1]
    assert kwargs["deadline"] == NOW + 600
    assert kwargs["poll_interval"] == 7.0  # a task's first poll: poke_interval by default
    assert (kwargs["run_id"], kwargs["max_submission_id"]) == ("t/defer", max_id)

    # the templated wait settings (strings once rendered) win over poke_interval
    settings = {"poll_interval_s": "0.5", "max_poll_interval_s": "60", "warehouse_check_interval_s": "2"}
    with pytest.raises(TaskDeferred) as deferred:
        accuauth_sensor(max_id, "t/defer", poke_interval=7, wait_settings=settings).execute(context={})
    assert deferred.value.timeout.total_seconds() == 25 * 3600 + 300  # the default: tasks live 24 h
    kwargs = deferred.value.trigger.serialize()[1]
    assert (kwargs["poll_interval"], kwargs["max_poll_interval"], kwargs["warehouse_check_interval"]) == (
        0.5,
        60.0,
        2.0,
    )
    assert vendor_connections.control.calls(event="accuauth.task_result") == []  # deferring polls nothing


def test_accuauth_reschedule_mode_reschedules_instead_of_deferring(vendor_connections, fresh_warehouse_dsn):
    max_id = accuauth_open_task(fresh_warehouse_dsn, vendor_connections, "t/reschedule")
    sensor = accuauth_sensor(
        max_id,
        "t/reschedule",
        mode="reschedule",
        poke_interval=5,
        wait_settings={"poll_interval_s": 0.05, "max_poll_interval_s": 0.05},
    )
    time.sleep(0.1)  # the task's first poll is due
    with pytest.raises(AirflowRescheduleException):
        sensor.execute(context={"ti": FirstTry()})  # polled once, still PENDING: come back later
    assert len(vendor_connections.control.calls(event="accuauth.task_result")) == 1


def test_accuauth_a_timed_out_deferral_ends_the_sensor_like_airflow_sensors():
    with pytest.raises(AirflowSensorTimeout):
        trigger_timed_out(accuauth_sensor(1, "t/timeout", timeout=60))
    with pytest.raises(AirflowSkipException):
        trigger_timed_out(accuauth_sensor(1, "t/timeout", timeout=60, soft_fail=True))


def test_accuauth_unknown_wait_settings_fail_when_the_dag_is_parsed():
    with pytest.raises(ValueError, match=r"unknown wait_settings \['poll_interval'\]"):
        accuauth_sensor(1, "t/typo", wait_settings={"poll_interval": 1})


def test_accuauth_wait_settings_are_the_waiters_and_each_reaches_the_trigger():
    """The names the sensor accepts (checked at parse time, without the trigger) are the trigger's
    and ``WaitSettings``' own, and the trigger turns its parameters back into those settings."""
    import dataclasses

    from phonecheck.accuauth.waiter import WaitSettings
    from phonecheck_airflow.sensors.accuauth import WAIT_SETTING_NAMES
    from phonecheck_airflow.triggers.accuauth import WAIT_SETTINGS, AccuAuthTaskTrigger

    assert set(WAIT_SETTING_NAMES) == set(WAIT_SETTINGS) <= {f.name for f in dataclasses.fields(WaitSettings)}
    given = {name: 2.0 + i for i, name in enumerate(WAIT_SETTING_NAMES)}
    given["max_in_flight"] = 3
    trigger = AccuAuthTaskTrigger.from_wait_settings(given, run_id="d/r", max_submission_id=1)
    settings = trigger.settings()
    assert {name: getattr(settings, name) for name in given} == given


# ---- NXCLOUD -------------------------------------------------------------------------------------


def nxcloud_submitted(dsn: str, batch_no: str) -> str:
    """A run that submitted one batch still without results; returns its run key."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ops.number_check_submission (vendor, batch_no, check_level, region_code, phones, "
            "phone_count, status, dag_id, run_id) VALUES ('nxcloud', %s, 1, 'MX', %s, 1, 'submitted', "
            "'nxcloud_number_check', %s)",
            (batch_no, ["5255120000"], f"run-{batch_no}"),
        )
    return f"nxcloud_number_check/run-{batch_no}"


def test_nxcloud_reschedule_mode_reschedules_instead_of_deferring(fresh_warehouse_dsn):
    run_key = nxcloud_submitted(fresh_warehouse_dsn, "t-reschedule")
    sensor = NxCloudResultsSensor(
        task_id="wait", run_key=run_key, mode="reschedule", poke_interval=5, deferrable=True
    )
    with pytest.raises(AirflowRescheduleException):
        sensor.execute(context={"ti": FirstTry()})


def test_nxcloud_a_timed_out_deferral_ends_the_sensor_like_airflow_sensors():
    """The trigger reports its own deadline (handed over to reconciliation); the deferral's timeout
    only catches a trigger that never fired, and then the sensor times out as Airflow's do."""
    with pytest.raises(AirflowSensorTimeout):
        trigger_timed_out(NxCloudResultsSensor(task_id="wait", run_key="d/r", timeout=60))
    with pytest.raises(AirflowSkipException):
        trigger_timed_out(NxCloudResultsSensor(task_id="wait", run_key="d/r", timeout=60, soft_fail=True))


# ---- both ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("configured", ["True", "False"])
def test_deferrable_defaults_to_airflows_default_deferrable(monkeypatch, configured):
    """Like the providers' sensors: ``[operators] default_deferrable`` (Airflow's default: False,
    which is why the DAGs pass ``deferrable=True``); an explicit argument wins."""
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", configured)
    expected = configured == "True"
    selector = {"run_id": "d/r", "max_submission_id": 1}
    assert AccuAuthTasksSensor(task_id="wait", selector=selector).deferrable is expected
    assert NxCloudResultsSensor(task_id="wait", run_key="d/r").deferrable is expected
    assert (
        NxCloudResultsSensor(task_id="wait", run_key="d/r", deferrable=not expected).deferrable
        is not expected
    )
    assert (
        AccuAuthTasksSensor(task_id="wait", selector=selector, deferrable=not expected).deferrable
        is not expected
    )


def test_the_dags_defer_whatever_airflows_default(monkeypatch):
    """The DAGs pass ``deferrable=True``: with Airflow's default (False) their waits still defer."""
    from airflow.sdk.configuration import conf

    monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", raising=False)
    assert conf.getboolean("operators", "default_deferrable") is False
    import ast
    from pathlib import Path

    dags = Path(__file__).resolve().parents[2] / "dags"
    sensor_calls = {
        file.name: [
            node
            for node in ast.walk(ast.parse(file.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "id", "").endswith("Sensor")
        ]
        for file in sorted(dags.glob("*.py"))
    }
    # every wait of ours is in these DAGs; a new DAG with a sensor is checked the same way
    assert {name for name, calls in sensor_calls.items() if calls} >= {
        "accuauth_phone_check.py",
        "accuauth_phone_check_daily.py",
        "nxcloud_number_check.py",
    }
    # no wait holds a worker slot: it defers, or (a plain time wait) it reschedules
    for name, calls in sensor_calls.items():
        for call in calls:
            given = {k.arg: getattr(k.value, "value", None) for k in call.keywords}
            holds_no_slot = given.get("deferrable") is True or given.get("mode") == "reschedule"
            assert holds_no_slot, f"{name}: {call.func.id} neither deferrable=True nor mode='reschedule'"
            if call.func.id in ("AccuAuthTasksSensor", "NxCloudResultsSensor"):
                assert given.get("deferrable") is True, f"{name}: {call.func.id} without deferrable=True"
