"""Load the standalone receiver (``python -m phonecheck.receiver``) and report req/s and latency.

Not a test. Starts the receiver as a subprocess on a throw-away database of the warehouse server
(embedded unless ``WAREHOUSE_DSN`` is set), persist-before-ack on (every 200 is a committed,
``synchronous_commit = on`` row), then runs:

* closed loop: ``--connections`` keep-alive connections, each sending the next request as soon as
  the previous answer arrived, for ``--seconds``: the throughput ceiling;
* open loop: requests offered at ``--rate`` per second regardless of answers (latency measured
  from the scheduled send time, so queueing counts): latency at a given load.

Requests are number-check pushes (the vendor's documented shape) with unique keys; ``--duplicates`` of them
re-send an earlier key (a vendor retry). The client speaks raw HTTP/1.1 over asyncio streams
(uvloop) to keep its own CPU cost low: server, PostgreSQL and client share this machine.

    .venv/bin/python bench/receiver_load.py --seconds 10 --connections 16 --rate 2000

``--baseline DIR`` also runs the receiver of another checkout (e.g. ``/work/main``, with its own
``.venv``) in the same run, alternating with this one ``--repeat`` times, and prints this
receiver's throughput as a ratio of the baseline's (the durability work must cost <= 10%).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.sizes import note, pick  # noqa: E402  (after the path: also run as a script)


def make_request(host: str, port: int, token: str, i: int) -> bytes:
    body = json.dumps(
        {
            "messageId": f"m-{i}",
            "code": 0,
            "msg": "success",
            "batchNo": "bench-batch",
            "phone": f"86150{i:08d}",
            "data": {
                "basic": {"preCheck": "YES", "regionCode": "CN", "numberType": 2, "carrier": "China Telecom"}
            },
            "cost": {"price": 0.1912, "currency": "USD"},
        }
    ).encode()
    head = (
        f"POST /telco-webhooks/nxcloud/number-check/{token} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


class Keys:
    def __init__(self, duplicates: float) -> None:
        self.next = 0
        self.duplicates = duplicates
        self.rng = random.Random(7)

    def take(self) -> int:
        if self.next and self.rng.random() < self.duplicates:
            return self.rng.randrange(self.next)
        self.next += 1
        return self.next - 1


async def closed_loop(host, port, token, connections, seconds, keys) -> tuple[list[float], dict, float]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        while time.perf_counter() < stop_at:
            request = make_request(host, port, token, keys.take())
            t0 = time.perf_counter()
            writer.write(request)
            status = await read_response(reader)
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return latencies, statuses, time.perf_counter() - start


async def open_loop(
    host, port, token, rate, seconds, keys, max_connections=256
) -> tuple[list[float], dict, float]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    idle: asyncio.Queue = asyncio.Queue()
    opened = 0

    async def one(scheduled: float) -> None:
        nonlocal opened
        if idle.empty() and opened < max_connections:
            opened += 1
            idle.put_nowait(await asyncio.open_connection(host, port))
        reader, writer = await idle.get()
        writer.write(make_request(host, port, token, keys.take()))
        status = await read_response(reader)
        latencies.append(time.perf_counter() - scheduled)
        statuses[status] = statuses.get(status, 0) + 1
        idle.put_nowait((reader, writer))

    start = time.perf_counter()
    tasks: list[asyncio.Task] = []
    total = int(rate * seconds)
    for n in range(total):
        scheduled = start + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return latencies, statuses, time.perf_counter() - start


def percentile(ms: list[float], p: float) -> float:
    return ms[min(len(ms) - 1, int(p * len(ms)))]


def summary(name: str, latencies: list[float], statuses: dict, wall_seconds: float) -> dict:
    ms = sorted(x * 1000 for x in latencies)
    stats = {
        "rps": len(ms) / wall_seconds,
        "p50": percentile(ms, 0.50),
        "p95": percentile(ms, 0.95),
        "p99": percentile(ms, 0.99),
        "max": ms[-1],
        "statuses": statuses,
    }
    print(
        f"  {name}: {stats['rps']:,.0f} req/s answered, statuses {statuses}, p50 {stats['p50']:.2f} ms, "
        f"p95 {stats['p95']:.2f} ms, p99 {stats['p99']:.2f} ms, max {stats['max']:.2f} ms, "
        f"mean {statistics.fmean(ms):.2f} ms",
        flush=True,
    )
    return stats


def receiver_env(dsn: str, token: str, port: int, pool: int) -> dict[str, str]:
    return {
        **os.environ,
        "WAREHOUSE_DSN": dsn,
        "TELCO_WEBHOOK_TOKEN": token,
        "RECEIVER_PORT": str(port),
        "RECEIVER_DB_POOL_SIZE": str(pool),
        "RECEIVER_ACCESS_LOG": os.environ.get("RECEIVER_ACCESS_LOG", "1"),
        "RECEIVER_SPOOL_DIR": f"/tmp/phonecheck-bench-spool-{port}",
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (from /proc; Linux only)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds(dsn: str) -> float:
    """CPU of the receiver's PostgreSQL sessions (same machine: /proc), 0 when unreadable."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            pids = [
                row[0]
                for row in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'phonecheck-receiver'"
                )
            ]
        return sum(cpu_seconds(pid) for pid in pids)
    except (OSError, psycopg.Error):
        return 0.0


def serve_without_db() -> None:
    """The ceiling: the standalone receiver's app and uvicorn settings, the inbox write replaced
    by a no-op (token check, body read, dedupe-key decoding and the answer all stay)."""
    import uvicorn

    from phonecheck.receiver.app import DEFAULT_PREFIX, ReceiverConfig, create_app
    from phonecheck.receiver.server import ServerLimits, configure_logging, guarded_protocol
    from phonecheck.receiver.store import StoreResult

    async def no_write(event):  # noqa: ANN001, ARG001
        return StoreResult(event_id=0, inserted=True)

    async def up() -> bool:
        return True

    token = os.environ["TELCO_WEBHOOK_TOKEN"]
    config = ReceiverConfig.from_env(token_provider=lambda: token, dsn_provider=str, body_timeout_s=None)
    app = create_app(DEFAULT_PREFIX, config)
    limits = ServerLimits.from_env().fitted_to_fd_limit()
    app.state.receiver.store.insert = no_write
    app.state.receiver.store.ping = up
    app.state.receiver.ensure_background = lambda: None  # no spool replay loop either
    # as phonecheck/receiver/__main__.py does (logging, loop, parser, no uvicorn access log)
    configure_logging(access_log=os.environ.get("RECEIVER_ACCESS_LOG", "1") != "0")
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ["RECEIVER_PORT"]),
        loop="uvloop",
        http=guarded_protocol(limits),
        timeout_keep_alive=limits.keep_alive_s,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )


def run_server(
    command: list[str], env: dict, port: int, args, keys: Keys, label: str, cwd: Path | None = None
) -> dict:
    import uvloop

    log = open(f"/tmp/phonecheck-bench-receiver-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=cwd)
    try:
        base = f"http://127.0.0.1:{port}/telco-webhooks"
        for _ in range(600):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"{label} did not start, see {log.name}")
        token = env["TELCO_WEBHOOK_TOKEN"]
        print(f" {label}:", flush=True)
        # warm-up: connections, prepared statements, pool
        uvloop.run(closed_loop("127.0.0.1", port, token, args.connections, 2, keys))
        dsn = env.get("WAREHOUSE_DSN", "")
        cpu0, db0 = cpu_seconds(proc.pid), backend_cpu_seconds(dsn)
        lat, st, wall = uvloop.run(
            closed_loop("127.0.0.1", port, token, args.connections, args.seconds, keys)
        )
        closed = summary(f"closed loop, {args.connections} connections", lat, st, wall)
        closed["cpu_us"] = (cpu_seconds(proc.pid) - cpu0) / len(lat) * 1e6
        closed["db_cpu_us"] = (backend_cpu_seconds(dsn) - db0) / len(lat) * 1e6
        print(
            f"  CPU per request (closed loop): receiver process {closed['cpu_us']:.0f} us, "
            f"its PostgreSQL sessions {closed['db_cpu_us']:.0f} us",
            flush=True,
        )
        lat, st, wall = uvloop.run(open_loop("127.0.0.1", port, token, args.rate, args.seconds, keys))
        opened = summary(f"open loop, {args.rate:.0f} req/s offered", lat, st, wall)
        return {"closed": closed, "open": opened}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=pick(10, 1))
    parser.add_argument("--connections", type=int, default=pick(32, 4))
    parser.add_argument("--rate", type=float, default=pick(2000, 200))
    parser.add_argument("--duplicates", type=float, default=0.2)
    parser.add_argument("--pool", type=int, default=8, help="receiver DB pool size")
    parser.add_argument("--serve-without-db", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout to compare with")
    parser.add_argument("--repeat", type=int, default=2, help="alternations with --baseline")
    args = parser.parse_args()
    if args.serve_without_db:
        serve_without_db()
        return 0
    if args.baseline is not None:
        return compare_with_baseline(args)

    from phonecheck import warehouse

    load_avg = os.getloadavg()
    print(
        f"load average at start {load_avg}; {os.cpu_count()} CPUs shared by receiver, PostgreSQL, this client"
    )
    server_dsn = warehouse.resolve_dsn()
    token = secrets.token_urlsafe(24)
    with warehouse.throwaway_database(server_dsn, prefix="phonecheck_bench") as dsn:
        warehouse.migrate(dsn)
        port = 18000 + secrets.randbelow(2000)
        env = receiver_env(dsn, token, port, args.pool)
        keys = Keys(args.duplicates)
        real = run_server(
            [sys.executable, "-m", "phonecheck.receiver"],
            env,
            port,
            args,
            keys,
            "make receiver (persist before ack)",
        )
        with psycopg.connect(dsn) as conn:
            rows, deliveries, distinct = conn.execute(
                "SELECT count(*), sum(delivery_count), count(DISTINCT dedupe_key) FROM raw.webhook_event"
            ).fetchone()
        print(f"  inbox: {rows} rows ({distinct} distinct keys) for {deliveries} acknowledged deliveries")
        env["RECEIVER_PORT"] = str(port + 1)
        ceiling = run_server(
            [sys.executable, "-m", "bench.receiver_load", "--serve-without-db"],
            env,
            port + 1,
            args,
            Keys(args.duplicates),
            "same app, inbox write removed (ceiling)",
        )
    closed, opened = real["closed"], real["open"]
    met = closed["rps"] >= 5000 and opened["p99"] < 10 and opened["rps"] >= 0.98 * args.rate
    print(
        f"FIGURE receiver: closed loop ({args.connections} conns, {args.duplicates:.0%} duplicates, persist-before-ack) "
        f"{closed['rps']:,.0f} req/s p50 {closed['p50']:.1f} ms p99 {closed['p99']:.1f} ms "
        f"({closed['cpu_us']:.0f} us receiver CPU/req); open loop {args.rate:,.0f} req/s offered: "
        f"{opened['rps']:,.0f} answered/s p50 {opened['p50']:.1f} ms p99 {opened['p99']:.1f} ms; "
        f"ceiling without the DB write: {ceiling['closed']['rps']:,.0f} req/s closed "
        f"({closed['rps'] / ceiling['closed']['rps']:.0%} of it, {ceiling['closed']['cpu_us']:.0f} us CPU/req), "
        f"open-loop p99 {ceiling['open']['p99']:.1f} ms; target >= 5,000 req/s and p99 < 10 ms at "
        f"{args.rate:,.0f} req/s: {'MET' if met else 'NOT MET'}; load avg {load_avg[0]:.1f}{note()}"
    )
    return 0


def compare_with_baseline(args) -> int:
    """This receiver and the baseline checkout's, alternately, on fresh databases of one server."""
    from phonecheck import warehouse

    baseline_python = args.baseline / ".venv" / "bin" / "python"
    if not baseline_python.exists():
        raise SystemExit(f"{baseline_python} not found: run `make venv` in {args.baseline}")
    print(f"load average at start {os.getloadavg()}; {os.cpu_count()} CPUs; baseline {args.baseline}")
    server_dsn = warehouse.resolve_dsn()
    token = secrets.token_urlsafe(24)
    results: dict[str, list[dict]] = {"baseline": [], "this": []}
    for round_no in range(args.repeat):
        for label in ("baseline", "this") if round_no % 2 == 0 else ("this", "baseline"):
            with warehouse.throwaway_database(server_dsn, prefix="phonecheck_bench") as dsn:
                port = 18000 + secrets.randbelow(2000)
                env = receiver_env(dsn, token, port, args.pool)
                if label == "baseline":
                    # the baseline's own code first, whatever this venv has installed
                    env["PYTHONPATH"] = os.pathsep.join(
                        str(args.baseline / d) for d in ("include", "plugins", "tools")
                    )
                    command, cwd = [str(baseline_python), "-m", "phonecheck.receiver"], args.baseline
                else:
                    warehouse.migrate(dsn)
                    command, cwd = [sys.executable, "-m", "phonecheck.receiver"], None
                name = f"{label} receiver, round {round_no + 1}"
                results[label].append(run_server(command, env, port, args, Keys(args.duplicates), name, cwd))

    def median(label: str, loop: str, key: str) -> float:
        return statistics.median(r[loop][key] for r in results[label])

    base_rps, this_rps = median("baseline", "closed", "rps"), median("this", "closed", "rps")
    ratio = this_rps / base_rps
    print(
        f"FIGURE receiver vs baseline: closed loop ({args.connections} conns, {args.duplicates:.0%} duplicates, "
        f"median of {args.repeat}) this {this_rps:,.0f} req/s vs baseline {base_rps:,.0f} req/s = {ratio:.0%} "
        f"(receiver {median('this', 'closed', 'cpu_us'):.0f} vs {median('baseline', 'closed', 'cpu_us'):.0f} us "
        f"CPU/req, PostgreSQL sessions {median('this', 'closed', 'db_cpu_us'):.0f} vs "
        f"{median('baseline', 'closed', 'db_cpu_us'):.0f} us); "
        f"open loop {args.rate:,.0f} req/s p99 this {median('this', 'open', 'p99'):.1f} ms vs baseline "
        f"{median('baseline', 'open', 'p99'):.1f} ms; durability cost <= 10%: {'MET' if ratio >= 0.9 else 'NOT MET'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
