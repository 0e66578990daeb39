"""``make airflow`` end to end: the launcher as a user runs it, then a scripted UI-style trigger.

The session's launcher (``tests/fixtures/airflow.py``: ``python -m phonecheck_dev.local
standalone`` after ``make demo``, on the demo's local dir and warehouse, free ports) serves
several test modules; here it triggers ``nxcloud_number_check`` through the REST API with the
params form's values and waits for success (this run's rows only are checked: the warehouse
holds the demo's too). The last test to use the launcher presses Ctrl-C (SIGINT) and checks
that everything the launcher started is gone.
"""

from __future__ import annotations

import socket

import pytest

from phonecheck_dev import local
from tests.fixtures.airflow import Launcher, processes_with_env
from tests.integration.ui_trigger import (
    PushesHeldUntilTheWaitDefers,
    assert_number_check_done,
    trigger_like_the_ui,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_airflow_runs_nxcloud_number_check_triggered_like_the_ui(make_airflow: Launcher) -> None:
    launcher = make_airflow
    pushes = PushesHeldUntilTheWaitDefers(launcher.sandbox_url)
    api = local.AirflowApi(launcher.base_url, "admin", launcher.passwords["admin"], timeout=120)
    try:
        run = trigger_like_the_ui(api, "local", timeout=400, log_dir=launcher.airflow_logs, on_poll=pushes)
    finally:
        api.close()
        pushes.release()
    for line in launcher.output().splitlines():  # Airflow 3.3's defer race, when it strikes
        if "reported that the task instance" in line:
            print(f"[race] {line[:400]}")
    assert_number_check_done(run, launcher.dsn, context=launcher.output()[-5000:])


@pytest.mark.launcher_stop
def test_ctrl_c_stops_everything_make_airflow_started(make_airflow: Launcher) -> None:
    launcher = make_airflow
    assert _listening(launcher.api_port) and _listening(int(launcher.settings["SANDBOX_PORT"]))
    # Ctrl-C: the launcher stops airflow, the sandbox (and the embedded warehouse if it had one).
    assert launcher.ctrl_c(timeout=90) == 0, launcher.output()[-3000:]
    assert "[make airflow] stopped" in launcher.output()
    assert not _listening(launcher.api_port), "api-server still listening after Ctrl-C"
    assert not _listening(int(launcher.settings["SANDBOX_PORT"])), "sandbox still listening after Ctrl-C"
    assert processes_with_env(str(launcher.local_dir)) == []
