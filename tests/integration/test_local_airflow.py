"""``make airflow`` end to end: the launcher as a user runs it, then a scripted UI-style trigger.

``python -m phonecheck_dev.local standalone`` is started as a subprocess (own session, a
throw-away ``PHONECHECK_LOCAL_DIR``, ``WAREHOUSE_DSN`` = a fresh warehouse, free ports); the
test reads the UI URL and the admin login from what it prints, triggers
``nxcloud_number_check`` through the REST API with the params form's values, waits for
success, then presses Ctrl-C (SIGINT) and checks that everything the launcher started is gone.
Whatever happens, every process that carries this test's local dir is killed at teardown.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from phonecheck_dev import local
from tests.integration.ui_trigger import (
    Phases,
    assert_number_check_done,
    delay_sandbox_pushes,
    trigger_like_the_ui,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

LOGIN_RE = re.compile(r"login:\s+admin / (\S+)")
URL_RE = re.compile(r"Airflow UI:\s+(http://\S+?)/?$", re.MULTILINE)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _processes_with_env(marker: str) -> list[int]:
    """Pids whose environment contains ``marker`` (this test's unique local dir)."""
    needle = marker.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
    return found


class Launcher:
    def __init__(self, proc: subprocess.Popen, log_path: Path, local_dir: Path) -> None:
        self.proc = proc
        self.log_path = log_path
        self.local_dir = local_dir

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: re.Pattern, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = pattern.search(self.output())
            if match:
                return match
            if self.proc.poll() is not None:
                raise AssertionError(f"launcher exited with {self.proc.returncode}:\n{self.output()[-5000:]}")
            time.sleep(0.5)
        raise AssertionError(f"no {pattern.pattern!r} after {timeout:.0f} s:\n{self.output()[-5000:]}")


@pytest.fixture
def make_airflow(fresh_warehouse_dsn: str) -> Iterator[tuple[Launcher, int, Phases]]:
    phases = Phases()
    # short: the embedded server (unused here) and sockets keep paths under 107 bytes
    local_dir = Path(f"/tmp/pc-airflow-{secrets.token_hex(4)}")
    local_dir.mkdir()
    api_port, sandbox_port = local.free_port(), local.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TELCO_"))}
    env.update({"PHONECHECK_LOCAL_DIR": str(local_dir), "WAREHOUSE_DSN": fresh_warehouse_dsn})
    log_path = local_dir / "launcher.log"
    cmd = [sys.executable, "-m", "phonecheck_dev.local", "standalone"]
    cmd += ["--port", str(api_port), "--sandbox-port", str(sandbox_port)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, env=env, cwd=local.REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    launcher = Launcher(proc, log_path, local_dir)
    try:
        yield launcher, sandbox_port, phases
    finally:
        local.stop_process_group(proc, signal.SIGINT, grace_s=60)
        for pid in _processes_with_env(str(local_dir)):  # anything that escaped, by pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
        phases.mark("teardown")
        print(f"[phases] {phases.report()}", flush=True)
        import shutil

        shutil.rmtree(local_dir, ignore_errors=True)


def test_make_airflow_runs_nxcloud_number_check_triggered_like_the_ui(
    make_airflow, fresh_warehouse_dsn
) -> None:
    launcher, sandbox_port, phases = make_airflow
    password = launcher.wait_for(LOGIN_RE, timeout=180).group(1)
    base_url = URL_RE.search(launcher.output()).group(1)
    phases.mark("make airflow ready (warehouse, sandbox, airflow standalone)")

    delay_sandbox_pushes(f"http://127.0.0.1:{sandbox_port}")
    api = local.AirflowApi(base_url, "admin", password)
    try:
        run = trigger_like_the_ui(api, "local", timeout=150, log_dir=launcher.local_dir / "airflow" / "logs")
    finally:
        api.close()
    phases.mark(f"nxcloud_number_check run finished ({run.state})")
    for line in launcher.output().splitlines():  # Airflow 3.3's defer race, when it strikes
        if "reported that the task instance" in line:
            print(f"[race] {line[:400]}")
    assert_number_check_done(run, fresh_warehouse_dsn, context=launcher.output()[-5000:])

    # Ctrl-C: the launcher stops airflow, the sandbox (and the embedded warehouse if it had one).
    os.killpg(launcher.proc.pid, signal.SIGINT)
    assert launcher.proc.wait(timeout=90) == 0, launcher.output()[-3000:]
    phases.mark("Ctrl-C: everything stopped")
    assert "[make airflow] stopped" in launcher.output()
    assert not _listening(int(base_url.rsplit(":", 1)[1])), "api-server still listening after Ctrl-C"
    assert not _listening(sandbox_port), "sandbox still listening after Ctrl-C"
    assert _processes_with_env(str(launcher.local_dir)) == []
