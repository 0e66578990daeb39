"""``AccuAuthTaskTrigger`` and the sensor's resume, in the style of providers/http's trigger tests:
``serialize()`` gives the exact classpath and kwargs, and every event path yields exactly one
small event: done (selector and counts), error (an account-wide vendor answer), and no event but
a failure for anything else. Real parts: the vendor sandbox over HTTP and the real PostgreSQL
warehouse (``AIRFLOW_CONN_*`` point at both). The whole defer → fire → resume → load chain and
the callbacks: tests/integration/test_accuauth_wait.py."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from phonecheck.accuauth.api import AccuAuthClient
from phonecheck.accuauth.submit import submit_numbers
from phonecheck.numbers import normalise
from phonecheck.sandbox import outcomes
from phonecheck_airflow.sensors.accuauth import AccuAuthTasksSensor
from phonecheck_airflow.triggers.accuauth import AccuAuthTaskTrigger

pytestmark = pytest.mark.integration

CLASSPATH = "phonecheck_airflow.triggers.accuauth.AccuAuthTaskTrigger"
FAST = {"poll_interval": 0.05, "max_poll_interval": 0.2, "max_requests_per_second": 200.0}


def test_serialize_gives_the_exact_classpath_and_kwargs():
    trigger = AccuAuthTaskTrigger(
        run_id="manual__2026",
        max_submission_id=42,
        poll_interval="0.5",  # rendered templates arrive as strings
        max_in_flight="4",
        dag_id="accuauth_phone_check",
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    assert kwargs == {
        "run_id": "manual__2026",
        "max_submission_id": 42,
        "accuauth_conn_id": "accuauth_default",
        "warehouse_conn_id": "warehouse",
        "poll_interval": 0.5,
        "max_poll_interval": 900.0,
        "backoff_factor": 2.0,
        "max_requests_per_second": 10.0,
        "max_in_flight": 4,
        "warehouse_check_interval": 30.0,
        "dag_id": "accuauth_phone_check",
        "deadline": None,
    }
    assert AccuAuthTaskTrigger(**kwargs).serialize() == (classpath, kwargs)  # what the triggerer rebuilds


def submit(dsn: str, sandbox, phones: list[str], run_key: str):
    c = sandbox.credentials
    with (
        psycopg.connect(dsn) as conn,
        AccuAuthClient(sandbox.accuauth_host, c.accuauth_api_id, c.accuauth_api_secret) as client,
    ):
        return submit_numbers(
            conn, client, [normalise("+" + p) for p in phones], run_key=run_key, run_id=run_key
        )


def fire(trigger: AccuAuthTaskTrigger) -> list[dict]:
    async def collect() -> list[dict]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def test_a_finished_wait_yields_one_event_with_the_selector_and_counts_only(
    vendor_connections, fresh_warehouse_dsn
):
    sandbox, dsn = vendor_connections, fresh_warehouse_dsn
    sandbox.control.settings(accuauth_seconds_per_poll=3600.0)  # finished by polls only
    phones = ["525512000051", "525512000062"]  # 1 and 2 PENDING polls first
    report = submit(dsn, sandbox, phones, run_key="unit/done")
    assert report.pending == 2

    (payload,) = fire(AccuAuthTaskTrigger("unit/done", report.max_submission_id, dag_id="d", **FAST))
    assert payload["status"] == "done"
    assert payload["selector"] == {"run_id": "unit/done", "max_submission_id": report.max_submission_id}
    stats = payload["stats"]
    assert (stats["tasks"], stats["finished_by_poll"], stats["expired"]) == (2, 2, 0)
    assert stats["polls"] == sum(outcomes.accuauth_pending_polls(p) + 1 for p in phones)
    assert stats["vendor_calls"] == len(sandbox.control.calls(event="accuauth.task_result"))
    assert set(payload) == {"status", "selector", "stats"}  # counts, never results
    assert all(isinstance(v, int | float) for v in stats.values())  # numbers only
    with psycopg.connect(dsn) as conn:  # the answers are in the warehouse, for the load task
        answers = conn.execute("SELECT count(*) FROM raw.vendor_answer WHERE dag_id = 'd'").fetchone()[0]
    assert answers == stats["polls"]


def test_nothing_open_yields_done_at_once_without_a_vendor_call(vendor_connections, fresh_warehouse_dsn):
    (payload,) = fire(AccuAuthTaskTrigger("unit/nothing", 10**9, **FAST))
    assert payload["status"] == "done" and payload["stats"]["tasks"] == 0
    assert vendor_connections.control.calls(event="accuauth.task_result") == []


@pytest.mark.parametrize("status", ["KEY_EXPIRED", "OUT_OF_QUOTA", "NOT_FOUND"])
def test_an_account_wide_vendor_answer_yields_one_error_event(
    vendor_connections, fresh_warehouse_dsn, status
):
    sandbox, dsn = vendor_connections, fresh_warehouse_dsn
    report = submit(dsn, sandbox, ["525512000081"], run_key="unit/fatal")
    sandbox.control.faults({"target": "accuauth.task_result", "kind": "code", "accuauth_status": status})

    (payload,) = fire(AccuAuthTaskTrigger("unit/fatal", report.max_submission_id, **FAST))
    assert payload["status"] == "error" and payload["error"] == status
    assert payload["selector"] == {"run_id": "unit/fatal", "max_submission_id": report.max_submission_id}
    assert status in payload["message"]
    assert sandbox.credentials.accuauth_api_secret not in json.dumps(payload)


def test_a_passed_deadline_yields_one_timeout_event(vendor_connections, fresh_warehouse_dsn):
    sandbox, dsn = vendor_connections, fresh_warehouse_dsn
    sandbox.control.settings(accuauth_seconds_per_poll=3600.0, accuauth_pending_polls=1000)
    report = submit(dsn, sandbox, ["525512000071"], run_key="unit/deadline")
    events = fire(AccuAuthTaskTrigger("unit/deadline", report.max_submission_id, deadline=1.0, **FAST))
    assert events == [
        {
            "status": "timeout",
            "selector": {"run_id": "unit/deadline", "max_submission_id": report.max_submission_id},
        }
    ]


def test_an_unreachable_warehouse_fails_the_trigger_instead_of_firing(vendor_connections, monkeypatch):
    """A warehouse outage is no vendor verdict: no event, the trigger fails (the task retries)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE",
        json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "x", "schema": "x"}),
    )
    with pytest.raises(psycopg.OperationalError):
        fire(AccuAuthTaskTrigger("unit/down", 1, **FAST))
    assert vendor_connections.control.calls(event="accuauth.task_result") == []


# ---- the sensor's resume (pure: the event is the input) ------------------------------------------


def sensor() -> AccuAuthTasksSensor:
    return AccuAuthTasksSensor(task_id="wait", selector={"run_id": "manual__2026", "max_submission_id": 42})


def test_the_sensor_resumes_with_the_selector_and_counts():
    event = {
        "status": "done",
        "selector": {"run_id": "manual__2026", "max_submission_id": 42},
        "stats": {"polls": 3},
    }
    assert sensor().execute_complete(context={}, event=event) == {**event, "timed_out": False}


def test_the_sensor_hands_over_at_the_deadline_or_fails_if_asked_to():
    from airflow.sdk.exceptions import AirflowSensorTimeout

    event = {"status": "timeout", "selector": {"run_id": "manual__2026", "max_submission_id": 42}}
    assert sensor().execute_complete(context={}, event=event) == {**event, "stats": {}, "timed_out": True}
    strict = AccuAuthTasksSensor(task_id="wait", selector=event["selector"], timeout=60, fail_on_timeout=True)
    with pytest.raises(AirflowSensorTimeout, match="not done after 60 s"):
        strict.execute_complete(context={}, event=event)


def test_the_sensor_fails_without_retry_on_a_vendor_error_and_with_retry_otherwise():
    with pytest.raises(AirflowFailException, match="KEY_EXPIRED"):
        sensor().execute_complete(
            context={}, event={"status": "error", "error": "KEY_EXPIRED", "message": "AccuAuth KEY_EXPIRED"}
        )
    # an unknown warehouse connection is no vendor verdict: a retry (once it exists) may help
    with pytest.raises(AirflowException, match="warehouse connection") as failed:
        sensor().execute_complete(context={}, event={"status": "error", "message": "warehouse connection: x"})
    assert not isinstance(failed.value, AirflowFailException)
    with pytest.raises(AirflowException, match="no event"):
        sensor().execute_complete(context={}, event=None)
