"""Run every benchmark (``make bench``) and collect their ``FIGURE`` lines into one table.

Each benchmark runs in its own interpreter so one cannot warm caches for another; a failing
benchmark is reported and the others still run. ``python -m bench parse loader`` runs a subset.

``python -m bench --tiny`` (``.ci/run``, after ``make test``) runs every benchmark at a tiny size
(``bench.sizes``: seconds each, no figure judged) so a change that breaks one fails CI; the tiny
run starts ``--jobs`` benchmarks at once (default 3: most of a tiny run is process start-up and
waiting on subprocesses, not CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (short name, module, what it measures[, arguments])
BENCHMARKS: list[tuple[str, ...]] = [
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
    ("normalise", "bench.normalise_bench", "offline normalisation numbers/s on one core vs raw phonenumbers"),
    (
        "burst",
        "bench.receiver_burst",
        "1,000,000 number-check pushes offered as fast as the receiver takes them (nothing lost or doubled)",
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
    (
        "limits",
        "bench.scale_bench",
        "nxcloud_number_check at 100,000 and 1,000,000 numbers at the vendor's documented limits "
        "(strict sandbox, one query per 3 s, pushes as fast as the receiver takes them)",
        "--vendor-limits",
    ),
    ("env", "bench.env_bench", "wall time of make -s env vs make + a bare interpreter start"),
]

#: seconds a benchmark may run (the others: DEFAULT_TIMEOUT_S); scale runs 10,000 + 100,000 numbers
#: and 1,000 + 10,000 AccuAuth tasks end to end, each in its own child
#: and limits runs 100,000 + 1,000,000 numbers at the documented query limit
TIMEOUT_S = {"scale": 3600, "limits": 3600, "burst": 3600}
DEFAULT_TIMEOUT_S = 900
TINY_TIMEOUT_S = 600


def _run(module: str, args: tuple[str, ...], env: dict[str, str]) -> subprocess.Popen:
    """Start one benchmark; its output goes to temporary files (benchmarks run side by side
    would block on full pipes while an earlier one is being waited for)."""
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=err,
        start_new_session=True,
    )
    proc.output_files = (out, err)  # type: ignore[attr-defined]
    return proc


def _output(handle) -> str:
    handle.seek(0)
    text = handle.read()
    handle.close()
    return text


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--tiny", action="store_true", help="every benchmark at a tiny size (CI)")
    parser.add_argument("--jobs", type=int, default=None, help="benchmarks at once (default 1; tiny: 3)")
    args = parser.parse_args(argv)
    known = {entry[0] for entry in BENCHMARKS}
    if unknown := set(args.names) - known:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    wanted = set(args.names) or known
    jobs = args.jobs or (3 if args.tiny else 1)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.tiny:
        env["BENCH_TINY"] = "1"
    # Benchmarks run side by side each start the embedded warehouse when no WAREHOUSE_DSN is
    # given; two children starting (or one stopping) the same server at once race in pg_ctl.
    # The parent holds it for the whole run, so no child starts or stops it.
    held_server = False
    if jobs > 1 and not os.environ.get("WAREHOUSE_DSN"):
        from phonecheck import warehouse

        warehouse.start_embedded()
        held_server = True
    try:
        return _run_all(args, jobs, env, wanted)
    finally:
        if held_server:
            warehouse.stop_embedded()


def _run_all(args: argparse.Namespace, jobs: int, env: dict[str, str], wanted: set[str]) -> int:
    figures: list[str] = []
    failures: list[str] = []
    started = time.perf_counter()
    queue = [entry for entry in BENCHMARKS if entry[0] in wanted]
    running: list[tuple[str, str, subprocess.Popen, float]] = []

    def finish(name: str, what: str, proc: subprocess.Popen, t0: float) -> None:
        limit = TINY_TIMEOUT_S if args.tiny else TIMEOUT_S.get(name, DEFAULT_TIMEOUT_S)
        try:
            proc.wait(timeout=max(1.0, limit - (time.perf_counter() - t0)))
        except subprocess.TimeoutExpired:
            # the benchmark and every service it started (sandbox, receiver, Airflow children)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            failures.append(f"{name}: timed out after {limit} s")
        out, err = (_output(handle) for handle in proc.output_files)  # type: ignore[attr-defined]
        print(f"\n=== {name}: {what}", flush=True)
        sys.stdout.write(out)
        if proc.returncode != 0:
            sys.stdout.write(err[-4000:])
            failures.append(f"{name}: exit {proc.returncode}")
        figures.extend(line for line in out.splitlines() if line.startswith("FIGURE"))
        print(f"--- {name} took {time.perf_counter() - t0:.1f} s", flush=True)

    while queue or running:
        while queue and len(running) < jobs:
            name, module, what, *extra = queue.pop(0)
            module_path = ROOT / (module.replace(".", "/") + ".py")
            if not module_path.exists():
                failures.append(f"{name}: not written yet ({module_path.relative_to(ROOT)})")
                continue
            running.append((name, what, _run(module, tuple(extra), env), time.perf_counter()))
        # collect in start order: output stays grouped per benchmark
        finish(*running.pop(0))
    print(f"\n=== summary ({time.perf_counter() - started:.0f} s{', tiny run' if args.tiny else ''})")
    for line in figures:
        print(line)
    for line in failures:
        print(f"FAILED  {line}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
