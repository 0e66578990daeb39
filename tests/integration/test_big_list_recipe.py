"""docs/getting-started.md's "A big list from the CLI", as written.

In a fresh shell (``env -i``: HOME, a system PATH and the user's settings) set up by the documented
``eval "$(make -s env)"``, the recipe's commands are read from the page and run unchanged: a
20,000-line CSV written into the allowed folder, the DAG unpaused, the run triggered by the stock
``airflow dags trigger`` with ``numbers_uri`` and a budget. The session's ``make airflow``
(``tests/fixtures/airflow.py``) runs it. Its estimate is over the form's default budget (the
recipe's ``budget`` lifts it) and under the auto-approve threshold, as the page says, so no one
has to approve. When the run ends, the results file beside the list has one row per input line,
in order.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from phonecheck_dev import local
from tests.fixtures.airflow import Launcher
from tests.integration.test_airflow_cli import doc_commands, fresh_shell

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

DAG_ID = "nxcloud_number_check"
LINES = 20_000
#: what the recipe's one-liner writes, line by line (the header not counted)
EXPECTED = [f"+52 55 {20000000 + i:08d}" for i in range(LINES)]


def _triggered_run(api: local.AirflowApi, uri: str, timeout: float = 120) -> str:
    """The run the recipe's ``airflow dags trigger`` created: the one whose conf names ``uri``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = api.http.get(f"/api/v2/dags/{DAG_ID}/dagRuns", params={"limit": 100, "order_by": "-id"})
        answer.raise_for_status()
        runs = answer.json()["dag_runs"]
        mine = [r for r in runs if (r.get("conf") or {}).get("numbers_uri") == uri]
        if mine:
            assert len(mine) == 1, mine
            return mine[0]["dag_run_id"]
        time.sleep(1)
    raise AssertionError(f"no {DAG_ID} run with numbers_uri {uri}")


def test_the_documented_big_list_recipe_runs_as_written(make_airflow: Launcher):
    launcher = make_airflow
    inputs = Path(launcher.settings["PHONECHECK_LOCAL_DIR"]) / "inputs"
    recipe = doc_commands("big-list-walkthrough")
    fresh_shell(['eval "$(make -s env)"', *recipe], launcher.settings, timeout=600)

    listed = (inputs / "list.csv").read_text().splitlines()
    assert listed == ["phone", *EXPECTED]  # the recipe wrote what this test expects back

    api = local.AirflowApi(launcher.base_url, "admin", launcher.passwords["admin"], timeout=120)
    try:
        api.login()
        run_id = _triggered_run(api, f"file://{inputs / 'list.csv'}")
        state, seen = api.wait_for_run(DAG_ID, run_id, timeout=1200, interval=3)
    finally:
        api.close()
    assert state == "success", seen
    # the estimate (20,000 x the sandbox's MX basic price) is over the form's default budget, which
    # the recipe's budget lifts, and under the auto-approve threshold: the run did not wait
    assert "awaiting_input" not in seen["approve_spend"], seen
    with psycopg.connect(launcher.dsn) as conn:
        decision, estimated = conn.execute(
            "SELECT decision, (estimated->>'USD')::numeric FROM ops.spend_approval WHERE dag_id = %s AND run_id = %s",
            (DAG_ID, run_id),
        ).fetchone()
    assert decision == "auto_approved"
    assert 50 < estimated <= 100, estimated  # the figures the page's Budget and Approval notes give

    results = inputs / "list.results.csv"  # beside the list: the recipe gives no results_uri
    with open(results, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == LINES
    assert [r["input"] for r in rows] == EXPECTED
    assert [r["line"] for r in rows] == [str(n) for n in range(1, LINES + 1)]
    assert all(r["e164"] == "+" + "".join(ch for ch in r["input"] if ch.isdigit()) for r in rows)
    statuses = Counter(r["status"] for r in rows)
    # every line was a valid, distinct number, approved and sent: answered now or, on a warehouse
    # that already checked it, the earlier answer; none left unsent, rejected or doubled
    assert set(statuses) <= {"checked", "checked_earlier"}, statuses
