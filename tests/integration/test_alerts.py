"""Alerts through real Airflow (``dag.test()``) to a local HTTP endpoint standing in for a chat
webhook: a failed run posts ``task_failed``, a failed data-quality check posts ``dq_failed``, and
a daily reconciliation not done by 08:00 UTC posts ``deadline_missed``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

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
    # a row no vendor answer can produce lands in that batch, and one of its results goes missing
    # (push and row): the daily reconciliation queries only incomplete batches, and validates them
    with psycopg.connect(receiver.dsn) as db:
        (batch_no,) = db.execute(
            "SELECT batch_no FROM ops.number_check_submission WHERE run_id = %s", (run.run_id,)
        ).fetchone()
        (lost,) = db.execute(
            "SELECT phone FROM telco.nxcloud_number_check WHERE batch_no = %s ORDER BY phone LIMIT 1",
            (batch_no,),
        ).fetchone()
        db.execute(
            "DELETE FROM telco.nxcloud_number_check WHERE batch_no = %s AND phone = %s", (batch_no, lost)
        )
        db.execute(
            "DELETE FROM raw.webhook_event WHERE endpoint = 'nxcloud_number_check' "
            "AND payload->>'batchNo' = %s AND payload->>'phone' = %s",
            (batch_no, lost),
        )
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


def test_the_daily_deadline_check_posts_when_the_day_is_not_synced_by_8(alerts, nxcloud_wired, run_dag):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # the daily run of yesterday fails (a vendor date past NXCLOUD's 14 days fails at once)
    too_old = (today - timedelta(days=40)).date().isoformat()
    daily = run_dag(
        "nxcloud_number_check_daily", conf={"vendor_date": too_old}, logical_date=today - timedelta(days=1)
    )
    assert state_of(daily) == "failed", task_states(daily)
    check = run_dag("nxcloud_number_check_daily_deadline", logical_date=today + timedelta(hours=8))
    assert state_of(check) == "failed", task_states(check)
    missed = [m for m in messages(alerts) if m["event"] == "deadline_missed"]
    assert len(missed) == 1 and missed[0]["dag_id"] == "nxcloud_number_check_daily_deadline", messages(alerts)
    assert (
        f"reconciliation of {(today - timedelta(days=1)).date()} has not finished by 08:00 UTC"
        in missed[0]["text"]
    )
    # a day without a daily run (the DAG was paused): nothing was due, nothing posted
    quiet = run_dag("nxcloud_number_check_daily_deadline", logical_date=today - timedelta(days=20, hours=-8))
    assert state_of(quiet) == "success", task_states(quiet)
    assert len([m for m in messages(alerts) if m["event"] == "deadline_missed"]) == 1


def test_alerts_without_a_connection_do_nothing_and_never_fail(alerts, monkeypatch, caplog, capfd):
    from phonecheck_airflow.notifiers import WebhookNotifier

    # The stub is wired as the default webhook; a notifier pointed at a connection nobody made
    # must neither fail the task nor fall back to some other URL: no request at all, anywhere.
    with caplog.at_level("INFO"):
        WebhookNotifier(text="x", event="task_failed", webhook_conn_id="phonecheck_no_such_webhook").notify(
            {}
        )
    assert alerts.received(answered=None) == []
    logged = caplog.text + "".join(capfd.readouterr())  # Airflow's logging may write to stdout
    assert "alert task_failed not sent: no connection 'phonecheck_no_such_webhook'" in logged

    # an unreachable webhook: a warning in the task log, no error, and nothing goes elsewhere
    monkeypatch.setenv(
        "AIRFLOW_CONN_PHONECHECK_ALERTS_WEBHOOK",
        json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9/"}),
    )
    with caplog.at_level("WARNING"):
        WebhookNotifier(text="x", event="task_failed").notify({})
    assert alerts.received(answered=None) == []
    logged = caplog.text + "".join(capfd.readouterr())
    assert "alert task_failed could not be delivered to 'phonecheck_alerts_webhook'" in logged

    # a webhook answering 500: logged, not raised, and posted once
    alerts.fail_next(1, status=500)
    monkeypatch.setenv(
        "AIRFLOW_CONN_PHONECHECK_ALERTS_WEBHOOK",
        json.dumps({"conn_type": "http", "host": alerts.url_for("/alerts")}),
    )
    WebhookNotifier(text="x", event="task_failed").notify({})
    assert [r.answered for r in alerts.received(answered=None)] == [500]

    # the control: the same notifier on the stub's connection does post; the documented
    # schema/host/port + extra `endpoint` shape works and `endpoint` is no header
    url = urlsplit(alerts.url_for("/"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_PHONECHECK_ALERTS_WEBHOOK",
        json.dumps({"conn_type": "http", "schema": "http", "host": url.hostname, "port": url.port,
                    "extra": {"endpoint": "/alerts", "headers": {"X-Team": "telco"}}}),
    )  # fmt: skip
    WebhookNotifier(text="x", event="task_failed").notify({})
    assert [m["event"] for m in messages(alerts)] == ["task_failed"]
    posted = alerts.received()[-1]
    assert posted.headers.get("X-Team") == "telco" and posted.headers.get("endpoint") is None
