"""Developer tools that need Airflow: DAG-file parse cost, local test runs."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

_PROBE = """
import sys, time, runpy
import airflow.sdk  # the baseline every DAG file pays anyway
t0 = time.perf_counter()
runpy.run_path(sys.argv[1], run_name="dag_parse_probe")
print(f"{(time.perf_counter() - t0) * 1000:.3f}")
"""


def dag_file_parse_ms(path: Path) -> float:
    """Milliseconds one DAG file takes to execute on top of an already imported ``airflow.sdk``.

    Each file runs in its own interpreter so modules cached by one file do not flatter another.
    """
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, check=True, timeout=120
    )
    return float(out.stdout.strip().splitlines()[-1])


def dag_folder_parse_ms(folder: Path, workers: int = 2) -> dict[str, float]:
    files = sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip((p.name for p in files), pool.map(dag_file_parse_ms, files), strict=True))


def run_dag_test(dag: Any, **kwargs: Any) -> Any:
    """``dag.test(**kwargs)``, the one way the tests and the demo run a DAG locally.

    No DAG of the project carries a ``deadline``: Airflow 3.3.2's ``dag.test()`` cannot finish a
    successful run of one (docs/airflow.md), so the daily deadline is a check task instead.
    """
    return dag.test(**kwargs)
