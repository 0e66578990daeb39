"""One source for the webhook base URL and token (docs/development.md, "Settings: one source
each"): the standalone receiver (``python -m phonecheck.receiver``, a real process) and a real
pipeline run (``nxcloud_number_check`` through ``dag.test()``, the sandbox pushing over real
HTTP) read the same setting, spelled as the Airflow Variable or as the contract env var.
Either spelling alone makes the pushes land; settings the two sides would read differently
stop the receiver (and the pipeline, before any paid call) with a message naming both."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.fixtures.ports import reserve_port
from tests.fixtures.receiver import PREFIX, REPO_ROOT, _subprocess_server
from tests.fixtures.sandbox import TEST_QUERY_SPACING_S

pytestmark = pytest.mark.integration

DAG_ID = "nxcloud_number_check"
SPELLINGS = {
    "variable": ("AIRFLOW_VAR_TELCO_WEBHOOK_BASE_URL", "AIRFLOW_VAR_TELCO_WEBHOOK_TOKEN"),
    "env": ("TELCO_WEBHOOK_BASE_URL", "TELCO_WEBHOOK_TOKEN"),
}
ALL_NAMES = [name for pair in SPELLINGS.values() for name in pair]
BOTH_NAMES = ("telco_webhook_token", "TELCO_WEBHOOK_TOKEN")


def receiver_env(dsn: str, port: int, spool: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ALL_NAMES and k != "AIRFLOW_CONN_WAREHOUSE"}
    # the receiver reads the warehouse as Airflow does: the `warehouse` connection's env form
    env.pop("WAREHOUSE_DSN", None)
    env["AIRFLOW_CONN_WAREHOUSE"] = os.environ["AIRFLOW_CONN_WAREHOUSE"]
    return {**env, "RECEIVER_PORT": str(port), "RECEIVER_SPOOL_DIR": str(spool), **settings}


@contextmanager
def standalone(dsn: str, tmp_path: Path, **settings: str) -> Iterator[str]:
    port = reserve_port()
    base = f"http://127.0.0.1:{port}{PREFIX}"
    env = receiver_env(dsn, port, tmp_path / "spool", **settings)
    with _subprocess_server([sys.executable, "-m", "phonecheck.receiver"], env, base, 60):
        yield base


def refused_start(dsn: str, tmp_path: Path, **settings: str) -> subprocess.CompletedProcess:
    env = receiver_env(dsn, reserve_port(), tmp_path / "spool", **settings)
    return subprocess.run(
        [sys.executable, "-m", "phonecheck.receiver"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def pipeline(vendor_connections, fresh_warehouse_dsn, monkeypatch):
    """The sandbox as ``nxcloud_default`` with contract prices, no webhook setting in the test
    process yet. Returns ``(sandbox, dsn)``."""
    for name in ALL_NAMES:
        monkeypatch.delenv(name, raising=False)
    sandbox = vendor_connections
    conn = json.loads(sandbox.nxcloud_connection_json())
    conn["extra"]["query_min_interval_s"] = TEST_QUERY_SPACING_S
    conn["extra"]["push_window_s"] = 0.25
    conn["extra"]["in_doubt_margin_s"] = 0.25
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", json.dumps(conn))
    with psycopg.connect(fresh_warehouse_dsn) as db:
        db.execute(
            "INSERT INTO ops.nxcloud_price_list (region_code, check_level, price, currency, note) "
            "VALUES ('MX', 1, 0.0040, 'USD', 'test contract')"
        )
    return sandbox, fresh_warehouse_dsn


def conf(numbers: list[str]) -> dict:
    return {"numbers": "\n".join(numbers), "default_region": "MX", "check_level": "basic",
            "batch_label": "settings", "budget": 100, "wait_poll_seconds": 0.3, "wait_timeout_minutes": 1}  # fmt: skip


def states(run) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}


@pytest.mark.parametrize("spelling", ["variable", "env"])
def test_either_spelling_alone_reaches_both_processes_and_the_pushes_land(
    spelling, pipeline, run_dag, monkeypatch, tmp_path
):
    sandbox, dsn = pipeline
    base_name, token_name = SPELLINGS[spelling]
    token = "tok-" + secrets.token_urlsafe(24)
    with standalone(dsn, tmp_path, **{token_name: token}) as base_url:
        monkeypatch.setenv(base_name, base_url)
        monkeypatch.setenv(token_name, token)
        numbers = [f"+525512{i:06d}" for i in range(600, 606)]
        run = run_dag(DAG_ID, conf=conf(numbers))
        sandbox.control.wait_pushes()
    assert states(run)["submit"] == "success", states(run)
    pushes = sandbox.control.pushes(kind="number_check")
    assert pushes and {p["outcome"] for p in pushes} <= {"accepted", "duplicate"}, pushes  # never a 404
    with psycopg.connect(dsn) as db:
        stored = db.execute(
            "SELECT count(*) FROM raw.webhook_event WHERE endpoint = 'nxcloud_number_check'"
        ).fetchone()[0]
        pushed = db.execute(
            "SELECT count(*) FROM telco.nxcloud_number_check WHERE raw_event_id IS NOT NULL"
        ).fetchone()[0]
    assert stored >= 1 and pushed == len(numbers)  # every number's result came by push


def test_a_variable_and_an_env_var_that_differ_stop_both_sides_naming_both(
    pipeline, run_dag, monkeypatch, tmp_path, caplog, capfd
):
    sandbox, dsn = pipeline
    token, other = "tok-" + secrets.token_urlsafe(24), "tok-" + secrets.token_urlsafe(24)
    refused = refused_start(dsn, tmp_path, AIRFLOW_VAR_TELCO_WEBHOOK_TOKEN=token, TELCO_WEBHOOK_TOKEN=other)
    assert refused.returncode == 2, refused.stderr
    assert all(name in refused.stderr for name in BOTH_NAMES), refused.stderr
    assert token not in refused.stderr + refused.stdout and other not in refused.stderr + refused.stdout

    # the pipeline: the Variable kept in Airflow's metadata database, the env var in its environment
    from airflow.models.variable import Variable

    Variable.set("telco_webhook_token", token)
    try:
        monkeypatch.setenv("TELCO_WEBHOOK_BASE_URL", "http://127.0.0.1:9/telco-webhooks")
        monkeypatch.setenv("TELCO_WEBHOOK_TOKEN", other)
        with caplog.at_level("INFO"):
            run = run_dag(DAG_ID, conf=conf([f"+525512{i:06d}" for i in range(700, 703)]))
    finally:
        Variable.delete("telco_webhook_token")
    text = caplog.text + "".join(capfd.readouterr())
    assert states(run)["submit"] == "failed", states(run)
    assert (
        "the Airflow Variable telco_webhook_token" in text
        and "TELCO_WEBHOOK_TOKEN are both set and differ" in text
    )
    assert sandbox.control.calls(event="nxcloud.check") == []  # nothing paid for


def test_a_receiver_without_a_token_does_not_start_and_names_both_settings(pipeline, tmp_path):
    _, dsn = pipeline
    refused = refused_start(dsn, tmp_path)
    assert refused.returncode == 2
    assert "receiver not started" in refused.stderr
    assert all(name in refused.stderr for name in (*BOTH_NAMES, "AIRFLOW_VAR_TELCO_WEBHOOK_TOKEN"))


def test_a_receiver_holding_another_token_stops_the_submit_before_any_paid_call(
    pipeline, run_dag, monkeypatch, tmp_path, caplog, capfd
):
    """Each process alone is consistent (one spelling each), but they were given two tokens:
    the submit asks the receiver (``/token-check``) before paying and stops, naming both."""
    sandbox, dsn = pipeline
    theirs, ours = "tok-" + secrets.token_urlsafe(24), "tok-" + secrets.token_urlsafe(24)
    with standalone(dsn, tmp_path, TELCO_WEBHOOK_TOKEN=theirs) as base_url:
        monkeypatch.setenv("AIRFLOW_VAR_TELCO_WEBHOOK_BASE_URL", base_url)
        monkeypatch.setenv("AIRFLOW_VAR_TELCO_WEBHOOK_TOKEN", ours)
        with caplog.at_level("INFO"):
            run = run_dag(DAG_ID, conf=conf([f"+525512{i:06d}" for i in range(800, 803)]))
    text = caplog.text + "".join(capfd.readouterr())
    assert states(run)["submit"] == "failed", states(run)
    assert "refuses the webhook token the pipelines read (from Airflow Variable telco_webhook_token)" in text
    assert all(name in text for name in BOTH_NAMES)
    assert ours not in text and theirs not in text
    assert sandbox.control.calls(event="nxcloud.check") == []  # nothing paid for
