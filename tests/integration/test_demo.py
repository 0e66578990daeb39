"""``make demo`` end to end, twice, in its own local directory (own embedded PostgreSQL)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys

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


def _run_demo(env: dict[str, str]) -> dict[str, int]:
    proc = subprocess.run(
        [sys.executable, "-m", "phonecheck_airflow.demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = {
        m.group(2): int(m.group(3))
        for m in re.finditer(r"^\s+(table|view)\s+(\S+)\s+(\d+) rows", proc.stdout, re.M)
    }
    assert "rejected offline" in proc.stdout and "Data Docs" in proc.stdout
    return counts


def test_demo_lands_rows_everywhere_and_a_second_run_adds_no_duplicates(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "WAREHOUSE_DSN", "TELCO_"))}
    env["PHONECHECK_LOCAL_DIR"] = str(tmp_path / "local")
    with contextlib.ExitStack() as stack:
        if os.environ.get("WAREHOUSE_DSN"):  # the user's server: a throw-away database on it
            env["WAREHOUSE_DSN"] = stack.enter_context(
                warehouse.throwaway_database(os.environ["WAREHOUSE_DSN"])
            )
        # else: the demo starts its own embedded PostgreSQL under tmp_path, as on a fresh machine
        first = _run_demo(env)
        for name in TYPED + MARTS:
            assert first.get(name, 0) > 0, f"{name} is empty after make demo"
        second = _run_demo(env)
    for name in TYPED + ["raw.webhook_event", "ops.number_check_submission"]:
        assert second[name] == first[name], (
            f"{name}: {first[name]} rows after the first run, {second[name]} after the second"
        )
