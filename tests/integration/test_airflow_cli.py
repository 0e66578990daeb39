"""The stock ``airflow`` CLI outside the launcher, with the commands of docs/getting-started.md.

In a fresh shell environment (``env -i``: only HOME, PATH and the user's own settings), the
documented set-up ``eval "$(make -s env)"`` is applied and the documented commands are run as
written: ``airflow dags list`` and a dry ``airflow dags test nxcloud_number_check``. Then, with
the session's ``make airflow`` (``tests/fixtures/airflow.py``) supplying the scheduler and the
shell given the launcher's settings, the documented backfill of three named days runs: exactly
those three vendor days are synced, not the day before or after.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import subprocess
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from phonecheck_dev import local
from tests.fixtures.airflow import Launcher
from tests.fixtures.ports import reserve_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

DOC = local.REPO_ROOT / "docs" / "getting-started.md"
DAILY = "nxcloud_number_check_daily"


def doc_commands(marker: str) -> list[str]:
    """The lines of the ```bash block right after ``<!-- marker -->`` in the getting-started page."""
    text = DOC.read_text()
    start = text.index(f"<!-- {marker} -->")
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block, f"no bash block after {marker}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def fresh_shell(commands: list[str], settings: dict[str, str], timeout: float) -> str:
    """Run ``commands`` in bash with nothing inherited but HOME, a system PATH and ``settings``."""
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/local/bin:/usr/bin:/bin", **settings}
    script = "\n".join(["set -euo pipefail", *commands])
    proc = subprocess.run(
        ["bash", "-c", script], cwd=local.REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{output[-6000:]}"
    return output


@pytest.fixture
def user_settings(fresh_warehouse_dsn):
    """What a user would have configured: their warehouse, a local dir and free ports."""
    local_dir = Path(f"/tmp/pc-cli-{secrets.token_hex(4)}")  # short: socket paths stay < 107 bytes
    local_dir.mkdir()
    settings = {
        "PHONECHECK_LOCAL_DIR": str(local_dir),
        "WAREHOUSE_DSN": fresh_warehouse_dsn,
        "AIRFLOW_API_PORT": str(reserve_port()),
        "SANDBOX_PORT": str(reserve_port()),
    }
    yield settings
    import shutil

    shutil.rmtree(local_dir, ignore_errors=True)


def seed_submissions(dsn: str, days: list[date]) -> dict[date, str]:
    """One submitted batch per day (noon UTC): what the daily sync finds for that day."""
    batches = {}
    with psycopg.connect(dsn) as conn:
        for day in days:
            batch_no = f"cli-{day:%Y%m%d}-MX-0000"
            conn.execute(
                "INSERT INTO ops.number_check_submission (vendor, batch_no, check_level, region_code, phones, "
                "phone_count, submitted_at) VALUES ('nxcloud', %s, 1, 'MX', ARRAY['525512340000'], 1, %s)",
                (batch_no, datetime(day.year, day.month, day.day, 12, tzinfo=UTC)),
            )
            batches[day] = batch_no
    return batches


def dag_ids_in_folder() -> set[str]:
    return {
        m.group(1)
        for path in (local.REPO_ROOT / "dags").glob("*.py")
        for m in re.finditer(r'dag_id="([^"]+)"', path.read_text())
    }


def in_parallel(commands: list[str], logs: Path) -> list[str]:
    """Shell lines running ``commands`` side by side (one log and exit code file each), then waiting."""
    lines = []
    for i, command in enumerate(commands):
        lines.append(f"{{ ( {command} ) > {logs}/{i}.log 2>&1; echo $? > {logs}/{i}.rc; }} &")
    return [*lines, "wait"]


def test_the_documented_cli_commands_work_in_a_fresh_shell(user_settings):
    # set-up, dags list, a dry dags test, then every DAG by `airflow dags test` (side by side in
    # the same shell): no launcher running (own local dir and warehouse), no vendor reachable
    every_dag = doc_commands("dags-test-every-dag")
    logs = Path(user_settings["PHONECHECK_LOCAL_DIR"]) / "dags-test"
    logs.mkdir()
    assert {c.split()[3] for c in every_dag} == dag_ids_in_folder()
    out = fresh_shell(
        [*doc_commands("cli-walkthrough"), *in_parallel(every_dag, logs)], user_settings, timeout=1100
    )
    for dag_id in ("nxcloud_number_check", DAILY, "accuauth_phone_check"):
        assert dag_id in out, out[-3000:]
    assert "SUMMARY nxcloud prepare: rejected 1" in out
    assert re.search(r"DagRun Finished: dag_id=nxcloud_number_check, .*state=success", out), out[-3000:]
    assert "Could not load provider" not in out and "isn't defined" not in out
    for i, command in enumerate(every_dag):
        log = (logs / f"{i}.log").read_text()
        assert (logs / f"{i}.rc").read_text().strip() == "0", f"{command}:\n{log[-4000:]}"
        assert re.search(rf"DagRun Finished: dag_id={command.split()[3]}, .*state=success", log), log[-3000:]


def test_the_documented_backfill_with_make_airflow(make_airflow: Launcher):
    # the session's make airflow supplies the scheduler; the user's shell has its settings
    launcher = make_airflow
    assert "airflow dags unpause nxcloud_number_check_daily" in launcher.output()
    today = datetime.now(UTC).date()
    seeded = [today - timedelta(days=n) for n in (7, 6, 5, 4, 3)]
    first, last = seeded[1], seeded[3]
    batches = seed_submissions(launcher.dsn, seeded)
    commands = [
        'eval "$(make -s env)"',
        *[
            c.replace("2026-11-10", first.isoformat()).replace("2026-11-12", last.isoformat())
            for c in doc_commands("backfill-walkthrough")
        ],
    ]
    fresh_shell(commands, launcher.settings, timeout=600)
    runs = _wait_for_backfill_runs(launcher.base_url, launcher.passwords["admin"], count=3, timeout=600)

    assert sorted(r["logical_date"][:10] for r in runs) == [
        (first + timedelta(days=n)).isoformat() for n in range(3)
    ]
    assert {r["state"] for r in runs} == {"success"}, runs
    with psycopg.connect(launcher.dsn) as conn:  # the seeded days only (the warehouse has the demo's too)
        synced = conn.execute(
            "SELECT vendor_date, batch_no FROM ops.query_sync_report WHERE vendor_date BETWEEN %s AND %s "
            "ORDER BY 1",
            (seeded[0], seeded[-1]),
        ).fetchall()
    assert synced == [(day, batches[day]) for day in seeded[1:4]]  # exactly the three named days


def _wait_for_backfill_runs(base_url: str, password: str, count: int, timeout: float) -> list[dict]:
    api = local.AirflowApi(base_url, "admin", password)
    try:
        api.login()
        deadline = time.monotonic() + timeout
        runs: list[dict] = []
        while time.monotonic() < deadline:
            answer = api.http.get(
                f"/api/v2/dags/{DAILY}/dagRuns", params={"run_type": "backfill", "limit": 100}
            )
            answer.raise_for_status()
            runs = answer.json()["dag_runs"]
            if len(runs) >= count and all(r["state"] in ("success", "failed") for r in runs):
                return runs
            time.sleep(3)
        raise AssertionError(f"backfill runs not finished: {json.dumps(runs)[:3000]}")
    finally:
        with contextlib.suppress(Exception):
            api.close()
