"""Both wait sensors (``AccuAuthTasksSensor``, ``NxCloudResultsSensor``) honour the standard sensor
arguments the way Airflow's own sensors do: ``timeout`` and ``poke_interval`` given to the sensor
reach the deferral and the trigger, ``mode="reschedule"`` waits by rescheduling instead of
deferring, and a deferral that runs out ends the sensor with ``AirflowSensorTimeout`` (or a skip
with ``soft_fail``), exactly as the task runner resumes a deferred sensor whose trigger timed out.
Real warehouse, real sandbox over HTTP; the deferral is what ``execute`` raises.

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


def accuauth_sensor(max_submission_id: int, run_key: str, **kwargs) -> AccuAuthTasksSensor:
    selector = {"run_id": run_key, "max_submission_id": max_submission_id}
    return AccuAuthTasksSensor(task_id="wait", selector=selector, **kwargs)


def test_accuauth_timeout_and_poke_interval_reach_the_deferral_and_the_trigger(
    vendor_connections, fresh_warehouse_dsn
):
    max_id = accuauth_open_task(fresh_warehouse_dsn, vendor_connections, "t/defer")
    with pytest.raises(TaskDeferred) as deferred:
        accuauth_sensor(max_id, "t/defer", timeout=600, poke_interval=7).execute(context={})
    assert deferred.value.timeout.total_seconds() == 600
    kwargs = deferred.value.trigger.serialize()[1]
    assert kwargs["poll_interval"] == 7.0  # a task's first poll: poke_interval by default
    assert (kwargs["run_id"], kwargs["max_submission_id"]) == ("t/defer", max_id)

    # the templated wait settings (strings once rendered) win over poke_interval
    settings = {"poll_interval_s": "0.5", "max_poll_interval_s": "60", "warehouse_check_interval_s": "2"}
    with pytest.raises(TaskDeferred) as deferred:
        accuauth_sensor(max_id, "t/defer", poke_interval=7, wait_settings=settings).execute(context={})
    assert deferred.value.timeout.total_seconds() == 25 * 3600  # the default: tasks live 24 h
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
    sensor = NxCloudResultsSensor(task_id="wait", run_key=run_key, mode="reschedule", poke_interval=5)
    with pytest.raises(AirflowRescheduleException):
        sensor.execute(context={"ti": FirstTry()})


def test_nxcloud_a_timed_out_deferral_ends_the_sensor_like_airflow_sensors():
    """The trigger reports its own deadline (handed over to reconciliation); the deferral's timeout
    only catches a trigger that never fired, and then the sensor times out as Airflow's do."""
    with pytest.raises(AirflowSensorTimeout):
        trigger_timed_out(NxCloudResultsSensor(task_id="wait", run_key="d/r", timeout=60))
    with pytest.raises(AirflowSkipException):
        trigger_timed_out(NxCloudResultsSensor(task_id="wait", run_key="d/r", timeout=60, soft_fail=True))
