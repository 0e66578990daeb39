"""Approval before spending and the shared monthly budget, through real Airflow (``make airflow``).

The session's launcher (``tests/fixtures/airflow.py``: api-server, scheduler, dag-processor,
triggerer; SimpleAuthManager with the users ``admin``, ``approver`` and ``requester``;
``PHONECHECK_SPEND_APPROVERS=approver``; the warehouse ``make demo`` filled, so every figure is
read from it at the moment, never assumed), then:

1. a run over the auto-approve threshold parks ``approve_spend`` in AWAITING_INPUT and sends
   nothing to the vendor; the approval form's body has the cost breakdown; ``requester`` (may edit
   the DAG, not an approver) is refused with 403 by the REST call the UI makes; the form as the
   approver sees it in headless Chromium (logged in through the login page) is the screenshot in
   docs/img/; ``approver`` approves → the run submits, loads, settles (a retry of ``approve_spend``
   after the answer must not ask again: tests/integration/test_fab_auth.py forces one);
   ``ops.spend_approval`` names the requester and the approver;
2. a second run is rejected → nothing submitted, the rest of the run skipped, the run not failed;
3. two runs triggered together whose estimates each fit the month's remaining budget but not
   both: exactly one submits, the other fails at ``reserve_budget`` before any paid call (the
   month's budget is put back afterwards: the launcher is shared).
"""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import httpx
import psycopg
import pytest

from phonecheck.nxcloud.cost import quote_prices
from phonecheck.spend.ledger import month_of, month_position, set_budget
from phonecheck_dev import local
from tests.fixtures.airflow import Launcher
from tests.integration.browser import chromium_binary, headless_chromium

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

DAG_ID = "nxcloud_number_check"
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


def finish_without_asking_again(api: local.AirflowApi, run_id: str) -> str:
    """Wait for the run to end; an approval asked again after it was answered fails the test (a
    retried ``approve_spend`` must act on the answer already given, never ask a second time)."""
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        state = api.dag_run(DAG_ID, run_id)["state"]
        if state in ("success", "failed"):
            return state
        ti = {t["task_id"]: t for t in api.task_instances(DAG_ID, run_id)}["approve_spend"]
        assert not (ti["state"] == "awaiting_input" and (ti["try_number"] or 1) > 1), (
            f"approve_spend asked again in try {ti['try_number']} after it was answered"
        )
        time.sleep(2)
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


def charged(sandbox_url: str, entered: list[str]) -> int:
    """How many of ``entered`` the vendor charged for (the sandbox's bill). Counted per number: the
    launcher's sandbox is shared with other tests, whose runs may still be submitting."""
    answer = httpx.get(f"{sandbox_url}/_sandbox/charges", params={"vendor": "nxcloud"}, timeout=30)
    answer.raise_for_status()
    phones = {"".join(ch for ch in n if ch.isdigit()) for n in entered}
    return sum(1 for c in answer.json() if c["phone"] in phones)


def states_of(api: local.AirflowApi, run_id: str) -> dict[str, str]:
    return {t["task_id"]: t["state"] for t in api.task_instances(DAG_ID, run_id)}


def screenshot_the_approval_form(base_url: str, password: str, run_id: str) -> None:
    """The approval form as the approver sees it: logged in through the login page, the run's
    Required actions tab; saved as docs/img/spend_approval_form.png (README, docs/operations.md)."""
    binary = chromium_binary()
    assert binary, "no Chromium binary: apt-get install chromium"
    with headless_chromium(binary) as browser:
        browser.login(base_url, "approver", password)
        browser.goto(
            f"{base_url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/approve_spend/required_actions"
        )
        browser.wait_for("document.body.innerText.includes('Estimated cost')", timeout=60)
        browser.screenshot(DOCS_IMG / "spend_approval_form.png")


@contextlib.contextmanager
def budget_put_back(dsn: str, vendor: str, currency: str):
    """The launcher is shared: whatever budget rows the test changes are restored afterwards."""
    with psycopg.connect(dsn) as db:
        saved = db.execute(
            "SELECT vendor, currency, month, amount, note, updated_by FROM ops.spend_budget "
            "WHERE vendor = %s AND currency = %s",
            (vendor, currency),
        ).fetchall()
    try:
        yield
    finally:
        with psycopg.connect(dsn) as db:
            db.execute("DELETE FROM ops.spend_budget WHERE vendor = %s AND currency = %s", (vendor, currency))
            for row in saved:
                db.execute(
                    "INSERT INTO ops.spend_budget (vendor, currency, month, amount, note, updated_by) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    row,
                )


def test_approval_in_the_ui_and_the_shared_monthly_budget(make_airflow: Launcher):
    launcher, dsn = make_airflow, make_airflow.dsn
    base_url, sandbox_url, passwords = launcher.base_url, launcher.sandbox_url, launcher.passwords
    api = local.AirflowApi(base_url, "admin", passwords["admin"], timeout=120)
    approver = client(base_url, "approver", passwords["approver"])
    requester = client(base_url, "requester", passwords["requester"])
    try:
        api.login()
        api.wait_for_dag(DAG_ID, timeout=120)
        api.unpause(DAG_ID)

        # 1. over the threshold: waits, nothing sent; a non-approver is refused; the approver approves
        run_id = api.trigger(DAG_ID, form(first := numbers(0), "apr", approval_threshold=0))
        wait_for_task_state(api, run_id, "approve_spend", "awaiting_input", timeout=300)
        with psycopg.connect(dsn) as db:  # the price the estimate used: recent charges, else the list
            quote = quote_prices(db, ["MX"], 1)["MX"]
        estimate = (quote.price * 10).quantize(Decimal("0.0001"))
        detail = approver.get(hitl_path(run_id))
        detail.raise_for_status()
        body = detail.json()["body"]
        assert f"| MX | basic | 10 | {quote.price} {quote.currency} | {quote.source} |" in body, body
        assert f"Estimated cost: {estimate:,.4f} {quote.currency}" in body and "This month" in body, body
        assert "**Requested by:** admin, who cannot answer this approval (four eyes)" in body, body
        assert [u["id"] for u in detail.json()["assigned_users"]] == ["approver"]
        screenshot_the_approval_form(base_url, passwords["approver"], run_id)
        assert charged(sandbox_url, first) == 0  # nothing was sent while waiting
        refused = requester.patch(hitl_path(run_id), json={"chosen_options": ["Approve"]})
        assert refused.status_code == 403, refused.text
        assert "not a respondent" in refused.text
        approved = approver.patch(hitl_path(run_id), json={"chosen_options": ["Approve"]})
        assert approved.status_code == 200, approved.text
        state = finish_without_asking_again(api, run_id)
        assert state == "success", states_of(api, run_id)
        assert charged(sandbox_url, first) == 10
        with psycopg.connect(dsn) as db:
            decision = db.execute(
                "SELECT decision, decided_by, decided_by_name, requested_by FROM ops.spend_approval "
                "WHERE run_id = %s",
                (run_id,),
            ).fetchone()
            ledger = db.execute(
                "SELECT status, estimated, charged FROM ops.spend_ledger WHERE run_id = %s", (run_id,)
            ).fetchone()
        assert decision == ("approved", "approver", "approver", "admin")
        assert ledger[0] == "settled" and ledger[1] == estimate and ledger[2] is not None

        # 2. rejected: nothing submitted, the rest skipped, the run not failed
        run_id = api.trigger(DAG_ID, form(second := numbers(100), "rej", approval_threshold=0))
        wait_for_task_state(api, run_id, "approve_spend", "awaiting_input", timeout=300)
        rejected = approver.patch(hitl_path(run_id), json={"chosen_options": ["Reject"]})
        assert rejected.status_code == 200, rejected.text
        state = finish_without_asking_again(api, run_id)
        states = states_of(api, run_id)
        assert state == "success", states
        assert states["approve_spend"] == "success"
        for task in ("reserve_budget", "submit", "wait_for_results", "load", "settle_spend"):
            assert states[task] == "skipped", states
        assert charged(sandbox_url, second) == 0
        with psycopg.connect(dsn) as db:
            assert db.execute(
                "SELECT decision, decided_by FROM ops.spend_approval WHERE run_id = %s", (run_id,)
            ).fetchone() == ("rejected", "approver")
            assert (
                db.execute("SELECT count(*) FROM ops.spend_ledger WHERE run_id = %s", (run_id,)).fetchone()[0]
                == 0
            )

        # 3. two runs at once, each fits the month's remaining budget, both together do not
        # (priced like run 1 was charged now: the estimate prefers the last 30 days' prices)
        with budget_put_back(dsn, "nxcloud", "USD"):
            # a run reserves in the UTC month its reserve step runs in: this month's budget and
            # the next's are both set that tight, in case 00:00 UTC on the 1st falls in between
            with psycopg.connect(dsn, autocommit=True) as db:
                price = quote_prices(db, ["MX"], 1)["MX"].price
                this_month = month_of()
                for month in (this_month, (this_month + timedelta(days=32)).replace(day=1)):
                    committed = month_position(db, "nxcloud", "USD", month).committed
                    set_budget(
                        db, vendor="nxcloud", currency="USD", amount=committed + price * 15, month=month
                    )
            racing = [numbers(200 + 100 * i) for i in range(2)]
            runs = [api.trigger(DAG_ID, form(racing[i], f"race{i}")) for i in range(2)]
            finished = {r: api.wait_for_run(DAG_ID, r, timeout=400)[0] for r in runs}
            reserve_states = {r: states_of(api, r)["reserve_budget"] for r in runs}
            with psycopg.connect(dsn) as db:
                by_run = {
                    run: (status, month)
                    for run, status, month in db.execute(
                        "SELECT run_id, status, month FROM ops.spend_ledger WHERE run_id = ANY(%s)", (runs,)
                    )
                }
                positions = [month_position(db, "nxcloud", "USD", m) for m in {m for _, m in by_run.values()}]
            assert all(p.committed <= p.budget for p in positions), positions
            if len({month for _, month in by_run.values()}) == 2:
                # the two reserve steps straddled 00:00 UTC on the 1st: each run had its month alone
                assert sorted(s for s, _ in by_run.values()) == ["settled", "settled"], by_run
            else:
                assert sorted(reserve_states.values()) == ["failed", "success"], (finished, reserve_states)
                # the winner only was charged
                assert sorted(charged(sandbox_url, entered) for entered in racing) == [0, 10]
                assert sorted(s for s, _ in by_run.values()) == ["refused", "settled"], by_run
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
