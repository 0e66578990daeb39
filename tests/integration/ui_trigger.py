"""A UI-style run of ``nxcloud_number_check`` through the REST API, shared by the tests that
start real Airflow processes (``make airflow``'s launcher, the Celery cluster).

The run is what a user does in the UI: unpause the DAG, fill the params form (the form sends
every param, numbers as one multi-line string), trigger, watch it finish. The sandbox is told to
push its results a few seconds after each submit, so the first poke of ``wait_for_results``
finds nothing and the wait is handed to the triggerer (a deferral) before the pushes arrive.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from phonecheck_dev.local import AirflowApi

TARGET_DAG = "nxcloud_number_check"
WAIT_TASK = "wait_for_results"

VALID_NUMBERS = [f"+52 55 12{i:06d}" for i in range(12)] + [f"+57 300 1{i:06d}" for i in range(4)]
INVALID_NUMBERS = ["12345", "+52 99", "not a number"]
EXPECTED_PHONES = {n.replace("+", "").replace(" ", "") for n in VALID_NUMBERS}


def ui_form_conf(batch_label: str) -> dict:
    """Every param of the trigger form, as the UI sends them."""
    return {
        "numbers": "\n".join(VALID_NUMBERS + INVALID_NUMBERS),
        "default_region": "MX",
        "check_level": "basic",
        "batch_label": batch_label,
        "freshness_days": 30,
        "budget": 50,
        "budget_currency": "USD",
        "dry_run": False,
        "wait_timeout_minutes": 2,
        "wait_poll_seconds": 1,
        "max_per_chunk": 5000,
    }


class PushesHeldUntilTheWaitDefers:
    """Holds the sandbox's pushes from before the trigger until ``wait_for_results`` is seen
    deferred, then lets them go: the wait must defer to the triggerer and the trigger must see
    the results land, however slow the machine (a fixed push delay was outrun by a busy Celery
    worker between ``submit`` and the first poke). Call it as ``on_poll``; ``release`` at the end."""

    def __init__(self, sandbox_url: str) -> None:
        self.sandbox_url = sandbox_url
        self.released = False
        self._settings(pushes_held=True)

    def _settings(self, **changes: object) -> None:
        answer = httpx.post(f"{self.sandbox_url}/_sandbox/settings", json=changes, timeout=10)
        answer.raise_for_status()

    def __call__(self, _state: str, seen: dict[str, set[str]]) -> None:
        if not self.released and "deferred" in seen.get(WAIT_TASK, ()):
            self.release()

    def release(self) -> None:
        self._settings(pushes_held=False)
        self.released = True


@dataclass
class Phases:
    """Wall time per phase, printed as it goes (``pytest -s``) and summarised at the end."""

    started: float = field(default_factory=time.monotonic)
    marks: list[tuple[str, float]] = field(default_factory=list)
    _last: float = field(default_factory=time.monotonic)

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.marks.append((name, now - self._last))
        self._last = now
        print(f"[phase] {name}: {self.marks[-1][1]:.1f} s (at {now - self.started:.1f} s)", flush=True)

    def report(self) -> str:
        return (
            " | ".join(f"{n} {s:.1f}s" for n, s in self.marks)
            + f" | total {time.monotonic() - self.started:.1f}s"
        )


@dataclass
class UiRun:
    run_id: str
    state: str
    seen: dict[str, set[str]]
    tasks: list[dict]
    wait_logs: dict[int, list[dict]]  # try number -> structured log lines of wait_for_results


def trigger_like_the_ui(
    api: AirflowApi, batch_label: str, timeout: float, log_dir: Path, on_poll=None
) -> UiRun:
    """Unpause, trigger with the form's values, wait; ``log_dir`` = ``$AIRFLOW_HOME/logs``."""
    api.login()
    api.wait_for_dag(TARGET_DAG, timeout=90)
    api.unpause(TARGET_DAG)
    run_id = api.trigger(TARGET_DAG, ui_form_conf(batch_label))
    state, seen = api.wait_for_run(TARGET_DAG, run_id, timeout=timeout, on_poll=on_poll)
    tasks = api.task_instances(TARGET_DAG, run_id)
    wait_ti = next(t for t in tasks if t["task_id"] == WAIT_TASK)
    tries = range(1, (wait_ti["try_number"] or 0) + 1)
    wait_logs = {n: _log_or_reason(api, run_id, n, log_dir) for n in tries}
    return UiRun(run_id, state, seen, tasks, wait_logs)


def _log_or_reason(api: AirflowApi, run_id: str, try_number: int, log_dir: Path) -> list[dict]:
    """The try's log as the UI shows it; for a try the API cannot find (Airflow keeps no history
    row for a try ended by the defer race), the files the worker and the triggerer wrote."""
    try:
        return api.task_log(TARGET_DAG, run_id, WAIT_TASK, try_number)
    except RuntimeError as exc:
        task_dir = log_dir / f"dag_id={TARGET_DAG}" / f"run_id={run_id}" / f"task_id={WAIT_TASK}"
        files = sorted(task_dir.glob(f"attempt={try_number}.log*"))
        lines: list[dict] = [{"event": f"API: {exc}; read from {[f.name for f in files]}"}]
        for path in files:
            for raw in path.read_text(errors="replace").splitlines():
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = {"event": raw}
                lines.append(parsed if isinstance(parsed, dict) else {"event": raw})
        return lines


def assert_number_check_done(run: UiRun, warehouse_dsn: str, context: str = "") -> None:
    """Success, a real deferral, and the run loaded exactly the valid numbers, rejected the rest."""
    states = {t["task_id"]: (t["state"], t["try_number"]) for t in run.tasks}
    assert run.state == "success", f"run {run.run_id} {run.state}: {states}\n{context}"
    # write_results skips when the run has no results file (numbers pasted, no results_uri)
    expected = {task: "skipped" if task == "write_results" else "success" for task in states}
    assert {task: state for task, (state, _) in states.items()} == expected, states

    # The wait went through the triggerer: a try of wait_for_results deferred, and the trigger
    # (its lines are merged into the task log) fired with every result counted. A second try
    # happens when Airflow 3.3's defer race strikes (docs/airflow.md): the retry then finds
    # the results in its first poke; the deferral still happened in the first try.
    print(f"[{WAIT_TASK}] states seen: {sorted(run.seen.get(WAIT_TASK, ()))}; tries: {sorted(run.wait_logs)}")
    deferred_tries = []
    for try_number, lines in run.wait_logs.items():
        events = [str(line.get("event", "")) for line in lines]
        fired = [line for line in lines if line.get("event") == "Trigger fired event"]
        if any(e.startswith("Pausing task as DEFERRED") for e in events) and fired:
            assert "'status': 'done'" in str(fired[-1].get("result")), fired
            deferred_tries.append(try_number)
    assert deferred_tries, {
        n: [line.get("event") for line in lines][-15:] for n, lines in run.wait_logs.items()
    }

    # this run's rows (the warehouse may hold other runs' too, e.g. the demo's)
    with psycopg.connect(warehouse_dsn) as conn:
        loaded = {
            r[0]
            for r in conn.execute(
                "SELECT t.phone FROM telco.nxcloud_number_check t JOIN ops.number_check_submission s "
                "ON s.vendor = 'nxcloud' AND s.batch_no = t.batch_no WHERE s.dag_id = %s AND s.run_id = %s",
                (TARGET_DAG, run.run_id),
            )
        }
        rejected = {
            r[0]
            for r in conn.execute(
                "SELECT raw_input FROM ops.rejected_number WHERE dag_id = %s AND run_id = %s",
                (TARGET_DAG, run.run_id),
            )
        }
    assert loaded == EXPECTED_PHONES
    assert rejected == set(INVALID_NUMBERS)
