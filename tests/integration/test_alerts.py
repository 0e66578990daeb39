"""Alerts through real Airflow (``dag.test()``) to a local HTTP endpoint standing in for a chat
webhook: a failed run posts ``task_failed``, a failed data-quality check posts ``dq_failed``, and
the daily reconciliation's deadline callback posts ``deadline_missed``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import psycopg
import pytest

from tests.integration.test_nxcloud_pipeline import FAST, mx, state_of, task_states

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def alerts(receiver_stub, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_PHONECHECK_ALERTS_WEBHOOK",
        json.dumps(
            {
                "conn_type": "http",
                "host": receiver_stub.url_for("/alerts"),
                "extra": {"headers": {"X-Team": "telco"}},
            }
        ),
    )
    return receiver_stub


def messages(stub) -> list[dict]:
    return [json.loads(r.body) for r in stub.received() if r.path == "/alerts"]


def test_a_failed_run_and_a_failed_quality_check_post_to_the_webhook(alerts, nxcloud_wired, run_dag):
    sandbox, receiver = nxcloud_wired
    failed = run_dag("nxcloud_number_check", conf={"numbers": "", **FAST})
    assert state_of(failed) == "failed"
    (message,) = messages(alerts)
    assert message["event"] == "task_failed" and message["task_id"] == "prepare"
    assert message["dag_id"] == "nxcloud_number_check" and message["run_id"] == failed.run_id
    assert f"run {failed.run_id} failed at task prepare" in message["text"]
    assert "no numbers given" in message["error"]
    assert alerts.received()[0].headers.get("X-Team") == "telco"

    # a clean run: no alert
    run = run_dag(
        "nxcloud_number_check",
        conf={"numbers": "\n".join("+" + n for n in mx(5, start=9100)), "default_region": "MX", **FAST},
    )
    assert state_of(run) == "success", task_states(run)
    assert len(messages(alerts)) == 1
    # a row no vendor answer can produce lands in that batch; the daily reconciliation validates it
    with psycopg.connect(receiver.dsn) as db:
        (batch_no,) = db.execute(
            "SELECT batch_no FROM ops.number_check_submission WHERE run_id = %s", (run.run_id,)
        ).fetchone()
        db.execute(
            "INSERT INTO telco.nxcloud_number_check (batch_no, phone, e164, check_level, code, source, pushed_at) "
            "VALUES (%s, '5255120000', '+5255120000', 1, 4242, 'push', now())",
            (batch_no,),
        )
    daily = run_dag("nxcloud_number_check_daily", conf={"vendor_date": datetime.now(UTC).date().isoformat()})
    assert state_of(daily) == "failed" and task_states(daily)["validate"] == "failed", task_states(daily)
    dq = [m for m in messages(alerts) if m["event"] == "dq_failed"]
    assert len(dq) == 1 and dq[0]["task_id"] == "validate" and dq[0]["run_id"] == daily.run_id, messages(
        alerts
    )
    assert "data-quality check failed in nxcloud_number_check_daily" in dq[0]["text"]
    assert [m["event"] for m in messages(alerts)] == ["task_failed", "dq_failed"]


def test_the_daily_reconciliation_has_a_deadline_that_posts_when_missed(alerts, dagbag):
    from phonecheck_airflow.notifiers import deadline_missed

    dag = dagbag.dags["nxcloud_number_check_daily"]
    deadlines = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    (deadline,) = deadlines
    assert deadline.interval.total_seconds() == 8 * 3600
    assert deadline.callback.path == "phonecheck_airflow.notifiers.alerts.deadline_missed"
    # what the triggerer runs when the deadline passes
    asyncio.run(
        deadline_missed(context={"dag_run": {"run_id": "scheduled__late"}}, **deadline.callback.kwargs)
    )
    (message,) = messages(alerts)
    assert message["event"] == "deadline_missed" and message["run_id"] == "scheduled__late"
    assert "has not finished 8 h after it was queued" in message["text"]


def test_alerts_without_a_connection_do_nothing_and_never_fail(monkeypatch):
    from phonecheck_airflow.notifiers import WebhookNotifier

    monkeypatch.delenv("AIRFLOW_CONN_PHONECHECK_ALERTS_WEBHOOK", raising=False)
    WebhookNotifier(text="x", event="task_failed").notify({})  # no connection: a log line, no error
    monkeypatch.setenv(
        "AIRFLOW_CONN_PHONECHECK_ALERTS_WEBHOOK",
        json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9/"}),
    )
    WebhookNotifier(text="x", event="task_failed").notify({})  # unreachable: a warning, no error
