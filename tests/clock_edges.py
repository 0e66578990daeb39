"""Run the clock-sensitive tests with the clock set just before an edge of the calendar.

``make test-clock-edges`` (``python -m tests.clock_edges``) runs each file of :data:`TESTS` in a
pytest process of its own under libfaketime, its clock starting ``--lead`` seconds before:

* ``month-end``: 00:00 UTC on the first day of the next month (the last day of this month ends:
  the day, the month and the monthly budget all change; a year too in December);
* ``vendor-day``: 16:00 UTC today, which is 00:00 in China (UTC+8), where the strict sandbox
  profile keeps the NXCLOUD vendor's day (docs/vendors/nxcloud.md, "Which day").

Every process the tests start (the embedded PostgreSQL, the sandbox, Airflow) inherits the same
relative offset, so they agree on the time; timed waits keep the real monotonic clock
(``FAKETIME_DONT_FAKE_MONOTONIC``). Each run gets its own ``PHONECHECK_LOCAL_DIR``, so the embedded
warehouse is started under the faked clock, never borrowed from a server running on the real one.
A file whose run ends before the edge (a short one) runs once more, its lead 60 % of the first
run's length, so that the edge falls among its tests. ``--each-test`` gives every test its own
process (and its own crossing) instead of every file.
Not part of ``make test``: it needs the PyPI ``libfaketime`` build (the dev lock has it) and about
half an hour.
"""

from __future__ import annotations

import argparse
import calendar
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The tests that read "now": months of spend, UTC days of receipts and partitions, the vendor's day.
TESTS = (
    "tests/integration/test_spend_ledger.py",
    "tests/integration/test_spend_pipeline.py",
    "tests/integration/test_spend_approval_airflow.py",
    "tests/integration/test_phone_checks_page.py",
    "tests/integration/test_nxcloud_pipeline.py",
    "tests/integration/test_nxcloud_vendor_realism.py",
    "tests/integration/test_privacy.py",
    "tests/integration/test_privacy_retention.py",
    "tests/integration/test_demo.py",
)


def month_end_edge(now: datetime) -> datetime:
    """00:00 UTC on the first day of the month after ``now``'s."""
    last_day = calendar.monthrange(now.year, now.month)[1]
    return datetime(now.year, now.month, last_day, tzinfo=UTC) + timedelta(days=1)


def vendor_day_edge(now: datetime) -> datetime:
    """16:00 UTC (00:00 in China) on ``now``'s UTC day."""
    return datetime(now.year, now.month, now.day, 16, tzinfo=UTC)


EDGES = {"month-end": month_end_edge, "vendor-day": vendor_day_edge}


def faketime_library() -> Path:
    """The shared library inside the ``libfaketime`` wheel."""
    import libfaketime

    path = Path(libfaketime.__file__).parent / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"
    if not path.is_file():
        raise SystemExit(f"libfaketime's library is not at {path}: run make venv")
    return path


def faked_env(edge: datetime, lead_s: float, local_dir: Path) -> dict[str, str]:
    """The environment whose clock reads ``edge - lead_s`` now and runs on from there."""
    offset = round((edge - timedelta(seconds=lead_s)).timestamp() - time.time())
    env = {k: v for k, v in os.environ.items() if k not in ("WAREHOUSE_DSN", "AIRFLOW_CONN_WAREHOUSE")}
    env.update(
        LD_PRELOAD=str(faketime_library()),
        FAKETIME=f"{offset:+d}s",
        FAKETIME_DONT_FAKE_MONOTONIC="1",
        PHONECHECK_LOCAL_DIR=str(local_dir),
    )
    return env


def clock_seen(env: dict[str, str]) -> datetime:
    """What a child process under ``env`` reads as the time."""
    out = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return datetime.fromtimestamp(float(out.stdout), UTC)


def collect(paths: list[str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *paths],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return [line for line in out.stdout.splitlines() if "::" in line]


@dataclass(frozen=True)
class EdgeRun:
    edge: str
    target: str
    passed: bool
    took_s: float
    started_at: datetime
    ended_at: datetime
    crossed: bool

    def line(self) -> str:
        return (
            f"  {'passed' if self.passed else 'FAILED'}  {self.edge:<10} {self.took_s:6.0f} s  {self.target} "
            f"from {self.started_at:%Y-%m-%d %H:%M:%S} to {self.ended_at:%H:%M:%S} UTC"
            f"{'' if self.crossed else ' (did not reach the edge)'}"
        )


def run_one(target: str, edge_name: str, lead_s: float, extra: list[str]) -> EdgeRun:
    edge = EDGES[edge_name](datetime.now(UTC))
    with tempfile.TemporaryDirectory(prefix="phonecheck-clock-") as local_dir:
        env = faked_env(edge, lead_s, Path(local_dir))
        started_at = clock_seen(env)
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", target, *extra],
            cwd=ROOT,
            env=env,
        )
        ended_at = clock_seen(env)
    return EdgeRun(
        edge_name, target, result.returncode == 0, time.monotonic() - started, started_at, ended_at,
        started_at < edge <= ended_at,
    )  # fmt: skip


def run_across(target: str, edge_name: str, lead_s: float, extra: list[str]) -> list[EdgeRun]:
    """One run ``lead_s`` before the edge; when it ended before the edge (a short file), one
    more whose lead is 60 % of that run's length, so that the edge falls inside its tests."""
    runs = [run_one(target, edge_name, lead_s, extra)]
    if not runs[0].crossed:
        runs.append(run_one(target, edge_name, 0.6 * runs[0].took_s, extra))
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edge", choices=[*EDGES, "all"], default="all")
    parser.add_argument("--lead", type=float, default=45.0, help="seconds between the start and the edge")
    parser.add_argument("--each-test", action="store_true", help="one process (one crossing) per test")
    parser.add_argument("paths", nargs="*", help=f"test files (default: {len(TESTS)} clock-sensitive files)")
    args, extra = parser.parse_known_args(argv)
    targets = list(args.paths or TESTS)
    if args.each_test:
        targets = collect(targets)
    edges = list(EDGES) if args.edge == "all" else [args.edge]
    runs = [run for edge in edges for target in targets for run in run_across(target, edge, args.lead, extra)]
    print("\nclock edges:")
    for run in runs:
        print(run.line())
    return 0 if all(run.passed for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
