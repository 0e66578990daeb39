"""Run every benchmark (``make bench``) and collect their ``FIGURE`` lines into one table.

Each benchmark runs in its own interpreter so one cannot warm caches for another; a failing
benchmark is reported and the others still run. ``python -m bench parse loader`` runs a subset.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (short name, module, what it measures)
BENCHMARKS: list[tuple[str, str, str]] = [
    (
        "loader",
        "bench.loader_bench",
        "number-check upsert vs PostgresHook.upsert_rows / insert_rows and raw COPY",
    ),
    (
        "receiver",
        "bench.receiver_load",
        "standalone receiver req/s and latency vs the same app without the DB write",
    ),
    ("query", "bench.query_sync_bench", "query API paging at the rate limit vs sequential paging"),
    ("waiting", "bench.accuauth_wait_bench", "10,000 pending AccuAuth tasks in one trigger"),
    (
        "parse",
        "bench.parse_bench",
        "ms each DAG file adds to a parse, over a trivial DAG and over import airflow.sdk",
    ),
    ("quality", "bench.quality_bench", "validating 100,000 rows vs loading them"),
    ("e2e", "bench.e2e_bench", "numbers checked per minute through nxcloud_number_check"),
    (
        "scale",
        "bench.scale_bench",
        "wall time, worker RSS, largest XCom and trigger event per run size (NXCLOUD, AccuAuth)",
    ),
]

#: seconds a benchmark may run (the others: DEFAULT_TIMEOUT_S); scale runs 10,000 + 100,000 numbers
#: and 1,000 + 10,000 AccuAuth tasks end to end, each in its own child
TIMEOUT_S = {"scale": 3600}
DEFAULT_TIMEOUT_S = 900


def main(argv: list[str]) -> int:
    wanted = set(argv) or {name for name, _, _ in BENCHMARKS}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    figures: list[str] = []
    failures: list[str] = []
    started = time.perf_counter()
    for name, module, what in BENCHMARKS:
        if name not in wanted:
            continue
        module_path = ROOT / (module.replace(".", "/") + ".py")
        if not module_path.exists():
            failures.append(f"{name}: not written yet ({module_path.relative_to(ROOT)})")
            continue
        print(f"\n=== {name}: {what}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S.get(name, DEFAULT_TIMEOUT_S),
        )
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            sys.stdout.write(proc.stderr[-4000:])
            failures.append(f"{name}: exit {proc.returncode}")
        figures += [line for line in proc.stdout.splitlines() if line.startswith("FIGURE")]
        print(f"--- {name} took {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"\n=== summary ({time.perf_counter() - started:.0f} s)")
    for line in figures:
        print(line)
    for line in failures:
        print(f"FAILED  {line}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
