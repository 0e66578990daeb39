"""Scale: wall time, peak worker RSS, the largest XCom and the largest trigger kwargs / event of
runs of N numbers through ``nxcloud_number_check`` and of N tasks through ``accuauth_phone_check``.

Every size runs in a fresh child interpreter (so ``ru_maxrss`` is that run's worker alone:
``dag.test()`` runs every task, and every trigger inline, in-process) with a fresh
``AIRFLOW_HOME`` (SQLite metadata), a throw-away warehouse database on the embedded PostgreSQL
(or ``WAREHOUSE_DSN``'s server) and the vendor sandbox as a subprocess. The numbers come from a
file by ``numbers_uri`` (``file://`` under the folder named in ``PHONECHECK_NUMBERS_URI_PREFIXES``).

- NXCLOUD: basic level, chunks of 5,000, the standalone receiver stores the pushes, one vendor
  minute = 0.05 s, no query rate limit, poll every 0.5 s.
- AccuAuth: no callback URL (polls only; the sandbox decides from each number how many polls
  answer PENDING first), poll intervals 0.1-0.5 s, 500 requests/s.

Measured per run: wall time of ``dag.test()``; peak RSS of the worker process
(``getrusage(RUSAGE_SELF).ru_maxrss``, setup included); the largest XCom (length of the stored
value in the metadata DB's ``xcom`` table for that run); the largest trigger kwargs and event
(what each trigger the sensors deferred to serialises and yields, measured as JSON around
dag.test's inline trigger runner, and the longest ``kwargs`` in the metadata DB's ``trigger``
table, fresh per run, which also holds the inbox AssetWatcher's trigger; the event dag.test()
puts in ``task_instance.next_kwargs`` is cleared when the task resumes, so it is measured in
flight); and the seconds each task took (where the wall time goes). Targets: XCom and events
< 64 KB and flat across sizes, RSS < 1 GB, also at 1,000,000 numbers when that run is left out:
the RSS growth per number between the smallest and largest NXCLOUD run is projected to it (a
``load`` that held every push of the run grew 1.8 KB a number: 2.1 GB projected).

``python -m bench.scale_bench [--sizes 10000,100000] [--accuauth-sizes 1000,10000]``
(``--sizes 10000,100000,1000000`` adds the 1M run; ``--accuauth-sizes ''`` skips AccuAuth).

``--vendor-limits`` (the ``limits`` entry of ``make bench``): NXCLOUD only, 100,000 and 1,000,000
numbers, at the limits the vendor documents instead of the sandbox's pace: the sandbox plays
its strict profile (one query call per 3 s per access key, a faster call refused with code 88;
the query API lists a batch only minutes after its submit), the connection spaces queries by
its default 3 s, and the sandbox pushes every result at once, as fast as the receiver takes
them. Printed per size besides the above: query calls (and refusals), pushes per second the
receiver absorbed (inbox rows over the span between the first and the last one stored), peak
RSS of the worker, the receiver and the sandbox. Targets: 1,000,000 numbers in <= 15 min,
100,000 in <= 2.5 min, RSS < 1 GB.

``BENCH_CHILD_LOG_DIR=DIR`` keeps each child's whole output in ``DIR`` (one file per size).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import time
from pathlib import Path

from bench.airflow_home import fresh_airflow_home, stop_processes
from bench.sizes import note, tiny
from phonecheck_dev.local import free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[1]
NXCLOUD_SIZES = (200,) if tiny() else (10_000, 100_000)
ACCUAUTH_SIZES = (50,) if tiny() else (1_000, 10_000)
LIMITS_SIZES = (200,) if tiny() else (100_000, 1_000_000)
#: --vendor-limits targets (seconds) per size
LIMITS_TARGET_S = {100_000: 150, 1_000_000: 900}
ONE_MILLION = 1_000_000
PER_BATCH = 5_000
KB64 = 64 * 1024
RSS_LIMIT_MB = 1024
CHILD_TIMEOUT_S = 3600
BENCH_BUDGET_S = 3600  # bench/__main__.py TIMEOUT_S["scale"]
NX_KEY, NX_SECRET, NX_APPKEY = "sandbox-access-key", "sandbox-access-secret", "sandbox-appkey"
AA_ID, AA_SECRET = "sandbox-api-id", "sandbox-api-secret"


# ---- child: one run of one size ----------------------------------------------------------------
def _airflow_env() -> Path:
    """A fresh AIRFLOW_HOME (bench.airflow_home) with an inputs folder numbers_uri may read."""
    home = fresh_airflow_home("bench-scale-airflow-")
    (home / "inputs").mkdir()
    os.environ["PHONECHECK_NUMBERS_URI_PREFIXES"] = str(home / "inputs") + "/"
    return home


def _record_triggers(seen: list[dict]) -> None:
    """Wrap dag.test()'s inline trigger runner: note what each trigger serialises and yields."""
    import airflow.sdk.definitions.dag as dag_module

    original = dag_module._run_inline_trigger

    def measured(trigger, task_sdk_ti):
        classpath, kwargs = trigger.serialize()
        event = original(trigger, task_sdk_ti)
        payload = getattr(event, "payload", None)
        seen.append(
            {
                "classpath": classpath,
                "kwargs_bytes": len(json.dumps(kwargs, default=str)),
                "event_bytes": len(json.dumps(payload, default=str)) if event is not None else 0,
            }
        )
        return event

    dag_module._run_inline_trigger = measured


def _metadata_sizes(dag_id: str, run_id: str) -> dict:
    """The largest XCom and the longest next_kwargs (the trigger event) of the run, as stored."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import text

    with create_session() as session:
        xcoms = session.execute(
            text(
                "SELECT task_id, key, length(value) FROM xcom WHERE dag_id = :d AND run_id = :r "
                "ORDER BY 3 DESC"
            ),
            {"d": dag_id, "r": run_id},
        ).all()
        trigger_rows = session.execute(
            text("SELECT classpath, length(kwargs) FROM trigger ORDER BY 2 DESC")
        ).all()
        tasks = [
            (ti.task_id, ti.start_date, ti.end_date)
            for ti in session.query(TaskInstance)
            .filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .order_by(TaskInstance.start_date)
            if ti.start_date is not None and ti.end_date is not None
        ]
    top = xcoms[0] if xcoms else (None, None, 0)
    return {
        "xcom_max_bytes": int(top[2] or 0),
        "xcom_max_at": f"{top[0]}/{top[1]}" if top[0] else None,
        "xcoms": len(xcoms),
        "trigger_table_kwargs_max_bytes": int(trigger_rows[0][1] or 0) if trigger_rows else 0,
        "trigger_table_kwargs_max_at": trigger_rows[0][0].rsplit(".", 1)[-1] if trigger_rows else None,
        # where the wall time goes: seconds per task (start to end, a deferral's wait included)
        "task_s": {task_id: round((end - start).total_seconds(), 1) for task_id, start, end in tasks},
    }


def _start(cmd: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _peak_rss_mb(proc: subprocess.Popen) -> float:
    """Peak resident memory of a running child (VmHWM), MB; 0 when it is gone."""
    try:
        with open(f"/proc/{proc.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def child(vendor: str, size: int, limits: bool = False) -> dict:
    home = _airflow_env()

    import psycopg

    from phonecheck import warehouse

    procs: list[subprocess.Popen] = []
    seen: list[dict] = []
    try:
        with warehouse.throwaway_database(warehouse.resolve_dsn(), prefix="phonecheck_bench_scale") as dsn:
            warehouse.migrate(dsn)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            sandbox_cmd = [sys.executable, "-m", "phonecheck.sandbox", "--port", str(port),
                           "--vendor-minute-seconds", "0.05", "--accuauth-seconds-per-poll", "3600",
                           "--log-limit", "10000"]  # fmt: skip
            if limits:  # the documented limits; the strict profile's query interval stays 3 s
                sandbox_cmd += ["--profile", "strict"]
            procs.append(_start(sandbox_cmd))
            wait_for_http(f"{base}/_sandbox/health", 60, procs[0], "sandbox")
            env = {"WAREHOUSE_DSN": dsn, "AIRFLOW_CONN_WAREHOUSE": warehouse.airflow_connection_json(dsn)}
            numbers_file = home / "inputs" / "numbers.txt"
            if vendor == "nxcloud":
                dag_id = "nxcloud_number_check"
                with psycopg.connect(dsn) as conn:
                    conn.execute(
                        "INSERT INTO ops.nxcloud_price_list (region_code, check_level, price, currency, note) "
                        "VALUES ('MX', 1, 0.0040, 'USD', 'bench')"
                    )
                receiver_port = free_port()
                token = "bench-" + secrets.token_urlsafe(16)
                receiver_env = {
                    **os.environ,
                    **env,
                    "TELCO_WEBHOOK_TOKEN": token,
                    "RECEIVER_PORT": str(receiver_port),
                    "RECEIVER_SPOOL_DIR": str(home / "spool"),
                    "RECEIVER_ACCESS_LOG": "0",
                }
                procs.append(_start([sys.executable, "-m", "phonecheck.receiver"], env=receiver_env))
                receiver_base = f"http://127.0.0.1:{receiver_port}/telco-webhooks"
                wait_for_http(f"{receiver_base}/healthz", 60, procs[1], "receiver")
                # auto-approve: the operator's setting (connection extra), not the run's form;
                # at the limits the connection keeps its default spacing of query calls (3 s)
                extra = {"appkey": NX_APPKEY, "auto_approve_up_to": 10**9}
                if not limits:
                    extra["query_min_interval_s"] = 0
                conn_nx = {"conn_type": "nxcloud", "host": f"{base}/nxcloud", "login": NX_KEY,
                           "password": NX_SECRET, "extra": extra}  # fmt: skip
                env |= {
                    "AIRFLOW_CONN_NXCLOUD_DEFAULT": json.dumps(conn_nx),
                    "TELCO_WEBHOOK_BASE_URL": receiver_base,
                    "TELCO_WEBHOOK_TOKEN": token,
                }
                # 10 digits after the country code: 52 55 + 8 digits holds up to 100,000,000 numbers
                numbers = (f"+5255{10_000_000 + i:08d}" for i in range(size))
                conf = {"check_level": "basic", "batch_label": "scale", "budget": None, "freshness_days": 0,
                        "wait_poll_seconds": 0.5, "wait_timeout_minutes": 30, "max_per_chunk": PER_BATCH}  # fmt: skip
                loaded_sql = "SELECT count(DISTINCT phone) FROM telco.nxcloud_number_check"
            else:
                dag_id = "accuauth_phone_check"
                os.environ.pop("TELCO_WEBHOOK_BASE_URL", None)  # no callback: every task is polled
                # the account's limits are the connection's (a run's conf may only lower them)
                conn_aa = {"conn_type": "accuauth", "host": f"{base}/accuauth", "login": AA_ID,
                           "password": AA_SECRET,
                           "extra": {"submit_concurrency": 16, "max_requests_per_second": 500.0}}  # fmt: skip
                env["AIRFLOW_CONN_ACCUAUTH_DEFAULT"] = json.dumps(conn_aa)
                numbers = (f"+525512{i:06d}" for i in range(size))
                conf = {"freshness_days": 0, "max_checks": size,
                        "poll_interval_s": 0.1, "max_poll_interval_s": 0.5,
                        "warehouse_check_interval_s": 0.5}  # fmt: skip
                loaded_sql = (
                    "SELECT count(DISTINCT phone_number) FROM telco.accuauth_phone_check WHERE status = 'OK'"
                )
            with open(numbers_file, "w", encoding="utf-8") as handle:
                for number in numbers:
                    handle.write(number + "\n")
            conf["numbers_uri"] = f"file://{numbers_file}"
            os.environ.update(env)

            from airflow.dag_processing.dagbag import DagBag
            from airflow.utils import db

            db.initdb()
            dag = DagBag(dag_folder=str(ROOT / "dags")).dags[dag_id]
            _record_triggers(seen)
            t0 = time.perf_counter()
            run = dag.test(run_conf=conf)
            wall_s = time.perf_counter() - t0
            state = str(getattr(run.state, "value", run.state))
            failed = [
                ti.task_id
                for ti in run.get_task_instances()
                if str(getattr(ti.state, "value", ti.state)) in ("failed", "upstream_failed")
            ]
            sizes = _metadata_sizes(dag_id, run.run_id)
            with psycopg.connect(dsn) as conn:
                loaded = conn.execute(loaded_sql).fetchone()[0]
                pushes, span_s = conn.execute(
                    "SELECT count(*), EXTRACT(EPOCH FROM max(received_at) - min(received_at))::float8 "
                    "FROM raw.webhook_event WHERE endpoint = 'nxcloud_number_check'"
                ).fetchone()
            import httpx

            health = httpx.get(f"{base}/_sandbox/health", timeout=30).json()
            rss = {"sandbox_rss_mb": _peak_rss_mb(procs[0])}
            if len(procs) > 1:
                rss["receiver_rss_mb"] = _peak_rss_mb(procs[1])
    finally:
        stop_processes(procs)
        warehouse.stop_embedded()  # only if this process started it
    return {
        "vendor": vendor,
        "size": size,
        "state": state,
        "failed_tasks": failed,
        "loaded": loaded,
        "wall_s": wall_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **rss,
        "query_calls": health.get("calls", {}).get("nxcloud.query", 0),
        "query_refusals": health.get("query_refusals", 0),
        "query_interval_s": health.get("query_min_interval_s"),
        "pushes_stored": pushes,
        "pushes_per_s": pushes / span_s if pushes and span_s else 0.0,
        "triggers": seen,
        "trigger_kwargs_max_bytes": max((t["kwargs_bytes"] for t in seen), default=0),
        "trigger_event_max_bytes": max((t["event_bytes"] for t in seen), default=0),
        **sizes,
    }


# ---- parent ---------------------------------------------------------------------------------------
def _run_child(vendor: str, size: int, limits: bool = False) -> dict | None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.scale_bench",
            "--child",
            vendor,
            str(size),
            *(["--limits"] if limits else []),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=max(CHILD_TIMEOUT_S, size // 150),  # 1M numbers: about an hour on 2 cores
    )
    log_dir = os.environ.get("BENCH_CHILD_LOG_DIR")
    if log_dir:  # the child's whole output (task logs included), to see where a run's time went
        log_file = Path(log_dir) / f"scale-{vendor}-{size}{'-limits' if limits else ''}.log"
        log_file.write_text(proc.stdout + "\n---- stderr ----\n" + proc.stderr, encoding="utf-8")
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        print(
            f"{vendor} {size:,}: child exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
        return None
    return json.loads(line[len("RESULT ") :])


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} B"


def _verdicts(label: str, results: list[dict], project_to: int | None = None) -> list[str]:
    """One verdict line per figure: size limit on every run, flatness across the sizes run; the
    worker's peak RSS also projected to ``project_to`` numbers when that size was not run."""
    lines = []
    for key, name in (
        ("xcom_max_bytes", "largest XCom"),
        ("trigger_kwargs_max_bytes", "largest trigger kwargs"),
        ("trigger_event_max_bytes", "largest trigger event"),
        ("trigger_table_kwargs_max_bytes", "largest kwargs in the trigger table"),
    ):
        values = [r[key] for r in results]
        under = all(v < KB64 for v in values)
        # flat: the largest is within 1 KB (or 10 %) of the smallest, i.e. only digits of counts differ
        flat = max(values) - min(values) <= max(1024, min(values) // 10)
        shown = ", ".join(f"{r['size']:,}: {_kb(r[key])}" for r in results)
        flat_note = ("flat" if flat else "NOT flat") if len(results) > 1 else "flatness needs two sizes"
        verdict = "PASS" if under and (flat or len(results) == 1) else "FAIL"
        lines.append(
            f"VERDICT {label} {name}: {verdict} (< 64 KB: {'yes' if under else 'NO'}; {flat_note}) [{shown}]"
        )
    rss = [r["peak_rss_mb"] for r in results]
    shown = ", ".join(f"{r['size']:,}: {r['peak_rss_mb']:.0f} MB" for r in results)
    ok = all(v < RSS_LIMIT_MB for v in rss)
    growth = ""
    by_size = sorted(results, key=lambda r: r["size"])
    if project_to and len(by_size) > 1 and by_size[-1]["size"] < project_to:
        # A worker whose memory grows with the run fails the 1 GB target at the size not run:
        # project the growth between the smallest and the largest run to that size.
        small, large = by_size[0], by_size[-1]
        per_number_mb = max(
            0.0, (large["peak_rss_mb"] - small["peak_rss_mb"]) / (large["size"] - small["size"])
        )
        projected = large["peak_rss_mb"] + per_number_mb * (project_to - large["size"])
        ok = ok and projected < RSS_LIMIT_MB
        growth = f"; growth {per_number_mb * 1024:.2f} KB/number, {project_to:,} projected {projected:.0f} MB"
    lines.append(f"VERDICT {label} peak worker RSS: {'PASS' if ok else 'FAIL'} (< 1 GB{growth}) [{shown}]")
    return lines


def _sizes(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def vendor_limits(sizes: list[int]) -> int:
    """``--vendor-limits``: nxcloud_number_check per size at the vendor's documented limits."""
    failures = 0
    for size in sizes:
        t0 = time.perf_counter()
        result = _run_child("nxcloud", size, limits=True)
        if result is None:
            failures += 1
            continue
        ok = result["state"] == "success" and result["loaded"] == size
        failures += not ok
        target = LIMITS_TARGET_S.get(size)
        verdict = "" if target is None or tiny() else (
            f"; target <= {target / 60:.1f} min {'MET' if result['wall_s'] <= target else 'NOT MET'}"
        )  # fmt: skip
        print(
            f"FIGURE limits {size:,} numbers: nxcloud_number_check {result['state']} ({result['loaded']:,} loaded"
            f"{'' if ok else ', INCOMPLETE ' + str(result['failed_tasks'])}) in {result['wall_s']:.1f} s = "
            f"{result['wall_s'] / 60:.1f} min{verdict} (child {time.perf_counter() - t0:.0f} s with setup); "
            f"{result['query_calls']:,} query calls ({result['query_refusals']:,} refused as too frequent, "
            f"sandbox interval {result['query_interval_s']} s); {result['pushes_stored']:,} pushes absorbed at "
            f"{result['pushes_per_s']:,.0f}/s; peak RSS worker {result['peak_rss_mb']:.0f} MB, receiver "
            f"{result.get('receiver_rss_mb', 0):.0f} MB, sandbox {result['sandbox_rss_mb']:.0f} MB "
            f"(target < 1 GB){note()}",
            flush=True,
        )
        print(
            f"  {size:,} seconds per task: "
            + ", ".join(f"{task} {seconds:.1f}" for task, seconds in result["task_s"].items()),
            flush=True,
        )
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print("RESULT " + json.dumps(child(argv[1], int(argv[2]), "--limits" in argv)), flush=True)
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.scale_bench")
    parser.add_argument("--sizes", default=None, help="NXCLOUD numbers per run")
    parser.add_argument("--accuauth-sizes", default=None, help="AccuAuth tasks")
    parser.add_argument("--vendor-limits", action="store_true", help="strict sandbox, documented query limit")
    args = parser.parse_args(argv)
    if args.vendor_limits:
        return vendor_limits(_sizes(args.sizes) if args.sizes else list(LIMITS_SIZES))
    args.sizes = args.sizes if args.sizes is not None else ",".join(map(str, NXCLOUD_SIZES))
    if args.accuauth_sizes is None:
        args.accuauth_sizes = ",".join(map(str, ACCUAUTH_SIZES))
    plan = [("nxcloud", n) for n in _sizes(args.sizes)] + [
        ("accuauth", n) for n in _sizes(args.accuauth_sizes)
    ]
    failures = 0
    by_vendor: dict[str, list[dict]] = {"nxcloud": [], "accuauth": []}
    for vendor, size in plan:
        t0 = time.perf_counter()
        result = _run_child(vendor, size)
        if result is None:
            failures += 1
            continue
        ok = result["state"] == "success" and result["loaded"] == size
        failures += not ok
        by_vendor[vendor].append(result)
        dag_id = "nxcloud_number_check" if vendor == "nxcloud" else "accuauth_phone_check"
        unit = "numbers" if vendor == "nxcloud" else "tasks"
        print(
            f"FIGURE scale {vendor} {size:,} {unit}: {dag_id} {result['state']} "
            f"({result['loaded']:,} loaded{'' if ok else ', INCOMPLETE ' + str(result['failed_tasks'])}) "
            f"in {result['wall_s']:.1f} s (child {time.perf_counter() - t0:.0f} s with setup); "
            f"peak worker RSS {result['peak_rss_mb']:.0f} MB; largest XCom {_kb(result['xcom_max_bytes'])} "
            f"({result['xcom_max_at']}, {result['xcoms']} XComs); largest trigger kwargs "
            f"{_kb(result['trigger_kwargs_max_bytes'])}, largest trigger event {_kb(result['trigger_event_max_bytes'])} "
            f"({len(result['triggers'])} deferred); largest kwargs in the trigger table "
            f"{_kb(result['trigger_table_kwargs_max_bytes'])} ({result['trigger_table_kwargs_max_at']})",
            flush=True,
        )
        if result.get("task_s"):
            print(
                f"  {vendor} {size:,} seconds per task: "
                + ", ".join(f"{task} {seconds:.1f}" for task, seconds in result["task_s"].items()),
                flush=True,
            )
    if ONE_MILLION not in _sizes(args.sizes):
        largest = max(by_vendor["nxcloud"], key=lambda r: r["size"], default=None)
        where = f"the {BENCH_BUDGET_S:,} s make bench gives this bench on this {os.cpu_count()}-core machine"
        if largest is None:
            why = f"it is left out to stay within {where}"
        else:
            estimate_s = ONE_MILLION / largest["size"] * largest["wall_s"]
            why = (
                f"at the {largest['size'] / largest['wall_s']:,.0f} numbers/s of the {largest['size']:,} run it "
                f"would take about {estimate_s / 60:.0f} min, "
                + (f"beyond {where}" if estimate_s > BENCH_BUDGET_S else f"left out to keep within {where}")
            )
        print(
            f"NOTE the {ONE_MILLION:,}-number NXCLOUD run is not run by default: {why}; flatness is judged "
            "on the sizes run. Add it with --sizes 10000,100000,1000000."
        )
    for vendor, results in by_vendor.items():
        project_to = ONE_MILLION if vendor == "nxcloud" else None
        for line in _verdicts(vendor, results, project_to) if results else []:
            print(line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
