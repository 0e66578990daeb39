"""No secret in any log line: the pipelines run with distinctive credentials and every
log they produce is searched for them.

The sandbox is told fresh random credentials for this run (``/_sandbox/settings``) and the
Airflow connections carry the same, so the calls succeed only if the real secrets are used. Then
a representative set of DAGs runs through ``dag.test()``: the NXCLOUD number check (signed
submit, drUrl with the webhook token, query paging), AccuAuth (API secret header, callback URL
with the token), the daily NXCLOUD sync, push processing, and a NXCLOUD run with a wrong secret
(the failure path, where exceptions are logged). Searched: captured stdout/stderr (the task logs
of ``dag.test()``), every log record (``caplog`` at DEBUG), the files under the test
``AIRFLOW_HOME/logs`` and the sandbox's log file. The receiver runs in-process, so its log
lines are in the same capture.

Before the search the logs must be shown to hold what the runs did (batch numbers, task ids),
so an empty or truncated capture cannot pass.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from tests.fixtures.receiver import CALL

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]  # 5 DAG runs: 10-35 s


def state_of(obj) -> str:
    return str(getattr(obj.state, "value", obj.state))


def task_states(run) -> dict[str, str]:
    return {ti.task_id: state_of(ti) for ti in run.get_task_instances()}


def mx(count: int, start: int) -> list[str]:
    return [f"525512{start + i:06d}" for i in range(count)]


def test_no_credential_or_webhook_token_appears_in_any_log(
    vendor_connections, live_receiver, run_dag, monkeypatch, caplog, capfd
):
    sandbox, receiver = vendor_connections, live_receiver
    secret = {
        "nxcloud access secret": "nxsecret" + secrets.token_hex(12),
        "nxcloud appkey": "nxappkey" + secrets.token_hex(12),
        "accuauth api secret": "aasecret" + secrets.token_hex(12),
        "webhook token": receiver.token,
        "wrong nxcloud secret": "nxwrong" + secrets.token_hex(12),
    }
    sandbox.control.settings(
        nxcloud_access_secret=secret["nxcloud access secret"],
        nxcloud_appkey=secret["nxcloud appkey"],
        accuauth_api_secret=secret["accuauth api secret"],
        pns_push_url=receiver.url(CALL),
        accuauth_pending_polls=1,  # every AccuAuth task pending first: it calls back when done
    )
    nx_conn = json.loads(sandbox.nxcloud_connection_json())
    nx_conn["password"] = secret["nxcloud access secret"]
    nx_conn["extra"].update(appkey=secret["nxcloud appkey"], query_min_interval_s=0)
    aa_conn = json.loads(sandbox.accuauth_connection_json())
    aa_conn["password"] = secret["accuauth api secret"]
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", json.dumps(nx_conn))
    monkeypatch.setenv("AIRFLOW_CONN_ACCUAUTH_DEFAULT", json.dumps(aa_conn))
    monkeypatch.setenv("TELCO_WEBHOOK_BASE_URL", receiver.base_url)
    monkeypatch.setenv("TELCO_WEBHOOK_TOKEN", receiver.token)
    caplog.set_level("DEBUG")

    nx_numbers = mx(30, start=60_000)
    nx = run_dag(
        "nxcloud_number_check",
        conf={"numbers": "\n".join("+" + n for n in nx_numbers), "batch_label": "leak", "budget": None,
              "wait_poll_seconds": 0.3, "wait_timeout_minutes": 1},
    )  # fmt: skip
    assert state_of(nx) == "success", task_states(nx)

    aa_numbers = mx(20, start=61_000)
    aa = run_dag(
        "accuauth_phone_check",
        conf={"numbers": "\n".join("+" + n for n in aa_numbers), "freshness_days": 7,
              "poll_interval_s": 0.1, "max_poll_interval_s": 0.5, "max_requests_per_second": 200.0},
    )  # fmt: skip
    assert state_of(aa) == "success", task_states(aa)

    sandbox.control.pns_call(caller="85235757583", callee="85238533300", did="85235757584")
    sandbox.control.wait_pushes()
    processing = run_dag("telco_push_processing")
    assert state_of(processing) == "success", task_states(processing)

    today = datetime.fromtimestamp(sandbox.control.clock()["now_ms"] / 1000, UTC).date().isoformat()
    daily = run_dag("nxcloud_number_check_daily", conf={"vendor_date": today})
    assert state_of(daily) == "success", task_states(daily)

    nx_conn["password"] = secret["wrong nxcloud secret"]
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", json.dumps(nx_conn))
    refused = run_dag(
        "nxcloud_number_check",
        conf={"numbers": "\n".join("+" + n for n in mx(5, start=62_000)), "batch_label": "leakwrong",
              "budget": None, "wait_poll_seconds": 0.3, "wait_timeout_minutes": 1},
    )  # fmt: skip
    assert task_states(refused)["submit"] == "failed"

    # ---- every log of the above ----
    out, err = capfd.readouterr()
    logs_dir = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    files = [p for p in logs_dir.rglob("*") if p.is_file()] if logs_dir.exists() else []
    sandbox_log = sandbox.log_path.read_text(errors="replace") if sandbox.log_path else ""
    sources = {
        "stdout": out,
        "stderr": err,
        "log records": caplog.text,
        "AIRFLOW_HOME/logs": "\n".join(p.read_text(errors="replace") for p in files),
        "sandbox log": sandbox_log,
    }
    everything = "\n".join(sources.values())

    # not vacuous: the logs hold what the runs did
    with psycopg.connect(receiver.dsn) as conn:
        batches = [b for (b,) in conn.execute("SELECT batch_no FROM ops.number_check_submission WHERE vendor = 'nxcloud'")]  # fmt: skip
        task_ids = [t for (t,) in conn.execute("SELECT task_id FROM telco.accuauth_phone_check WHERE task_id IS NOT NULL")]  # fmt: skip
        callbacks = conn.execute(
            "SELECT count(*) FROM raw.webhook_event WHERE endpoint = 'accuauth_phone_number'"
        ).fetchone()[0]
        calls = conn.execute("SELECT count(*) FROM telco.nxcloud_call_record").fetchone()[0]
    assert len(batches) == 2, batches  # leak-... and leakwrong-... (refused: its error is logged)
    assert all(b in everything for b in batches if b.startswith("leak-")), batches
    assert callbacks > 0 and calls == 1  # the token-bearing URLs were really used
    assert task_ids and any(t in everything for t in task_ids)
    assert "code 1003" in everything  # the refused run's error is in the logs
    assert "SUMMARY" in everything and today in everything
    assert len(everything.splitlines()) > 200, len(everything.splitlines())

    leaks = {
        (name, source): text.count(value)
        for name, value in secret.items()
        for source, text in sources.items()
        if value in text
    }
    assert leaks == {}, f"secrets found in logs: {leaks}"
