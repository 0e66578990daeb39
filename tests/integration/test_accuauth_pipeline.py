"""AccuAuth phone status end to end: the sandbox over real HTTP, a real PostgreSQL warehouse and
the ``accuauth_phone_check`` DAG through ``dag.test()``. The tests that pin "never pay twice",
"nothing lost" and "a rerun changes nothing" run under both sandbox profiles (``vendor_profile``).

The sandbox decides every outcome from the number (``phonecheck.sandbox.outcomes``): the last
digit gives ``phone_status``, the second-to-last how many polls answer ``PENDING`` first (0 =
answered at once). Pending tasks are made to finish by polls only (a huge
``accuauth_seconds_per_poll``), so the exact number of vendor calls is predictable.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from phonecheck.sandbox import outcomes

pytestmark = pytest.mark.integration

DAG_ID = "accuauth_phone_check"
DAILY_DAG_ID = "accuauth_phone_check_daily"
FAST_WAIT = {"poll_interval_s": 0.1, "max_poll_interval_s": 0.5, "max_requests_per_second": 500.0}


def mx_numbers(count: int, start: int = 0, prefix: str = "525512") -> list[str]:
    """Valid Mexican mobile numbers (digits, country code 52) with every last-two-digit pattern."""
    return [f"{prefix}{start + i:06d}" for i in range(count)]


def conf(numbers: list[str], **extra) -> dict:
    return {"numbers": "\n".join("+" + n for n in numbers), "freshness_days": 7, **FAST_WAIT, **extra}


def state_of(run) -> str:
    return str(getattr(run.state, "value", run.state))


def task_states(run) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}


@pytest.fixture
def accuauth_env(vendor_connections, fresh_warehouse_dsn, monkeypatch):
    """The sandbox as ``accuauth_default`` (its rate and polling as connection extras, as a
    deployment sets them), a fresh warehouse, no callback URL, polls only."""
    monkeypatch.delenv("TELCO_WEBHOOK_BASE_URL", raising=False)
    connection = json.loads(os.environ["AIRFLOW_CONN_ACCUAUTH_DEFAULT"])
    connection.setdefault("extra", {}).update(FAST_WAIT)
    monkeypatch.setenv("AIRFLOW_CONN_ACCUAUTH_DEFAULT", json.dumps(connection))
    vendor_connections.control.settings(accuauth_seconds_per_poll=3600.0)
    return vendor_connections, fresh_warehouse_dsn


def rows(dsn: str, query: str, *args) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, args).fetchall()


def vendor_calls(sandbox, event: str) -> list[dict]:
    return sandbox.control.calls(event=event)


def charges_of(sandbox) -> list[dict]:
    return sandbox.control.charges(vendor="accuauth")


@pytest.mark.slow
def test_500_numbers_land_with_the_predicted_statuses_and_a_rerun_changes_nothing(
    accuauth_env, vendor_profile, run_dag
):
    sandbox, dsn = accuauth_env
    numbers = mx_numbers(500)
    at_once = [n for n in numbers if outcomes.accuauth_pending_polls(n) == 0]
    pending = [n for n in numbers if outcomes.accuauth_pending_polls(n) > 0]
    assert len(at_once) == 250 and len(pending) == 250  # the sandbox table gives both kinds

    run = run_dag(DAG_ID, conf=conf(numbers))
    assert state_of(run) == "success", task_states(run)

    found = {
        phone: (status, phone_status, source, poll_count)
        for phone, status, phone_status, source, poll_count in rows(
            dsn,
            "SELECT phone_number, status, phone_status, source, poll_count FROM telco.accuauth_phone_check",
        )
    }
    assert set(found) == set(numbers)
    for n in numbers:
        polls = outcomes.accuauth_pending_polls(n)
        expected = (
            "OK",
            outcomes.accuauth_phone_status(n),
            "poll" if polls else "submit",
            polls + 1 if polls else 0,
        )
        assert found[n] == expected, n

    # every number paid exactly once; every pending task polled exactly until its answer
    submits = vendor_calls(sandbox, "accuauth.submit")
    assert sorted(
        dict(p.split("=") for p in c["body"].split("&"))["phone_number"] for c in submits
    ) == sorted(numbers)
    polls = vendor_calls(sandbox, "accuauth.task_result")
    answered = [c for c in polls if c["status"] < 500]  # strict answers some polls with HTTP 500: retried
    assert len(answered) == sum(outcomes.accuauth_pending_polls(n) + 1 for n in pending)
    assert sum(1 for _ in charges_of(sandbox)) == 500  # the vendor's bill: one check per number
    assert all(c["headers"].get("x-df-api-secret") != sandbox.credentials.accuauth_api_secret for c in polls)

    submissions = rows(
        dsn,
        "SELECT status, count(*) FROM ops.number_check_submission WHERE vendor = 'accuauth' GROUP BY status",
    )
    assert submissions == [("complete", 500)]
    assert rows(dsn, "SELECT state, count(*) FROM ops.accuauth_submit_claim GROUP BY state") == [
        ("submitted", 500)
    ]

    before = rows(
        dsn,
        "SELECT task_id, status, phone_status, poll_count, updated_at FROM telco.accuauth_phone_check ORDER BY 1",
    )
    rerun = run_dag(DAG_ID, conf=conf(numbers))
    assert state_of(rerun) == "success", task_states(rerun)
    after = rows(
        dsn,
        "SELECT task_id, status, phone_status, poll_count, updated_at FROM telco.accuauth_phone_check ORDER BY 1",
    )
    assert after == before
    assert len(vendor_calls(sandbox, "accuauth.submit")) == 500  # fresh numbers are not bought again
    assert len(charges_of(sandbox)) == 500
    assert len(vendor_calls(sandbox, "accuauth.task_result")) == len(polls)
    assert rows(dsn, "SELECT count(*) FROM ops.number_check_submission")[0][0] == 500


def test_a_rate_limit_burst_is_retried(accuauth_env, vendor_profile, run_dag):
    sandbox, dsn = accuauth_env
    pool = mx_numbers(100, start=1000)
    numbers = [n for n in pool if outcomes.accuauth_pending_polls(n) > 0][:10]
    numbers += [n for n in pool if outcomes.accuauth_pending_polls(n) == 0][:10]
    sandbox.control.faults(
        {"target": "accuauth.submit", "kind": "rate_limit", "after": 2, "count": 4},
        {"target": "accuauth.task_result", "kind": "rate_limit", "after": 3, "count": 4},
    )
    run = run_dag(DAG_ID, conf=conf(numbers))
    assert state_of(run) == "success", task_states(run)

    limited = [c for c in sandbox.control.calls() if c["answer"].get("status") == "RATE_LIMIT_EXCEEDED"]
    assert len(limited) == 8 and all(c["status"] == 403 for c in limited)
    found = dict(
        rows(dsn, "SELECT phone_number, phone_status FROM telco.accuauth_phone_check WHERE status = 'OK'")
    )
    assert found == {n: outcomes.accuauth_phone_status(n) for n in numbers}
    # the retried submits did not pay twice
    accepted = [
        c for c in vendor_calls(sandbox, "accuauth.submit") if c["answer"].get("status") in ("OK", "PENDING")
    ]
    assert len(accepted) == len(numbers)
    assert sorted(c["phone"] for c in charges_of(sandbox)) == sorted(numbers)


def test_unauthorized_fails_with_a_clear_message_and_no_secret_in_the_log(
    accuauth_env, run_dag, monkeypatch, caplog, capfd
):
    sandbox, dsn = accuauth_env
    secret = "wrong-secret-7f3a9c1e5b"
    monkeypatch.setenv(
        "AIRFLOW_CONN_ACCUAUTH_DEFAULT",
        json.dumps(
            {
                "conn_type": "accuauth",
                "host": sandbox.accuauth_host,
                "login": "sandbox-api-id",
                "password": secret,
            }
        ),
    )
    with caplog.at_level("INFO"):
        run = run_dag(DAG_ID, conf=conf(mx_numbers(5, start=3000)))
    out, err = capfd.readouterr()
    log_text = caplog.text + out + err

    assert state_of(run) == "failed"
    assert task_states(run)["submit"] == "failed"
    assert "UNAUTHORIZED" in log_text  # the message reaches the log (so the search below means something)
    assert secret not in log_text
    assert rows(dsn, "SELECT count(*) FROM telco.accuauth_phone_check")[0][0] == 0
    claims = rows(dsn, "SELECT state, vendor_status, error FROM ops.accuauth_submit_claim")
    assert claims and all(c[0] == "failed" and c[1] == "UNAUTHORIZED" for c in claims)
    assert all(secret not in (c[2] or "") for c in claims)


def test_a_task_past_24_hours_ends_expired_and_is_not_polled(accuauth_env, vendor_profile, run_dag):
    """A task submitted 25 h ago (and the vendor's clock past its validity) is never polled: the
    daily re-poll DAG marks it EXPIRED; a fresh open task of the same run finishes. The on-demand
    DAG without numbers still re-polls (the old contract, kept for one release)."""
    sandbox, dsn = accuauth_env
    old, fresh = "525519000091", "525519000072"  # both pending at least 2 polls
    assert outcomes.accuauth_pending_polls(old) > 1 and outcomes.accuauth_pending_polls(fresh) > 1
    _submit_directly(dsn, sandbox, [old, fresh])
    with psycopg.connect(dsn) as conn:
        back = datetime.now(UTC) - timedelta(hours=25)
        conn.execute(
            "UPDATE ops.number_check_submission SET submitted_at = %s WHERE phones[1] = %s", (back, old)
        )
        conn.execute(
            """UPDATE telco.accuauth_phone_check SET submitted_at = %s, expires_at = %s + interval '24 hours'
               WHERE phone_number = %s""",
            (back, back, old),
        )

    run = run_dag(DAILY_DAG_ID)  # its tuning from the connection's extras: no conf
    assert state_of(run) == "success", task_states(run)
    assert "submit" not in task_states(run)

    found = {
        p: (s, ps)
        for p, s, ps in rows(dsn, "SELECT phone_number, status, phone_status FROM telco.accuauth_phone_check")
    }
    assert found == {old: ("EXPIRED", None), fresh: ("OK", outcomes.accuauth_phone_status(fresh))}
    statuses = dict(rows(dsn, "SELECT phones[1], status FROM ops.number_check_submission"))
    assert statuses == {old: "expired", fresh: "complete"}
    polled = {c["body"] for c in vendor_calls(sandbox, "accuauth.task_result")}
    old_task = rows(dsn, "SELECT task_id FROM ops.number_check_submission WHERE phones[1] = %s", old)[0][0]
    assert f"task_id={old_task}" not in polled and polled

    # the vendor agrees: past its 24 h the task id is refused; a later run changes nothing
    sandbox.control.clock(advance_s=25 * 3600)
    before = rows(dsn, "SELECT task_id, status, updated_at FROM telco.accuauth_phone_check ORDER BY 1")
    assert state_of(run_dag(DAG_ID, conf={"numbers": "", **FAST_WAIT})) == "success"
    assert (
        rows(dsn, "SELECT task_id, status, updated_at FROM telco.accuauth_phone_check ORDER BY 1") == before
    )


def _submit_directly(dsn: str, sandbox, phones: list[str], run_key: str = "test/seed") -> None:
    from phonecheck.accuauth.api import AccuAuthClient
    from phonecheck.accuauth.submit import submit_numbers
    from phonecheck.numbers import normalise

    c = sandbox.credentials
    with (
        psycopg.connect(dsn) as conn,
        AccuAuthClient(sandbox.accuauth_host, c.accuauth_api_id, c.accuauth_api_secret) as client,
    ):
        submit_numbers(conn, client, [normalise("+" + p) for p in phones], run_key=run_key, run_id=run_key)


def test_the_old_and_new_forms_of_one_mexican_number_are_one_number_checked_once(accuauth_env, run_dag):
    """Customer files still hold Mexico's pre-2019 forms: ``+52 1`` (mobile from abroad) and
    ``044`` (mobile, national) name the same line as ``+52 55 1234 5678`` today."""
    sandbox, dsn = accuauth_env
    pasted = ["+52 1 55 1234 5678", "+52 55 1234 5678", "044 55 1234 5678", "12", "12"]
    conf = {"numbers": "\n".join(pasted), "freshness_days": 7, "unit_price": 0.0125, **FAST_WAIT}
    run = run_dag(DAG_ID, conf=conf)
    assert state_of(run) == "success", task_states(run)

    submitted = [
        dict(p.split("=") for p in c["body"].split("&")) for c in vendor_calls(sandbox, "accuauth.submit")
    ]
    assert [s["phone_number"] for s in submitted] == ["525512345678"]
    assert [c["phone"] for c in charges_of(sandbox)] == ["525512345678"]
    run_key = f"{DAG_ID}/{run.run_id}"
    assert rows(dsn, "SELECT e164, raw_input, rewritten FROM ops.run_number WHERE run_key = %s", run_key) == [
        (
            "+525512345678",
            "+52 1 55 1234 5678",
            "Mexican mobile marker 1 after +52 dropped (not dialled since 2019)",
        )
    ]
    assert rows(
        dsn, "SELECT received, duplicates, rewritten FROM ops.run_intake WHERE run_key = %s", run_key
    ) == [(5, 2, 1)]
    # the run's rejected count is what ops.rejected_number says for it: one row, two lines
    assert rows(dsn, "SELECT rejected FROM ops.run_intake WHERE run_key = %s", run_key) == [(2,)]
    assert rows(dsn, "SELECT raw_input, lines FROM ops.rejected_number WHERE run_id = %s", run.run_id) == [
        ("12", 2)
    ]

    # AccuAuth's spend is in the marts and on the Phone checks page like NXCLOUD's: the contract
    # price per check, exact in the mart, rounded once (to the cent) for display
    from phonecheck.spend.page import load_page_data, render_page

    assert rows(dsn, "SELECT vendor, currency, spend FROM mart.daily_spend WHERE spend IS NOT NULL") == [
        ("accuauth", "USD", Decimal("0.0125"))
    ]
    with psycopg.connect(dsn) as conn:
        page = render_page(load_page_data(conn))
    assert re.search(r"<title>\d{4}-\d\d-\d\d accuauth: 0\.01 USD</title>", page), page
    assert 'aria-label="daily spend in USD"' in page
