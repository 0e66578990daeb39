"""No full phone number in any log line of ``make demo`` (task logs, receiver, api-server, the demo's
own output): every number the demo checked or rejected is searched for, as digits."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from tests.fixtures.airflow import DemoRun

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


def test_make_demo_logs_no_full_number(demo_run: DemoRun):
    # the session's make demo (tests/fixtures/airflow.py); its warehouse may have had more runs
    # since (make airflow, a second demo): every number it holds now is searched for
    numbers = numbers_the_demo_handled(demo_run.dsn)
    assert len(numbers) > 100  # the demo checks a few hundred numbers
    local = demo_run.local_dir
    files = log_files(local)
    assert any(p.suffix == ".log" for p in files), "no task logs found"
    found = []
    texts = {"demo stdout": demo_run.stdout, "demo stderr": demo_run.stderr}
    texts |= {str(p.relative_to(local)): p.read_text(encoding="utf-8", errors="replace") for p in files}
    for name, text in texts.items():
        digits_runs = set(re.findall(r"\d{8,}", re.sub(r"(?<=\d)[ .-](?=\d)", "", text)))
        hits = {n for n in numbers if any(n in run for run in digits_runs)}
        if hits:
            found.append(f"{name}: {len(hits)} number(s), e.g. {sorted(hits)[0][:4]}...")
    assert found == []
