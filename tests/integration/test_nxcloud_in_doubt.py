"""A batch whose submit answer was lost waits in the triggerer, not in a worker.

``submit`` records the batch in doubt and returns; ``settle_in_doubt``
(:class:`~phonecheck_airflow.operators.nxcloud.NxCloudSettleInDoubtOperator`) defers to
:class:`~phonecheck_airflow.triggers.nxcloud.NxCloudInDoubtTrigger` while the vendor is silent,
and afterwards the batch is recovered (strict profile: the vendor had charged and lists it) or
sent again (default profile: the vendor never had it), one charge per number either way. Under
``dag.test()`` a deferred task is re-queued at once while its trigger runs inline, so deferral is
asserted where it happens: the operator raises ``TaskDeferred``, the trigger survives its
serialisation, fires a small event, and ``execute_complete`` acts on it. A ``dag.test()`` run
in a separate process, caught in the wait, stops when sent SIGTERM.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from types import SimpleNamespace

import psycopg
import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from phonecheck.nxcloud.planning import Chunk
from phonecheck.nxcloud.submissions import submit_chunk
from phonecheck_airflow.operators.nxcloud import NxCloudSettleInDoubtOperator
from phonecheck_airflow.triggers.nxcloud import NxCloudInDoubtTrigger

pytestmark = pytest.mark.integration
DAG_ID = "nxcloud_number_check"
CLASSPATH = "phonecheck_airflow.triggers.nxcloud.NxCloudInDoubtTrigger"


def mx(count: int, start: int) -> tuple[str, ...]:
    return tuple(f"525513{start + i:06d}" for i in range(count))


def rows(dsn: str, query: str, *args) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, args).fetchall()


def first_event(trigger: NxCloudInDoubtTrigger) -> dict:
    async def collect():
        async for event in trigger.run():
            return event.payload
        return None

    return asyncio.run(collect())


def lost_submit(nx, run_id: str, start: int) -> Chunk:
    """One batch of run ``run_id`` whose submit answer is lost (HTTP 502), no drUrl: silent vendor."""
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    chunk = Chunk(f"doubt-{run_id}-MX-0000", "MX", 1, 0, mx(5, start))
    nx.sandbox.control.faults({"target": "nxcloud.check", "kind": "error", "status": 502, "count": 1})
    with psycopg.connect(nx.dsn) as conn:
        outcome = submit_chunk(
            conn, NxCloudHook().get_client(), chunk, dr_url=None, dag_id=DAG_ID, run_id=run_id
        )
    assert outcome.status == "in_doubt"  # returned at once: submit never waits
    return chunk


def settle_operator(run_id: str) -> NxCloudSettleInDoubtOperator:
    return NxCloudSettleInDoubtOperator(
        task_id=f"settle_in_doubt_{run_id}", run_key=f"{DAG_ID}/{run_id}", poll_interval=0.05
    )


@pytest.fixture
def nx(nxcloud_wired):
    sandbox, live_receiver = nxcloud_wired
    return SimpleNamespace(sandbox=sandbox, dsn=live_receiver.dsn)


def test_a_batch_in_doubt_defers_and_is_recovered_or_sent_again_as_before(nx, vendor_profile):
    chunk = lost_submit(nx, "silent", 100)
    operator = settle_operator("silent")
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({})
    trigger = deferred.value.trigger
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    assert kwargs["run_key"] == f"{DAG_ID}/silent" and kwargs["window_s"] == 0.5  # push window + margin
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)  # what a triggerer does
    assert rebuilt.serialize() == (classpath, kwargs)
    assert len(nx.sandbox.control.calls(event="nxcloud.check")) == 1  # nothing sent while in doubt
    assert rows(nx.dsn, "SELECT status FROM ops.number_check_submission") == [("in_doubt",)]

    event = first_event(rebuilt)
    assert len(json.dumps(event)) < 300  # keys and counts, never rows
    strict = vendor_profile == "strict"
    # strict: the vendor had charged and its query API lists the batch; default: it never had it
    assert (event["status"], event["listed"], event["unlisted"]) == (
        ("settled", [chunk.batch_no], []) if strict else ("settled", [], [chunk.batch_no])
    )
    result = operator.execute_complete({}, event)
    assert (result["in_doubt"], result["recovered"], result["resent"], result["still_in_doubt"]) == (
        (1, 1, 0, 0) if strict else (1, 0, 1, 0)
    )
    assert result["most_sends"] == (1 if strict else 2)
    charges = Counter(c["phone"] for c in nx.sandbox.control.charges(batch_no=chunk.batch_no))
    assert charges == Counter(dict.fromkeys(chunk.phones, 1))
    assert rows(nx.dsn, "SELECT status FROM ops.number_check_submission") == [("submitted",)]


def test_a_query_api_that_keeps_refusing_sends_nothing_and_fails_the_task(nx):
    chunk = lost_submit(nx, "refusing", 200)
    nx.sandbox.control.faults({"target": "nxcloud.query", "kind": "code", "code": 1005})  # every probe
    operator = settle_operator("refusing")
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({})
    event = first_event(deferred.value.trigger)
    assert (event["status"], event["refused"], event["unlisted"]) == ("refused", [chunk.batch_no], [])
    assert event["refusals"] >= 1
    with pytest.raises(AirflowException, match="kept refusing"):
        operator.execute_complete({}, event)
    assert len(nx.sandbox.control.calls(event="nxcloud.check")) == 1  # never sent again on no answer
    assert rows(nx.dsn, "SELECT status FROM ops.number_check_submission") == [("in_doubt",)]


SIGTERM_RUN = """
import sys
from airflow.dag_processing.dagbag import DagBag
from phonecheck_dev.devtools import run_dag_test

dag = DagBag(dag_folder=sys.argv[1]).dags["nxcloud_number_check"]
run_dag_test(dag, run_conf={"numbers": "+525513000300\\n+525513000301", "batch_label": "sigterm",
                            "budget": 10, "wait_poll_seconds": 0.2})
"""


def test_a_run_caught_in_the_in_doubt_wait_stops_on_sigterm(nx, airflow_db, monkeypatch, tmp_path):
    """The documented 10-minute window: the old wait slept in ``submit`` and ignored SIGTERM;
    now ``submit`` returns at once and the wait is the trigger's, which a SIGTERM ends."""
    from phonecheck_airflow.operators.nxcloud import __file__ as operators_file

    conn = json.loads(os.environ["AIRFLOW_CONN_NXCLOUD_DEFAULT"])
    conn["extra"].update(push_window_s=300, in_doubt_margin_s=300)
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", json.dumps(conn))
    nx.sandbox.control.faults({"target": "nxcloud.check", "kind": "error", "status": 502, "count": 1})
    # its own copy of the migrated metadata DB and this process's Fernet key: the run killed
    # mid-wait leaves a deferred task and an encrypted trigger row the session must not meet
    from airflow.configuration import conf as airflow_conf

    metadata = tmp_path / "airflow.db"
    source = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///").split("?")[0]
    with sqlite3.connect(source) as src, sqlite3.connect(metadata) as dst:
        src.backup(dst)  # the migrated schema, WAL included
    env = {
        **os.environ,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{metadata}?timeout=30",
        "AIRFLOW__CORE__FERNET_KEY": airflow_conf.get("core", "fernet_key"),
    }
    log = tmp_path / "run.log"
    dags = os.path.join(os.path.dirname(operators_file), "..", "..", "..", "dags", "nxcloud_number_check.py")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", SIGTERM_RUN, os.path.abspath(dags)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            waited = 0.0
            while "waiting in the triggerer" not in log.read_text(errors="replace"):
                assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
                assert waited < 300, log.read_text(errors="replace")[-4000:]
                proc_wait(proc, 0.5)
                waited += 0.5
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)  # the old wait kept the process for the whole 10-minute window
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text(errors="replace")
    assert "AirflowTaskTerminated" in text, text[-4000:]
    assert len(nx.sandbox.control.calls(event="nxcloud.check")) == 1  # nothing sent again
    assert rows(nx.dsn, "SELECT status FROM ops.number_check_submission") == [("in_doubt",)]


def proc_wait(proc: subprocess.Popen, seconds: float) -> None:
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass


def test_a_batch_whose_every_answer_is_lost_is_sent_at_most_three_times(nx):
    """Default profile: the vendor never gets the batch and every answer is lost. Each round
    waits in the trigger and sends again; after the third send the task fails, in doubt."""
    from phonecheck.nxcloud.submissions import MAX_SUBMIT_ROUNDS

    chunk = lost_submit(nx, "always-lost", 400)
    nx.sandbox.control.faults({"target": "nxcloud.check", "kind": "error", "status": 502})  # every send
    operator = settle_operator("always-lost")
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({})
    trigger = deferred.value.trigger
    for _ in range(MAX_SUBMIT_ROUNDS - 1):  # each resend's answer is lost: deferred again
        with pytest.raises(TaskDeferred) as again:
            operator.execute_complete({}, first_event(trigger))
        trigger = again.value.trigger
    with pytest.raises(AirflowException, match="every send's answer was lost"):
        operator.execute_complete({}, first_event(trigger))
    assert len(nx.sandbox.control.calls(event="nxcloud.check")) == MAX_SUBMIT_ROUNDS
    assert rows(nx.dsn, "SELECT status, send_count FROM ops.number_check_submission WHERE batch_no = %s",
                chunk.batch_no) == [("in_doubt", MAX_SUBMIT_ROUNDS)]  # fmt: skip
