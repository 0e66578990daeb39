"""End to end: numbers checked per minute through ``nxcloud_number_check`` for 10,000 numbers.

The numbers come from a file by ``numbers_uri``, as a list this size does in use (the form's
pasted field stops at about 1,000 numbers).

Everything real and local: ``dag.test()`` in a fresh ``AIRFLOW_HOME`` (SQLite metadata), a
throw-away warehouse database on the embedded PostgreSQL (or ``WAREHOUSE_DSN``'s server), the
vendor sandbox and the standalone webhook receiver as subprocesses. The sandbox runs a
compressed vendor clock (one vendor minute = 0.05 s) and no query rate limit (the query-sync
benchmark measures the limit). Measured: the DAG run from trigger to the end of ``validate``
(prepare → estimate → submit 2 × 5,000 → wait for the 10,000 pushes → reconcile over the query
API → load → validate), with every loaded row checked afterwards.

Baseline, same run, same sandbox and receiver: the raw vendor round trip for 10,000 other
numbers with a bare HTTP client (no Airflow, no warehouse work of ours beyond the receiver):
two signed submits with drUrl = the receiver, then wait until the receiver has stored all
10,000 pushes. That is the ceiling of the pipeline: it can only add work to it.

``python -m bench.e2e_bench [numbers]``
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from bench.airflow_home import fresh_airflow_home, stop_processes
from bench.sizes import note, pick
from phonecheck_dev.local import free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[1]
NUMBERS = pick(10_000, 200)
PER_BATCH = 5_000
ACCESS_KEY, ACCESS_SECRET, APPKEY = "sandbox-access-key", "sandbox-access-secret", "sandbox-appkey"


def _count_pushes(dsn: str, prefix: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT count(*) FROM raw.webhook_event WHERE endpoint = 'nxcloud_number_check' "
            "AND dedupe_key LIKE %s",
            (prefix + "%",),
        ).fetchone()[0]


def baseline(base: str, dr_url: str, dsn: str, phones: list[str], per_batch: int) -> float:
    """Bare client: signed submits + every push stored by the receiver. Returns seconds."""
    import requests

    from phonecheck.signing import canonical_json, signed_headers

    prefix = f"raw{secrets.token_hex(3)}-"
    t0 = time.perf_counter()
    with requests.Session() as http:
        for i in range(0, len(phones), per_batch):
            body = canonical_json(
                {"phone": ",".join(phones[i : i + per_batch]), "batchNo": f"{prefix}{i // per_batch}",
                 "checkLevel": 1, "drUrl": dr_url, "appkey": APPKEY}
            )  # fmt: skip
            headers = signed_headers(
                access_key=ACCESS_KEY, secret=ACCESS_SECRET, action="numbercheck", biz_type="1", body=body
            )
            answer = http.post(f"{base}/nxcloud/api/number/check", data=body.encode(), headers=headers).json()
            if answer.get("code") != 0:
                raise RuntimeError(f"baseline submit refused: {answer}")
    while _count_pushes(dsn, prefix) < len(phones):
        if time.perf_counter() - t0 > 600:
            raise RuntimeError("baseline: pushes did not all arrive within 600 s")
        time.sleep(0.05)
    return time.perf_counter() - t0


def main(argv: list[str]) -> int:
    numbers = int(argv[0]) if argv else NUMBERS
    home = fresh_airflow_home("bench-e2e-airflow-")
    (home / "inputs").mkdir()
    os.environ["PHONECHECK_NUMBERS_URI_PREFIXES"] = str(home / "inputs") + "/"
    per_batch = min(PER_BATCH, max(1, numbers // 2))

    import psycopg

    from phonecheck import warehouse

    server_dsn = warehouse.resolve_dsn()
    procs: list[subprocess.Popen] = []
    try:
        with warehouse.throwaway_database(server_dsn, prefix="phonecheck_bench_e2e") as dsn:
            warehouse.migrate(dsn)
            with psycopg.connect(dsn) as conn:
                conn.execute(
                    "INSERT INTO ops.nxcloud_price_list (region_code, check_level, price, currency, note) "
                    "VALUES ('MX', 1, 0.0040, 'USD', 'bench')"
                )

            sandbox_port, receiver_port = free_port(), free_port()
            base = f"http://127.0.0.1:{sandbox_port}"
            token = "bench-" + secrets.token_urlsafe(16)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "phonecheck.sandbox", "--port", str(sandbox_port),
                     "--vendor-minute-seconds", "0.05"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
            receiver_env = {
                **os.environ,
                "WAREHOUSE_DSN": dsn,
                "TELCO_WEBHOOK_TOKEN": token,
                "RECEIVER_PORT": str(receiver_port),
                "RECEIVER_SPOOL_DIR": str(home / "spool"),
                "RECEIVER_ACCESS_LOG": "0",
            }
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "phonecheck.receiver"], cwd=ROOT, env=receiver_env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
            receiver_base = f"http://127.0.0.1:{receiver_port}/telco-webhooks"
            wait_for_http(f"{base}/_sandbox/health", 60, procs[0], "sandbox")
            wait_for_http(f"{receiver_base}/healthz", 60, procs[1], "receiver")

            os.environ.update(
                {
                    "WAREHOUSE_DSN": dsn,
                    "AIRFLOW_CONN_WAREHOUSE": warehouse.airflow_connection_json(dsn),
                    "AIRFLOW_CONN_NXCLOUD_DEFAULT": json.dumps(
                        {
                            "conn_type": "nxcloud",
                            "host": f"{base}/nxcloud",
                            "login": ACCESS_KEY,
                            "password": ACCESS_SECRET,
                            # auto-approve: the operator's setting, not the run's form
                            "extra": {
                                "appkey": APPKEY,
                                "query_min_interval_s": 0,
                                "auto_approve_up_to": 10**9,
                            },
                        }
                    ),  # fmt: skip
                    "TELCO_WEBHOOK_BASE_URL": receiver_base,
                    "TELCO_WEBHOOK_TOKEN": token,
                }
            )
            t0 = time.perf_counter()
            from airflow.dag_processing.dagbag import DagBag
            from airflow.utils import db

            db.initdb()
            dag = DagBag(dag_folder=str(ROOT / "dags")).dags["nxcloud_number_check"]
            print(f"setup (not measured): Airflow metadata + DagBag {time.perf_counter() - t0:.1f} s")

            dr_url = f"{receiver_base}/nxcloud/number-check/{token}"
            raw_phones = [f"525514{i:06d}" for i in range(numbers)]
            base_s = baseline(base, dr_url, dsn, raw_phones, per_batch)
            print(f"baseline: {numbers:,} numbers submitted and all pushes stored in {base_s:.1f} s")

            numbers_file = home / "inputs" / "numbers.txt"
            numbers_file.write_text("".join(f"+525512{i:06d}\n" for i in range(numbers)))
            conf = {
                "numbers_uri": f"file://{numbers_file}",
                "check_level": "basic",
                "batch_label": "e2e",
                "budget": None,
                "wait_poll_seconds": 0.5,
                "wait_timeout_minutes": 10,
                "max_per_chunk": per_batch,
            }
            t0 = time.perf_counter()
            run = dag.test(run_conf=conf)
            dag_s = time.perf_counter() - t0
            state = str(getattr(run.state, "value", run.state))
            tasks = {
                ti.task_id: (ti.end_date - ti.start_date).total_seconds()
                for ti in run.get_task_instances()
                if ti.start_date and ti.end_date
            }
            with psycopg.connect(dsn) as conn:
                loaded, with_push, distinct = conn.execute(
                    "SELECT count(*), count(raw_event_id), count(DISTINCT phone) FROM telco.nxcloud_number_check "
                    "WHERE batch_no LIKE 'e2e-%%'"
                ).fetchone()
            print(f"DAG run {state} in {dag_s:.1f} s; per task (s): " + ", ".join(f"{k} {v:.1f}" for k, v in tasks.items()))  # fmt: skip
            print(f"loaded {loaded:,} rows ({distinct:,} numbers, {with_push:,} from pushes)")
            if state != "success" or loaded != numbers or distinct != numbers:
                print("FAILED: the run did not load every number exactly once")
                return 1
    finally:
        stop_processes(procs)
        warehouse.stop_embedded()  # only if this process started it

    per_min, ceiling = numbers / dag_s * 60, numbers / base_s * 60
    print(
        f"FIGURE e2e: {numbers:,} numbers through nxcloud_number_check (dag.test, numbers_uri, basic level, "
        f"batches of {per_batch:,}, vendor minute 0.05 s, no query limit) in {dag_s:.1f} s = {per_min:,.0f} numbers/min; "
        f"baseline raw vendor round trip (bare signed submits + all pushes stored by the same receiver) "
        f"{base_s:.1f} s = {ceiling:,.0f} numbers/min; pipeline at {per_min / ceiling:.0%} of the ceiling{note()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
