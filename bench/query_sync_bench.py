"""Query API paging at the vendor's rate limit: 10,000 results (2 batches x 5,000 = 100 pages of 100).

``NxCloudClient.iter_query_results`` (page 1, then the other pages ``query_concurrency`` = 4 at a
time, every call spaced by the connection's ``query_min_interval_s``) against the sandbox over
real HTTP, with the sandbox enforcing its own minimum interval between queries (a query too soon
is answered code 88 "too frequent" and retried, which would show as extra calls).

Baseline, same run, same sandbox and spacing: sequential paging (one page after the other,
``concurrency=1``), and the floor the rate limit allows, (100 - 1) x the interval.

The vendor's newer documents allow one query every 3 s: 100 calls then take at least 297 s. The
benchmark compresses the interval (``QUERY_BENCH_INTERVAL_S``, default 0.1 s on the sandbox and
0.12 s on the connection: a 20 % margin, since arrival jitter of a few ms is a large share of a
compressed interval) and reports both the measured time and the time scaled to 3 s.

``python -m bench.query_sync_bench``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime

import httpx

from bench.sizes import note, pick
from phonecheck_dev.local import free_port

NUMBERS = pick(10_000, 400, env="QUERY_BENCH_NUMBERS")
PER_BATCH = min(5_000, NUMBERS // 2)
VENDOR_INTERVAL_S = 3.0  # the newer vendor docs: one query every 3 s
SANDBOX_INTERVAL_S = float(os.environ.get("QUERY_BENCH_INTERVAL_S", "0.1"))
CLIENT_INTERVAL_S = SANDBOX_INTERVAL_S * 1.2  # margin: scheduling jitter on a busy box is ms
ACCESS_KEY, ACCESS_SECRET, APPKEY = "sandbox-access-key", "sandbox-access-secret", "sandbox-appkey"


def _start_sandbox() -> tuple[subprocess.Popen, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "phonecheck.sandbox", "--port", str(port), "--vendor-minute-seconds", "0.05"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            httpx.get(f"{base}/_sandbox/health").raise_for_status()
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("sandbox did not start")


def page_all(hook, batches: list[str], day, concurrency: int) -> tuple[float, int, list[str]]:
    """Every row of every batch; returns (seconds, query calls, phones)."""
    from phonecheck.nxcloud.client import QueryStats

    calls_before = hook.api_calls["query"]
    phones: list[str] = []
    t0 = time.perf_counter()
    for batch in batches:
        stats = QueryStats()
        for page in hook.iter_query_results(batch, day, concurrency=concurrency, stats=stats):
            phones.extend(row["phone"] for row in page)
    return time.perf_counter() - t0, hook.api_calls["query"] - calls_before, phones


def main() -> int:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-query-airflow-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    proc, base = _start_sandbox()
    try:
        for conn_id, interval in (("NXCLOUD_BENCH", CLIENT_INTERVAL_S), ("NXCLOUD_BENCH_FREE", 0)):
            os.environ[f"AIRFLOW_CONN_{conn_id}"] = json.dumps(
                {
                    "conn_type": "nxcloud",
                    "host": f"{base}/nxcloud",
                    "login": ACCESS_KEY,
                    "password": ACCESS_SECRET,
                    "extra": {"appkey": APPKEY, "query_min_interval_s": interval},
                }
            )
        from phonecheck_airflow.hooks.nxcloud import NxCloudHook

        control = httpx.Client(base_url=f"{base}/_sandbox", timeout=60)
        control.post("/reset").raise_for_status()
        hook = NxCloudHook("nxcloud_bench", query_concurrency=4).get_client()
        phones = [f"525512{i:06d}" for i in range(NUMBERS)]
        batches = []
        for i in range(0, NUMBERS, PER_BATCH):
            batch = f"qbench-{i // PER_BATCH}"
            hook.submit_numbers(phones[i : i + PER_BATCH], batch_no=batch, check_level=1)
            batches.append(batch)
        control.post("/settings", json={"query_min_interval_s": SANDBOX_INTERVAL_S}).raise_for_status()
        day = datetime.fromtimestamp(control.get("/clock").json()["now_ms"] / 1000, UTC).date()

        results = {}
        for name, concurrency in (("concurrent", 4), ("sequential", 1)):
            # a fresh hook per mode: its own limiter, nothing carried over
            mode_hook = NxCloudHook("nxcloud_bench", query_concurrency=concurrency).get_client()
            before = len(control.get("/calls", params={"event": "nxcloud.query"}).json())
            seconds, calls, got = page_all(mode_hook, batches, day, concurrency)
            answers = control.get("/calls", params={"event": "nxcloud.query"}).json()[before:]
            refused = sum(1 for c in answers if c["answer"].get("code") != 0)
            if sorted(got) != sorted(phones):
                print(f"{name}: got {len(got)} rows, {len(set(got))} distinct, expected {NUMBERS}")
                return 1
            results[name] = (seconds, calls, refused)
            print(f"{name:>10}: {calls} query calls ({refused} refused as too frequent) in {seconds:.2f} s")
        # for reference: what concurrency buys when there is no limit (the sandbox's default)
        control.post("/settings", json={"query_min_interval_s": 0}).raise_for_status()
        for name, concurrency in (("no limit, concurrent", 4), ("no limit, sequential", 1)):
            free_hook = NxCloudHook("nxcloud_bench_free", query_concurrency=concurrency).get_client()
            seconds, calls, got = page_all(free_hook, batches, day, concurrency)
            results[name] = (seconds, calls, 0)
            print(f"{name:>10}: {calls} query calls in {seconds:.2f} s ({len(set(got)):,} distinct rows)")
        control.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    seconds, calls, refused = results["concurrent"]
    seq_seconds, seq_calls, seq_refused = results["sequential"]
    minimum = NUMBERS // 100
    floor = (minimum - 1) * CLIENT_INTERVAL_S
    print(
        f"FIGURE query sync: {NUMBERS:,} results in {calls} API calls ({refused} refused as too frequent, "
        f"minimum {minimum}) in {seconds:.2f} s at a {CLIENT_INTERVAL_S:.3f} s client / "
        f"{SANDBOX_INTERVAL_S:.3f} s sandbox minimum interval (compressed from the vendor's 3 s) = "
        f"{floor / seconds:.0%} of the rate-limit floor {floor:.2f} s; baseline sequential paging "
        f"{seq_calls} calls in {seq_seconds:.2f} s (x{seq_seconds / seconds:.2f}); at the vendor's 3 s: "
        f"~{calls * VENDOR_INTERVAL_S:.0f} s (floor {(minimum - 1) * VENDOR_INTERVAL_S:.0f} s){note()}"
    )
    free, free_seq = results["no limit, concurrent"][0], results["no limit, sequential"][0]
    print(
        f"(reference, not the figure: with no rate limit the same paging takes {free:.2f} s concurrent vs "
        f"{free_seq:.2f} s sequential; at the limit the interval, not the round trip, sets the pace)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
