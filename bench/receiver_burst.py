"""A vendor's burst: 1,000,000 number-check pushes offered to the receiver as fast as it takes them.

Not a test. Starts ``--instances`` standalone receivers (``python -m phonecheck.receiver``, each
with its own spool, persist-before-ack on) against one throw-away database of the warehouse
server, and offers ``--pushes`` distinct number-check results (the vendor's documented shape)
over ``--connections`` keep-alive connections, each sending its next push as soon as the last was
answered (closed loop: the offered rate is whatever the receiver absorbs). The client behaves
like the vendor: a push not answered 200 (or a broken connection) is sent again; every retry is
counted.

Afterwards the inbox is compared with what was acknowledged: one row per push (nothing lost,
nothing doubled), deliveries counted = deliveries acknowledged, no 5xx, every push answered.
Prints the sustained rate (overall and the slowest 10-second window), latency percentiles and
the receivers' peak RSS.

    .venv/bin/python -m bench.receiver_burst                      # 1,000,000 pushes
    .venv/bin/python -m bench.receiver_burst --pushes 20000       # CI size
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import time
from array import array
from pathlib import Path

import httpx
import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import sizes  # noqa: E402
from bench.receiver_load import make_request, read_response, receiver_env  # noqa: E402

WINDOW_S = 10.0


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Burst:
    """The shared state of the load generator's connections."""

    def __init__(self, pushes: int) -> None:
        self.pushes = pushes
        self.next = 0
        self.acknowledged = 0
        self.retries = 0
        self.broken = 0  # connections that failed mid-request (the push is then sent again)
        self.statuses: dict[int, int] = {}
        self.latency_ms = array("f")
        self.done_at = array("d")  # completion times, for the windowed rate

    def take(self) -> int | None:
        if self.next >= self.pushes:
            return None
        self.next += 1
        return self.next - 1


async def connection(burst: Burst, host: str, port: int, token: str) -> None:
    reader = writer = None
    i = burst.take()
    while i is not None:
        if writer is None:
            reader, writer = await asyncio.open_connection(host, port)
        request = make_request(host, port, token, i)
        t0 = time.perf_counter()
        try:
            writer.write(request)
            status = await read_response(reader)
        except (OSError, asyncio.IncompleteReadError):
            burst.broken += 1
            burst.retries += 1
            writer.close()
            reader = writer = None
            await asyncio.sleep(0.05)
            continue  # the vendor sends it again
        now = time.perf_counter()
        burst.statuses[status] = burst.statuses.get(status, 0) + 1
        if status != 200:
            burst.retries += 1
            await asyncio.sleep(0.05)
            continue
        burst.latency_ms.append((now - t0) * 1000)
        burst.done_at.append(now)
        burst.acknowledged += 1
        i = burst.take()
    if writer is not None:
        writer.close()


async def offer(burst: Burst, ports: list[int], token: str, connections: int, progress_s: float) -> float:
    start = time.perf_counter()

    async def report() -> None:
        last = 0
        while True:
            await asyncio.sleep(progress_s)
            done = burst.acknowledged
            print(
                f"  {time.perf_counter() - start:6.0f} s: {done:,} acknowledged "
                f"({(done - last) / progress_s:,.0f}/s now)",
                flush=True,
            )
            last = done

    reporter = asyncio.get_running_loop().create_task(report())
    try:
        await asyncio.gather(
            *(connection(burst, "127.0.0.1", ports[n % len(ports)], token) for n in range(connections))
        )
    finally:
        reporter.cancel()
    return time.perf_counter() - start


def slowest_window(done_at: array, start: float, wall: float) -> float:
    """Pushes acknowledged per second in the slowest full ``WINDOW_S`` window."""
    windows = int(wall // WINDOW_S)
    if windows < 1:
        return len(done_at) / wall
    counts = [0] * windows
    for t in done_at:
        w = int((t - start) // WINDOW_S)
        if w < windows:
            counts[w] += 1
    return min(counts) / WINDOW_S


def start_receiver(dsn: str, token: str, port: int, pool: int) -> subprocess.Popen:
    env = receiver_env(dsn, token, port, pool)
    env["RECEIVER_ACCESS_LOG"] = os.environ.get("RECEIVER_ACCESS_LOG", "0")
    log = open(f"/tmp/phonecheck-burst-receiver-{port}.log", "w")  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "phonecheck.receiver"], env=env, stdout=log, stderr=log)


def main() -> int:
    import uvloop

    from phonecheck import warehouse

    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=sizes.pick(1_000_000, 2_000))
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--instances", type=int, default=1, help="receivers, each with its own spool")
    parser.add_argument("--pool", type=int, default=8, help="DB pool size per receiver")
    parser.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines")
    args = parser.parse_args()

    print(
        f"load average at start {os.getloadavg()}; {os.cpu_count()} CPUs shared by receiver(s), PostgreSQL, client"
    )
    token = secrets.token_urlsafe(24)
    with warehouse.throwaway_database(warehouse.resolve_dsn(), prefix="phonecheck_burst") as dsn:
        warehouse.migrate(dsn)
        base_port = 20000 + secrets.randbelow(2000)
        ports = [base_port + n for n in range(args.instances)]
        procs = [start_receiver(dsn, token, port, args.pool) for port in ports]
        try:
            for port, proc in zip(ports, procs, strict=True):
                for _ in range(600):
                    if proc.poll() is not None:
                        raise SystemExit(
                            f"receiver on {port} exited, see /tmp/phonecheck-burst-receiver-{port}.log"
                        )
                    try:
                        if (
                            httpx.get(
                                f"http://127.0.0.1:{port}/telco-webhooks/healthz", timeout=1
                            ).status_code
                            == 200
                        ):
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.1)
            burst = Burst(args.pushes)
            print(
                f"offering {args.pushes:,} pushes over {args.connections} connections to {args.instances} receiver(s)",
                flush=True,
            )
            start = time.perf_counter()
            wall = uvloop.run(offer(burst, ports, token, args.connections, args.progress))
            rss = [peak_rss_mb(p.pid) for p in procs]
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=30)
        with psycopg.connect(dsn) as conn:
            rows, distinct, deliveries = conn.execute(
                "SELECT count(*), count(DISTINCT dedupe_key), coalesce(sum(delivery_count), 0) "
                "FROM raw.webhook_event WHERE endpoint = 'nxcloud_number_check'"
            ).fetchone()
    latencies = sorted(burst.latency_ms)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    five_xx = sum(n for status, n in burst.statuses.items() if status >= 500)
    ok = (
        rows == args.pushes
        and distinct == args.pushes
        and deliveries == burst.acknowledged == args.pushes
        and five_xx == 0
        and burst.broken == 0
    )
    rate = burst.acknowledged / wall
    print(
        f"  inbox: {rows:,} rows, {distinct:,} distinct keys, {deliveries:,} deliveries counted; "
        f"acknowledged {burst.acknowledged:,}; statuses {burst.statuses}; resent {burst.retries}; "
        f"broken connections {burst.broken}"
    )
    print(
        f"FIGURE receiver burst: {args.pushes:,} number-check pushes, {args.connections} connections, "
        f"{args.instances} receiver(s): {wall:,.0f} s, sustained {rate:,.0f} pushes/s "
        f"(slowest {WINDOW_S:.0f} s window {slowest_window(burst.done_at, start, wall):,.0f}/s), "
        f"latency p50 {pct(0.5):.1f} ms p99 {pct(0.99):.1f} ms max {latencies[-1]:.0f} ms, "
        f"peak receiver RSS {max(rss):.0f} MB; nothing lost, nothing doubled, no 5xx, every push answered: "
        f"{'YES' if ok else 'NO'}{sizes.note()}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
