"""The stock ``airflow`` CLI outside the launcher, with the commands of docs/getting-started.md.

In a fresh shell environment (``env -i``: only HOME, PATH and the user's own settings), the
documented set-up ``eval "$(make -s env)"`` is applied and the documented commands are run as
written: ``airflow dags list`` and a dry ``airflow dags test nxcloud_number_check``. Then
``make airflow``'s launcher supplies the scheduler, and the documented backfill of three named
days runs: exactly those three vendor days are synced, not the day before or after.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from phonecheck_dev import local

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

DOC = local.REPO_ROOT / "docs" / "getting-started.md"
DAILY = "nxcloud_number_check_daily"
LOGIN_RE = re.compile(r"login:\s+admin / (\S+)")
URL_RE = re.compile(r"Airflow UI:\s+(http://\S+?)/?$", re.MULTILINE)


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
        "AIRFLOW_API_PORT": str(local.free_port()),
        "SANDBOX_PORT": str(local.free_port()),
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


def test_the_documented_cli_commands_work_in_a_fresh_shell(user_settings, fresh_warehouse_dsn):
    # 1. set-up, dags list, a dry dags test: no launcher running
    out = fresh_shell(doc_commands("cli-walkthrough"), user_settings, timeout=600)
    for dag_id in ("nxcloud_number_check", DAILY, "accuauth_phone_check"):
        assert dag_id in out, out[-3000:]
    assert "SUMMARY nxcloud prepare: rejected 1" in out
    assert re.search(r"DagRun Finished: dag_id=nxcloud_number_check, .*state=success", out), out[-3000:]
    assert "Could not load provider" not in out and "isn't defined" not in out

    # 2. the backfill, with make airflow's scheduler
    today = datetime.now(UTC).date()
    seeded = [today - timedelta(days=n) for n in (7, 6, 5, 4, 3)]
    first, last = seeded[1], seeded[3]
    batches = seed_submissions(fresh_warehouse_dsn, seeded)
    log_path = Path(user_settings["PHONECHECK_LOCAL_DIR"]) / "launcher.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TELCO_"))}
    env.update(user_settings)
    with open(log_path, "wb") as log:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "phonecheck_dev.local", "standalone"],
            env=env, cwd=local.REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        password = _wait_for(log_path, launcher, LOGIN_RE, 240).group(1)
        base_url = URL_RE.search(log_path.read_text()).group(1)
        assert "airflow dags unpause nxcloud_number_check_daily" in log_path.read_text()

        commands = [
            'eval "$(make -s env)"',
            *[
                c.replace("2026-11-10", first.isoformat()).replace("2026-11-12", last.isoformat())
                for c in doc_commands("backfill-walkthrough")
            ],
        ]
        fresh_shell(commands, user_settings, timeout=600)
        runs = _wait_for_backfill_runs(base_url, password, count=3, timeout=600)
    finally:
        local.stop_process_group(launcher, signal.SIGINT, grace_s=60, leader_only=True)

    assert sorted(r["logical_date"][:10] for r in runs) == [
        (first + timedelta(days=n)).isoformat() for n in range(3)
    ]
    assert {r["state"] for r in runs} == {"success"}, runs
    with psycopg.connect(fresh_warehouse_dsn) as conn:
        synced = conn.execute("SELECT vendor_date, batch_no FROM ops.query_sync_report ORDER BY 1").fetchall()
    assert synced == [(day, batches[day]) for day in seeded[1:4]]  # exactly the three named days


def _wait_for(log_path: Path, proc: subprocess.Popen, pattern: re.Pattern, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = pattern.search(log_path.read_text(errors="replace"))
        if match:
            return match
        assert proc.poll() is None, log_path.read_text(errors="replace")[-5000:]
        time.sleep(1)
    raise AssertionError(f"no {pattern.pattern!r}:\n{log_path.read_text(errors='replace')[-5000:]}")


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
