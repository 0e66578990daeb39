"""Test harness shared by every test.

Airflow reads its configuration at import time, so the environment is fixed here, before any
test module imports Airflow: a throw-away ``AIRFLOW_HOME`` with SQLite metadata, ``dags/`` as
the DAG folder, no examples, and an empty plugins folder (the receiver plugin comes through
the installed distribution's entry point, like in deployments).

Fixtures live in ``tests/fixtures/`` (one module per concern) and are registered below.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="phonecheck-airflow-home-"))
(_AIRFLOW_HOME / "plugins").mkdir()
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(_AIRFLOW_HOME / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}?timeout=30",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # The vendor's own secrets must never be logged: mask the vendor-specific names too.
        "AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES": "accessKey,accessSecret,appkey,sign,X-DF-API-SECRET",
    }
)
_RUNTIME = _AIRFLOW_HOME / "runtime"
_RUNTIME.mkdir(mode=0o700)
os.environ.setdefault("XDG_RUNTIME_DIR", str(_RUNTIME))
sys.path.insert(0, str(REPO_ROOT))  # tests.* helpers importable from any test

pytest_plugins = [
    "tests.fixtures.warehouse",
    "tests.fixtures.airflow",
    "tests.fixtures.sandbox",
    "tests.fixtures.receiver",
    "tests.fixtures.pipelines",
]
