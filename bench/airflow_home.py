"""A throw-away Airflow home for benchmarks that run DAGs through ``dag.test()``."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fresh_airflow_home(prefix: str) -> Path:
    """Create a fresh AIRFLOW_HOME and point Airflow's settings at it. Call it before anything
    imports Airflow (it reads its configuration at import). SQLite metadata, ``dags/`` as the
    DAG folder, no examples, logging at WARNING: task logs of thousands of numbers are not the
    figure being measured."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    (home / "plugins").mkdir()
    (home / "runtime").mkdir(mode=0o700)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    os.environ.setdefault("XDG_RUNTIME_DIR", str(home / "runtime"))
    return home


def stop_processes(procs: Sequence[subprocess.Popen]) -> None:
    """Stop the services a bench started, last started first (terminate, then kill after 15 s)."""
    for proc in reversed(procs):
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
