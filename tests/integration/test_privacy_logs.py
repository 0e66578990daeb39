"""No full phone number in any log line of ``make demo`` (task logs, receiver, api-server, the demo's
own output): every number the demo checked or rejected is searched for, as digits."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from phonecheck import warehouse

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Log files under the demo folder that are not our logs: the vendor stand-in sees numbers, as the
#: real vendor does. (Airflow's metadata database holds the runs' params, i.e. the numbers typed
#: into a form: not a log; docs/privacy.md says how it is cleaned.)
NOT_OURS = ("sandbox.log",)


def numbers_the_demo_handled(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        values = conn.execute(
            """SELECT unnest(phones) FROM ops.number_check_submission
               UNION SELECT raw_input FROM ops.rejected_number
               UNION SELECT phone FROM telco.nxcloud_voice_receipt
               UNION SELECT unnest(ARRAY[caller, callee]) FROM telco.nxcloud_call_record"""
        ).fetchall()
    digits = {re.sub(r"\D", "", v) for (v,) in values if v}
    return {d for d in digits if len(d) >= 8}


def log_files(local: Path) -> list[Path]:
    demo = local / "demo"
    return sorted(
        p
        for p in demo.rglob("*")
        if p.is_file() and p.name not in NOT_OURS and (p.suffix == ".log" or "logs" in p.parts)
    )


def test_make_demo_logs_no_full_number(tmp_path, warehouse_server_dsn):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "WAREHOUSE_DSN", "TELCO_"))}
    local = tmp_path / "local"
    env["PHONECHECK_LOCAL_DIR"] = str(local)
    with contextlib.ExitStack() as stack:
        # a throw-away database on the tests' server (WAREHOUSE_DSN's, or the embedded one), so
        # the test can read what the demo handled after the run
        dsn = env["WAREHOUSE_DSN"] = stack.enter_context(warehouse.throwaway_database(warehouse_server_dsn))
        proc = subprocess.run(
            [sys.executable, "-m", "phonecheck_dev.demo"],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        numbers = numbers_the_demo_handled(dsn)
    assert len(numbers) > 100  # the demo checks a few hundred numbers
    files = log_files(local)
    assert any(p.suffix == ".log" for p in files), "no task logs found"
    found = []
    texts = {"demo stdout": proc.stdout, "demo stderr": proc.stderr}
    texts |= {str(p.relative_to(local)): p.read_text(encoding="utf-8", errors="replace") for p in files}
    for name, text in texts.items():
        digits_runs = set(re.findall(r"\d{8,}", re.sub(r"(?<=\d)[ .-](?=\d)", "", text)))
        hits = {n for n in numbers if any(n in run for run in digits_runs)}
        if hits:
            found.append(f"{name}: {len(hits)} number(s), e.g. {sorted(hits)[0][:4]}...")
    assert found == []
