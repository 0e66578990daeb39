"""10,000 pending AccuAuth tasks held by ONE trigger, against the vendor sandbox over real HTTP.

Measures, for the process running the trigger (a child process, like a triggerer):
requests/s it sent to the vendor, CPU seconds, peak and idle RSS, how many vendor calls the
wait made (vs the minimum: one per PENDING answer + one final per task), the serialised
trigger kwargs and event payload sizes. Worker slots held while waiting: the sensor's
``execute`` raises ``TaskDeferred`` (checked here), so 0.

Setup (not measured): a throw-away warehouse, the sandbox in a subprocess with every task
PENDING for ``PENDING_POLLS`` polls, 10,000 submits through the async client, bookkeeping rows
written in bulk.

``python -m bench.accuauth_wait_bench [tasks] [max_requests_per_second]``
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
from psycopg.types.json import Jsonb

from bench.sizes import note, pick
from phonecheck_dev.local import free_port

ROOT = Path(__file__).resolve().parents[1]
TASKS = 10_000
MAX_RPS = 400.0
PENDING_POLLS = 1
API_ID, API_SECRET = "sandbox-api-id", "sandbox-api-secret"


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _dump(payload: dict) -> str:
    path = Path(f"/tmp/accuauth-bench-payload-{os.getpid()}.json")
    path.write_text(json.dumps(payload))
    return str(path)


# ---- child: the "triggerer" ---------------------------------------------------------------------
def child(kwargs_json: str) -> None:
    from phonecheck_airflow.triggers.accuauth import AccuAuthTaskTrigger

    baseline_rss = _rss_mb()
    kwargs = json.loads(kwargs_json)
    trigger = AccuAuthTaskTrigger(**kwargs)
    samples: list[float] = []

    async def sample() -> None:
        while True:
            samples.append(_rss_mb())
            await asyncio.sleep(0.25)

    async def main() -> dict:
        sampler = asyncio.create_task(sample())
        cpu0, t0 = time.process_time(), time.perf_counter()
        events = [e async for e in trigger.run()]
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        sampler.cancel()
        payload = events[0].payload
        return {
            "events": len(events),
            "wall_s": wall,
            "cpu_s": cpu,
            "baseline_rss_mb": baseline_rss,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "median_rss_mb": sorted(samples)[len(samples) // 2] if samples else None,
            "payload_bytes": len(json.dumps(payload)),
            "payload_file": _dump(payload),
            "stats": payload.get("stats"),
            "status": payload.get("status"),
            "message": payload.get("message"),
        }

    print("RESULT " + json.dumps(asyncio.run(main())), flush=True)


# ---- parent -------------------------------------------------------------------------------------
async def _submit_all(host: str, phones: list[str]) -> list[dict]:
    from phonecheck.accuauth.api import AsyncAccuAuthClient

    sem = asyncio.Semaphore(32)
    async with AsyncAccuAuthClient(host, API_ID, API_SECRET, max_connections=32) as client:

        async def one(phone: str) -> dict:
            async with sem:
                return (await client.submit(phone)).payload

        return await asyncio.gather(*(one(p) for p in phones))


def _seed(dsn: str, host: str, phones: list[str]) -> int:
    from phonecheck.loader import upsert

    answers = asyncio.run(_submit_all(host, phones))
    now = datetime.now(UTC)
    with psycopg.connect(dsn) as conn:
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY ops.number_check_submission (vendor, task_id, request_id, region_code, phones, phone_count, "
                "params, status, response, run_id, submitted_at) FROM STDIN"
            ) as copy,
        ):
            for phone, answer in zip(phones, answers, strict=True):
                copy.write_row(
                    ("accuauth", answer["task_id"], answer["request_id"], "MX", [phone], 1, Jsonb({}), "pending",
                     Jsonb(answer), "bench", now)
                )  # fmt: skip
        ids = dict(conn.execute("SELECT task_id, submission_id FROM ops.number_check_submission"))
        rows = [
            {"task_id": a["task_id"], "request_id": a["request_id"], "phone_number": p, "e164": "+" + p,
             "status": "PENDING", "submitted_at": now, "expires_at": now + timedelta(hours=24), "source": "submit",
             "submission_id": ids[a["task_id"]]}
            for p, a in zip(phones, answers, strict=True)
        ]  # fmt: skip
        upsert(conn, "telco.accuauth_phone_check", rows)
        conn.commit()
        return max(ids.values())


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        child(argv[1])
        return 0
    tasks = int(argv[0]) if argv else pick(TASKS, 100)
    max_rps = float(argv[1]) if len(argv) > 1 else MAX_RPS

    from phonecheck import warehouse

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "phonecheck.sandbox", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server_dsn = warehouse.resolve_dsn()
    try:
        for _ in range(100):
            try:
                httpx.get(f"{base}/_sandbox/health").raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        httpx.post(f"{base}/_sandbox/reset").raise_for_status()
        httpx.post(
            f"{base}/_sandbox/settings",
            json={"accuauth_pending_polls": PENDING_POLLS, "accuauth_seconds_per_poll": 10**6},
        ).raise_for_status()
        with warehouse.throwaway_database(server_dsn, prefix="phonecheck_bench") as dsn:
            warehouse.migrate(dsn)
            phones = [f"5255{10_000_000 + i:08d}" for i in range(tasks)]
            t0 = time.perf_counter()
            max_id = _seed(dsn, f"{base}/accuauth", phones)
            print(f"seeded {tasks:,} pending tasks in {time.perf_counter() - t0:.1f} s (setup, not measured)")

            env = {
                **os.environ,
                "AIRFLOW_CONN_WAREHOUSE": warehouse.airflow_connection_json(dsn),
                "AIRFLOW_CONN_ACCUAUTH_DEFAULT": json.dumps(
                    {
                        "conn_type": "accuauth",
                        "host": f"{base}/accuauth",
                        "login": API_ID,
                        "password": API_SECRET,
                    }
                ),
            }
            os.environ.update(
                {k: env[k] for k in ("AIRFLOW_CONN_WAREHOUSE", "AIRFLOW_CONN_ACCUAUTH_DEFAULT")}
            )

            # The sensor pokes once and defers: no worker slot is held while the tasks are pending.
            from airflow.sdk.exceptions import TaskDeferred

            from phonecheck_airflow.sensors.accuauth import AccuAuthTasksSensor

            settings = {
                "poll_interval_s": 1.0,
                "max_poll_interval_s": 4.0,
                "max_requests_per_second": max_rps,
            }
            sensor = AccuAuthTasksSensor(
                task_id="wait",
                selector={"run_id": "bench", "max_submission_id": max_id},
                wait_settings=settings,
                deferrable=True,  # as the DAG builds it (Airflow's default_deferrable is False)
            )
            try:
                sensor.execute(context={})
            except TaskDeferred as deferred:
                _, kwargs = deferred.trigger.serialize()
            else:
                print("the sensor finished in the worker instead of deferring: nothing to measure")
                return 1
            slots_held = 0

            calls_before = len(
                httpx.get(f"{base}/_sandbox/calls", params={"event": "accuauth.task_result"}).json()
            )
            proc = subprocess.run(
                [sys.executable, "-m", "bench.accuauth_wait_bench", "--child", json.dumps(kwargs)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                print(proc.stdout[-3000:], proc.stderr[-3000:])
                return 1
            result = json.loads(line[len("RESULT ") :])
            calls = httpx.get(f"{base}/_sandbox/calls", params={"event": "accuauth.task_result"}).json()
            vendor_calls = len(calls) - calls_before
            # what the load task does after the event: the trigger appended every answer verbatim
            # to raw.vendor_answer, the event carries the selector and counts only
            from phonecheck.accuauth.store import WaitSelector, load_wait

            payload = json.loads(Path(result["payload_file"]).read_text())
            t0 = time.perf_counter()
            with psycopg.connect(dsn) as conn:
                load_wait(conn, WaitSelector.from_dict(payload["selector"]))
                load_s = time.perf_counter() - t0
                ok_rows = conn.execute(
                    "SELECT count(*) FROM telco.accuauth_phone_check WHERE status = 'OK'"
                ).fetchone()[0]
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
        if "WAREHOUSE_DSN" not in os.environ:
            warehouse.stop_embedded()

    minimum = tasks * (PENDING_POLLS + 1)
    rps = vendor_calls / result["wall_s"]
    print(json.dumps({**result, "vendor_calls": vendor_calls, "slots_held": slots_held}, indent=2))
    print(
        f"FIGURE waiting: {tasks:,} pending tasks in ONE trigger: {vendor_calls:,} vendor calls "
        f"(minimum {minimum:,}; {result['stats']['retried_calls']} retries) in {result['wall_s']:.1f} s = "
        f"{rps:.0f} req/s (limit {max_rps:g}); trigger process CPU {result['cpu_s']:.1f} s "
        f"({1000 * result['cpu_s'] / max(vendor_calls, 1):.2f} ms/call), RSS baseline "
        f"{result['baseline_rss_mb']:.0f} MB -> peak {result['peak_rss_mb']:.0f} MB; worker slots held "
        f"{slots_held}; trigger kwargs {len(json.dumps(kwargs))} B, event payload "
        f"{result['payload_bytes']} B; loading its {ok_rows:,} results from raw.vendor_answer took {load_s:.2f} s{note()}"
    )
    return 0 if result["events"] == 1 and result["status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
