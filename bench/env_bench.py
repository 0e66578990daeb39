"""``make -s env``: how long ``eval "$(make -s env)"`` keeps a developer's shell waiting.

``make -s env`` prints the ``export`` lines that give a shell the airflow CLI as ``make airflow``
sees it (docs/getting-started.md). It is typed often, so its wall time is a figure. Each repeat
is a fresh ``make -s env`` in the repository (the venv already built, as on any second use);
its output must hold the contract connections, or the bench fails.

First call on a fresh clone: one ``make -s env`` with ``PHONECHECK_LOCAL_DIR`` at an empty
folder (no embedded PostgreSQL, no ``AIRFLOW_HOME`` yet: what a clone has before its first
command); its own figure, and how long after it the metadata DB set-up it started in the
background (docs/getting-started.md) lets the first ``airflow`` command through. That server is
stopped and the folder removed afterwards.

Baseline, same run: a bare ``make -s -n env`` + ``python -c pass`` (make's own start and one
interpreter start: the floor of any make target that runs Python). The figure is the median of
``REPEATS`` runs and its ratio to the baseline.

``python -m bench.env_bench``
"""

from __future__ import annotations

import fcntl
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.sizes import note, pick

ROOT = Path(__file__).resolve().parents[1]
REPEATS = pick(5, 1)
EXPECTED = ("AIRFLOW_CONN_WAREHOUSE", "AIRFLOW_CONN_NXCLOUD_DEFAULT", "AIRFLOW_CONN_ACCUAUTH_DEFAULT")


def _timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def _missing(out: str) -> list[str]:
    return [name for name in EXPECTED if f"{name}=" not in out]


def _wait_for_setup(local: Path) -> None:
    """Until the set-up ``make -s env`` left in the background is done (what the CLI waits for)."""
    lock = local / "airflow" / "cli_setup.lock"
    if lock.exists():
        with open(lock) as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)


def _fresh_clone() -> tuple[float, float]:
    """``make -s env`` on an empty local folder; then seconds until its background set-up is done."""
    with tempfile.TemporaryDirectory(prefix="env-bench-") as tmp:
        local = Path(tmp)
        # a clone's shell: nothing an earlier eval "$(make -s env)" may have exported
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "WAREHOUSE_DSN", "TELCO_"))
        }
        env["PHONECHECK_LOCAL_DIR"] = str(local)
        try:
            seconds, out = _timed(["make", "-s", "env"], env)
            t0 = time.perf_counter()
            _wait_for_setup(local)
            setup_s = time.perf_counter() - t0
            if _missing(out):
                raise SystemExit(f"FAILED: make -s env (fresh) printed no {', '.join(_missing(out))}")
            if (local / "airflow" / "cli_setup.failed").exists():
                raise SystemExit("FAILED: " + (local / "airflow" / "cli_setup.failed").read_text())
            return seconds, setup_s
        finally:
            _wait_for_setup(local)  # it starts the embedded server on a fresh clone: then stop it
            pid_file = local / "pgdata" / "postmaster.pid"
            if pid_file.exists():  # the embedded server make -s env left running: fast shutdown
                pid = int(pid_file.read_text().split()[0])
                os.kill(pid, signal.SIGINT)
                deadline = time.monotonic() + 60
                while pid_file.exists() and time.monotonic() < deadline:
                    time.sleep(0.2)


def main() -> int:
    fresh_s, setup_s = _fresh_clone()
    print(
        f"FIGURE env-fresh: first make -s env on a fresh clone takes {fresh_s:.2f} s; the set-up it "
        f"started in the background let the airflow CLI through {setup_s:.1f} s later{note()}",
        flush=True,
    )
    runs, floors = [], []
    for _ in range(REPEATS):
        make_s, _ = _timed(["make", "-s", "-n", "env"])
        python_s, _ = _timed([sys.executable, "-c", "pass"])
        floors.append(make_s + python_s)
        seconds, out = _timed(["make", "-s", "env"])
        missing = _missing(out)
        if missing:
            print(f"FAILED: make -s env printed no {', '.join(missing)}")
            return 1
        runs.append(seconds)
        print(f"  make -s env {seconds:.2f} s (floor {floors[-1]:.2f} s)", flush=True)
    env_s, floor_s = statistics.median(runs), statistics.median(floors)
    print(
        f"FIGURE env: make -s env (warm) takes {env_s:.2f} s (median of {REPEATS}); baseline make + one bare "
        f"interpreter start {floor_s:.2f} s (x{env_s / floor_s:.1f} of it), same run{note()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
