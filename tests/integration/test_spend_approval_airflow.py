"""Approval before spending and the shared monthly budget, through real Airflow (``make airflow``).

One launcher (api-server, scheduler, dag-processor, triggerer; SimpleAuthManager with the users
``admin``, ``approver`` and ``requester``; ``PHONECHECK_SPEND_APPROVERS=approver``), then:

1. a run over the auto-approve threshold parks ``approve_spend`` in AWAITING_INPUT and sends
   nothing to the vendor; the approval form's body has the cost breakdown; ``requester`` (may edit
   the DAG, not an approver) is refused with 403 by the REST call the UI makes; ``approver``
   approves → the run submits, loads, settles; ``ops.spend_approval`` names the approver;
2. a second run is rejected → nothing submitted, the rest of the run skipped, the run not failed;
3. two runs triggered together whose estimates each fit the month's remaining budget but not
   both: exactly one submits, the other fails at ``reserve_budget`` before any paid call.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from decimal import Decimal
from urllib.parse import quote

import httpx
import psycopg
import pytest

from phonecheck.nxcloud.cost import quote_prices
from phonecheck.spend.ledger import month_position, set_budget
from phonecheck_dev import local
from tests.integration.browser import chromium_binary, headless_chromium
from tests.integration.test_local_airflow import LOGIN_RE, URL_RE, make_airflow  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

DAG_ID = "nxcloud_number_check"
APPROVER_RE = re.compile(r"approver:\s+approver / (\S+)")
DOCS_IMG = local.REPO_ROOT / "docs" / "img"


def form(numbers: list[str], label: str, **extra) -> dict:
    return {
        "numbers": "\n".join(numbers), "default_region": "MX", "check_level": "basic", "batch_label": label,
        "freshness_days": 30, "budget": 50, "budget_currency": "USD", "dry_run": False,
        "wait_timeout_minutes": 0.2, "wait_poll_seconds": 1, "max_per_chunk": 5000, **extra,
    }  # fmt: skip


def numbers(start: int, count: int = 10) -> list[str]:
    return [f"+52 55 13{start + i:06d}" for i in range(count)]


def hitl_path(run_id: str, task_id: str = "approve_spend") -> str:
    return f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/-1/hitlDetails"


def client(base_url: str, username: str, password: str) -> httpx.Client:
    http = httpx.Client(base_url=base_url, timeout=120)
    token = http.post("/auth/token", json={"username": username, "password": password})
    token.raise_for_status()
    http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return http


def finish_answering(api: local.AirflowApi, approver: httpx.Client, run_id: str, option: str) -> str:
    """Wait for the run to end. Airflow 3.3 can fail a task resumed from AWAITING_INPUT with a stale
    executor event (the deferral race, docs/airflow.md); its retry then asks again unless our
    operator recorded the answer first. A person sees the form again and answers again: so does this."""
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        state = api.dag_run(DAG_ID, run_id)["state"]
        if state in ("success", "failed"):
            return state
        tis = {t["task_id"]: t for t in api.task_instances(DAG_ID, run_id)}
        ti = tis["approve_spend"]
        if ti["state"] == "awaiting_input" and (ti["try_number"] or 1) > 1:
            answer = approver.patch(hitl_path(run_id), json={"chosen_options": [option]})
            print(
                f"[race] approve_spend asked again in try {ti['try_number']}: answered {answer.status_code}"
            )
        time.sleep(8)  # a person reads the form first
    raise AssertionError(f"{run_id} not finished: {states_of(api, run_id)}")


def wait_for_task_state(api: local.AirflowApi, run_id: str, task_id: str, state: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        states = {t["task_id"]: t["state"] for t in api.task_instances(DAG_ID, run_id)}
        seen = states.get(task_id)
        if seen == state:
            return
        if api.dag_run(DAG_ID, run_id)["state"] in ("success", "failed"):
            break
        time.sleep(1)
    raise AssertionError(f"{task_id} of {run_id} is {seen!r}, not {state!r}: {states}")


def check_calls(sandbox_url: str) -> int:
    answer = httpx.get(f"{sandbox_url}/_sandbox/calls", params={"event": "nxcloud.check"}, timeout=10)
    answer.raise_for_status()
    body = answer.json()
    return len(body["calls"] if isinstance(body, dict) else body)


def states_of(api: local.AirflowApi, run_id: str) -> dict[str, str]:
    return {t["task_id"]: t["state"] for t in api.task_instances(DAG_ID, run_id)}


def check_the_page_in_a_browser(api: local.AirflowApi, base_url: str, password: str, dsn: str) -> None:
    binary = chromium_binary()
    assert binary, "no Chromium binary: apt-get install chromium"
    with psycopg.connect(dsn) as db:  # something waiting and a failed expectation, for the page to show
        db.execute(
            "INSERT INTO ops.number_check_submission (vendor, task_id, phones, phone_count, status, dag_id, run_id) "
            "VALUES ('accuauth', 'page-test-task', ARRAY['525512000001'], 1, 'pending', 'accuauth_phone_check', "
            "'manual__page-test')"
        )
        db.execute(
            "INSERT INTO dq.validation_result (validation_run_id, dag_id, task_id, airflow_run_id, table_name, "
            "suite_name, expectation_type, column_name, success, unexpected_count) VALUES ('page-test', "
            "'nxcloud_number_check_daily', 'validate', 'scheduled__page-test', 'telco.nxcloud_number_check', "
            "'telco_nxcloud_number_check', 'expect_column_values_to_be_in_set', 'code', false, 3)"
        )
        db.commit()
        committed = month_position(db, "nxcloud", "USD").committed
        pending = db.execute(
            "SELECT sum(phone_count) FROM ops.number_check_submission WHERE status IN ('pending', 'submitted')"
        ).fetchone()[0]
    assert httpx.get(f"{base_url}/phone-checks/", timeout=30).status_code == 401  # the UI's login is needed
    run_id = api.trigger(DAG_ID, form(numbers(900), "shot", approval_threshold=0))
    wait_for_task_state(api, run_id, "approve_spend", "awaiting_input", timeout=300)
    with headless_chromium(binary) as browser:
        browser.login(base_url, "approver", password)
        browser.goto(
            f"{base_url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/approve_spend/required_actions"
        )
        browser.wait_for("document.body.innerText.includes('Estimated cost')", timeout=60)
        browser.screenshot(DOCS_IMG / "spend_approval_form.png")
        browser.goto(f"{base_url}/plugin/phone-checks")
        text = browser.wait_for(
            "(() => { const f = document.querySelector('iframe'); const t = f && f.contentDocument && "
            "f.contentDocument.body && f.contentDocument.body.innerText; "
            "return t && t.includes('Receiver health') ? t : ''; })()",
            timeout=60,
        )
        assert f"{committed:,.2f} USD" in text, text
        assert f"Checks waiting: {pending} number(s)" in text, text
        assert "expect_column_values_to_be_in_set" in text and "manual__page-test" in text, text
        browser.screenshot(DOCS_IMG / "phone_checks_page.png", height=1400)


def test_approval_in_the_ui_and_the_shared_monthly_budget(make_airflow, fresh_warehouse_dsn):  # noqa: F811
    launcher, sandbox_port, phases = make_airflow
    admin_password = launcher.wait_for(LOGIN_RE, timeout=420).group(1)
    approver_password = launcher.wait_for(APPROVER_RE, timeout=10).group(1)
    base_url = URL_RE.search(launcher.output()).group(1)
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    passwords = json.loads((launcher.local_dir / "airflow" / local.PASSWORD_FILE_NAME).read_text())
    phases.mark("make airflow ready")

    api = local.AirflowApi(base_url, "admin", admin_password, timeout=120)
    approver = client(base_url, "approver", approver_password)
    requester = client(base_url, "requester", passwords["requester"])
    try:
        api.login()
        api.wait_for_dag(DAG_ID, timeout=120)
        api.unpause(DAG_ID)

        # 1. over the threshold: waits, nothing sent; a non-approver is refused; the approver approves
        run_id = api.trigger(DAG_ID, form(numbers(0), "apr", approval_threshold=0))
        wait_for_task_state(api, run_id, "approve_spend", "awaiting_input", timeout=300)
        phases.mark("run 1 awaiting input")
        detail = approver.get(hitl_path(run_id))
        detail.raise_for_status()
        body = detail.json()["body"]
        assert "| MX | basic | 10 | 0.1912 USD | default |" in body, body
        assert "Estimated cost: 1.9120 USD" in body and "This month" in body, body
        assert [u["id"] for u in detail.json()["assigned_users"]] == ["approver"]
        time.sleep(2)
        assert check_calls(sandbox_url) == 0  # nothing was sent while waiting
        refused = requester.patch(hitl_path(run_id), json={"chosen_options": ["Approve"]})
        assert refused.status_code == 403, refused.text
        assert "not a respondent" in refused.text
        approved = approver.patch(hitl_path(run_id), json={"chosen_options": ["Approve"]})
        assert approved.status_code == 200, approved.text
        state = finish_answering(api, approver, run_id, "Approve")
        assert state == "success", states_of(api, run_id)
        assert check_calls(sandbox_url) == 1
        phases.mark("run 1 approved and finished")
        with psycopg.connect(fresh_warehouse_dsn) as db:
            decision = db.execute(
                "SELECT decision, decided_by, decided_by_name FROM ops.spend_approval WHERE run_id = %s",
                (run_id,),
            ).fetchone()
            ledger = db.execute(
                "SELECT status, estimated, charged FROM ops.spend_ledger WHERE run_id = %s", (run_id,)
            ).fetchone()
        assert decision == ("approved", "approver", "approver")
        assert ledger[0] == "settled" and ledger[1] == Decimal("1.9120") and ledger[2] is not None

        # 2. rejected: nothing submitted, the rest skipped, the run not failed
        run_id = api.trigger(DAG_ID, form(numbers(100), "rej", approval_threshold=0))
        wait_for_task_state(api, run_id, "approve_spend", "awaiting_input", timeout=300)
        time.sleep(8)  # a person reads the form first
        rejected = approver.patch(hitl_path(run_id), json={"chosen_options": ["Reject"]})
        assert rejected.status_code == 200, rejected.text
        state = finish_answering(api, approver, run_id, "Reject")
        states = states_of(api, run_id)
        assert state == "success", states
        assert states["approve_spend"] == "success"
        for task in ("reserve_budget", "submit", "wait_for_results", "load", "settle_spend"):
            assert states[task] == "skipped", states
        assert check_calls(sandbox_url) == 1  # still only run 1's submit
        with psycopg.connect(fresh_warehouse_dsn) as db:
            assert db.execute(
                "SELECT decision, decided_by FROM ops.spend_approval WHERE run_id = %s", (run_id,)
            ).fetchone() == ("rejected", "approver")
            assert (
                db.execute("SELECT count(*) FROM ops.spend_ledger WHERE run_id = %s", (run_id,)).fetchone()[0]
                == 0
            )
        phases.mark("run 2 rejected")

        # 3. two runs at once, each fits the month's remaining budget, both together do not
        # (priced like run 1 was charged now: the estimate prefers the last 30 days' prices)
        with psycopg.connect(fresh_warehouse_dsn, autocommit=True) as db:
            price = quote_prices(db, ["MX"], 1)["MX"].price
            committed = month_position(db, "nxcloud", "USD").committed
            set_budget(db, vendor="nxcloud", currency="USD", amount=committed + price * 15)
        runs = [api.trigger(DAG_ID, form(numbers(200 + 100 * i), f"race{i}")) for i in range(2)]
        finished = {r: api.wait_for_run(DAG_ID, r, timeout=400)[0] for r in runs}
        reserve_states = {r: states_of(api, r)["reserve_budget"] for r in runs}
        assert sorted(reserve_states.values()) == ["failed", "success"], (finished, reserve_states)
        assert check_calls(sandbox_url) == 2  # run 1 + the one race winner
        with psycopg.connect(fresh_warehouse_dsn) as db:
            by_run = dict(
                db.execute(
                    "SELECT run_id, status FROM ops.spend_ledger WHERE run_id = ANY(%s)", (runs,)
                ).fetchall()
            )
            position = month_position(db, "nxcloud", "USD")
        assert sorted(by_run.values()) == ["refused", "settled"], by_run
        assert position.committed <= position.budget
        phases.mark("race of two runs: one spent, one refused")

        # 4. the Phone checks page and the approval form, as a person sees them (headless Chromium)
        check_the_page_in_a_browser(api, base_url, approver_password, fresh_warehouse_dsn)
        phases.mark("Phone checks page and approval form in Chromium")
    except Exception:
        for run in (
            api.http.get(f"/api/v2/dags/{DAG_ID}/dagRuns", params={"limit": 20}).json().get("dag_runs", [])
        ):
            for try_number in (1, 2):
                with contextlib.suppress(Exception):
                    lines = api.task_log(DAG_ID, run["dag_run_id"], "approve_spend", try_number)
                    print(f"--- approve_spend {run['dag_run_id']} try {try_number}")
                    print("\n".join(str(line.get("event")) for line in lines[-40:]))
        raise
    finally:
        api.close()
        approver.close()
        requester.close()
