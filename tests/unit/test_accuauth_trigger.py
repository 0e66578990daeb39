"""The AccuAuth trigger and the sensor's resume, in the style of providers/http's trigger tests:
``serialize()`` gives the exact classpath and kwargs, and every event path yields exactly one
small event. The wait itself (``run_wait``) and the connection lookup are replaced here; the real
wait over HTTP and PostgreSQL is covered by tests/integration/test_accuauth_wait.py."""

from __future__ import annotations

import asyncio
import json
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from phonecheck.accuauth.api import AccuAuthKeyExpired, AccuAuthNotFound
from phonecheck.accuauth.waiter import WaitOutcome
from phonecheck_airflow.sensors.accuauth import AccuAuthTasksSensor
from phonecheck_airflow.triggers.accuauth import AccuAuthTaskTrigger

CLASSPATH = "phonecheck_airflow.triggers.accuauth.AccuAuthTaskTrigger"


def make_trigger(**overrides) -> AccuAuthTaskTrigger:
    kwargs = {
        "run_id": "manual__2026",
        "max_submission_id": 42,
        "dag_id": "accuauth_phone_check",
        **overrides,
    }
    return AccuAuthTaskTrigger(**kwargs)


def test_serialize_gives_the_exact_classpath_and_kwargs():
    classpath, kwargs = make_trigger(poll_interval_s="0.5").serialize()
    assert classpath == CLASSPATH
    assert kwargs == {
        "run_id": "manual__2026",
        "max_submission_id": 42,
        "accuauth_conn_id": "accuauth_default",
        "warehouse_conn_id": "warehouse",
        "poll_interval_s": 0.5,  # a rendered template string becomes a number
        "max_poll_interval_s": 900.0,
        "backoff_factor": 2.0,
        "max_requests_per_second": 10.0,
        "max_in_flight": 16,
        "warehouse_check_interval_s": 30.0,
        "dag_id": "accuauth_phone_check",
    }
    assert AccuAuthTaskTrigger(**kwargs).serialize() == (classpath, kwargs)  # what the triggerer rebuilds


@pytest.fixture
def connections():
    from airflow.sdk import Connection

    async def aget_connection(conn_id):
        if conn_id == "warehouse":
            return Connection(conn_id=conn_id, conn_type="postgres", host="127.0.0.1", login="u", schema="wh")
        return Connection(
            conn_id=conn_id, conn_type="accuauth", host="http://127.0.0.1:9", login="id", password="secret"
        )

    with mock.patch("airflow.sdk.BaseHook.aget_connection", side_effect=aget_connection):
        yield


async def collect(trigger: AccuAuthTaskTrigger) -> list:
    return [event async for event in trigger.run()]


def test_a_finished_wait_yields_one_event_with_the_selector_and_counts_only(connections):
    outcome = WaitOutcome(finished_by_poll=9_000, ended_by_vendor=3, finished_elsewhere=997, polls=30_000)
    with mock.patch("phonecheck.accuauth.waiter.run_wait", return_value=outcome) as run_wait:
        events = asyncio.run(collect(make_trigger()))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "done"
    assert payload["selector"] == {"run_id": "manual__2026", "max_submission_id": 42}
    assert payload["stats"]["tasks"] == 10_000 and payload["stats"]["ended_by_vendor"] == 3
    assert len(json.dumps(payload)) < 600  # 10,000 tasks, still a small event
    selector = run_wait.call_args.args[2]
    assert (selector.run_id, selector.max_submission_id) == ("manual__2026", 42)
    assert run_wait.call_args.kwargs["dag_id"] == "accuauth_phone_check"


@pytest.mark.parametrize(
    "error",
    [
        AccuAuthKeyExpired("KEY_EXPIRED", "Your API ID has expired", http_status=401),
        AccuAuthNotFound("NOT_FOUND", "Requested API cannot be found", http_status=404),
    ],
)
def test_an_account_wide_vendor_error_yields_one_error_event(connections, error):
    with mock.patch("phonecheck.accuauth.waiter.run_wait", side_effect=error):
        events = asyncio.run(collect(make_trigger()))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "error" and payload["error"] == error.status
    assert payload["selector"] == {"run_id": "manual__2026", "max_submission_id": 42}
    assert error.reason in payload["message"] and "secret" not in payload["message"]


def test_an_unexpected_failure_is_not_turned_into_an_event(connections):
    """A warehouse outage is no vendor verdict: the trigger fails (the task retries)."""
    with (
        mock.patch("phonecheck.accuauth.waiter.run_wait", side_effect=OSError("warehouse down")),
        pytest.raises(OSError),
    ):
        asyncio.run(collect(make_trigger()))


def sensor() -> AccuAuthTasksSensor:
    return AccuAuthTasksSensor(task_id="wait", selector={"run_id": "manual__2026", "max_submission_id": 42})


def test_the_sensor_resumes_with_the_selector_and_counts():
    event = {
        "status": "done",
        "selector": {"run_id": "manual__2026", "max_submission_id": 42},
        "stats": {"polls": 3},
    }
    assert sensor().execute_complete(context={}, event=event) == event


def test_the_sensor_fails_without_retry_on_an_error_event_and_on_no_event():
    with pytest.raises(AirflowFailException, match="KEY_EXPIRED"):
        sensor().execute_complete(context={}, event={"status": "error", "message": "AccuAuth KEY_EXPIRED"})
    with pytest.raises(AirflowException, match="without an event"):
        sensor().execute_complete(context={}, event=None)
