"""``make demo`` end to end, twice, in its own local directory (own embedded PostgreSQL)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from phonecheck import warehouse

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TYPED = ["telco.nxcloud_number_check", "telco.accuauth_phone_check", "telco.nxcloud_voice_receipt",
         "telco.nxcloud_call_record"]  # fmt: skip
MARTS = [
    "mart.latest_phone_status",
    "mart.daily_spend",
    "mart.daily_outcome_rates",
    "mart.voice_call_outcomes",
]


RUN_LINE = re.compile(
    r"\]\s+(?P<run>(?:nxcloud_number_check \w+|accuauth_phone_check)): received (?P<received>\d+), "
    r"rejected (?P<rejected>\d+), duplicates (?P<duplicates>\d+), skipped fresh (?P<fresh>\d+), submitted (?P<submitted>\d+), "
    r"cost (?P<cost>.+)$",
    re.M,
)
#: Airflow warnings whose causes are ours and fixed: none may reach the demo's output.
NOISE = ("already registered", "empty cryptography key", "too short (<5 chars)")


def _run_demo(env: dict[str, str]) -> tuple[dict[str, int], dict[str, dict[str, str]], str]:
    """The ``make demo`` command as the README gives it; row counts and the per-run lines."""
    proc = subprocess.run(
        ["make", "-s", "demo"],
        cwd=warehouse.PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = {
        m.group(2): int(m.group(3))
        for m in re.finditer(r"^\s+(table|view)\s+(\S+)\s+(\d+) rows", proc.stdout, re.M)
    }
    runs = {m.group("run"): m.groupdict() for m in RUN_LINE.finditer(proc.stdout)}
    assert set(runs) == {"nxcloud_number_check basic", "nxcloud_number_check hlr", "nxcloud_number_check call",
                         "accuauth_phone_check"}, proc.stdout[-3000:]  # fmt: skip
    assert "rejected offline" in proc.stdout and "Data Docs" in proc.stdout
    for noise in NOISE:
        assert noise not in output, f"Airflow noise {noise!r} in the demo's output:\n{output[-3000:]}"
    return counts, runs, proc.stdout


def test_demo_lands_rows_everywhere_and_a_second_run_adds_no_duplicates(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "WAREHOUSE_DSN", "TELCO_"))}
    env["PHONECHECK_LOCAL_DIR"] = str(tmp_path / "local")
    with contextlib.ExitStack() as stack:
        if os.environ.get("WAREHOUSE_DSN"):  # the user's server: a throw-away database on it
            env["WAREHOUSE_DSN"] = stack.enter_context(
                warehouse.throwaway_database(os.environ["WAREHOUSE_DSN"])
            )
        # else: the demo starts its own embedded PostgreSQL under tmp_path, as on a fresh machine
        first, first_runs, first_out = _run_demo(env)
        for name in TYPED + MARTS:
            assert first.get(name, 0) > 0, f"{name} is empty after make demo"
        second, second_runs, _ = _run_demo(env)
    for name in TYPED + ["raw.webhook_event", "ops.number_check_submission"]:
        assert second[name] == first[name], (
            f"{name}: {first[name]} rows after the first run, {second[name]} after the second"
        )
    # per run, the truth: the first run bought, the second bought nothing and rejected the same
    for run, line in first_runs.items():
        assert int(line["submitted"]) > 0 and line["cost"] != "0", (run, line)
        again = second_runs[run]
        assert (again["submitted"], again["cost"]) == ("0", "0"), (run, again)
        assert again["rejected"] == line["rejected"] != "0", (run, line, again)
        assert int(again["fresh"]) == int(line["received"]) - int(line["rejected"]) - int(line["duplicates"])
    # the task logs are where the docs say, and hold the tasks' own summary lines
    logs = Path(env["PHONECHECK_LOCAL_DIR"]) / "demo" / "airflow" / "logs"
    texts = "".join(p.read_text() for p in logs.rglob("*.log"))
    assert "SUMMARY nxcloud prepare: received" in texts and "SUMMARY accuauth prepare: received" in texts
    assert str(logs) in first_out


def test_demo_help_explains_and_runs_nothing():
    proc = subprocess.run(
        ["make", "-s", "demo", "ARGS=--help"], cwd=warehouse.PROJECT_ROOT, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and "usage: make demo" in proc.stdout, proc.stdout + proc.stderr
    assert "[demo" not in proc.stdout  # nothing started
