"""Scale-out: two standalone receivers, each with its own spool, against one warehouse behind a
(simulated) load balancer; a burst split between them; one receiver SIGKILLed mid-burst and
started again on its spool (a pod restarted with its volume). Nothing acknowledged is lost,
nothing is stored twice (docs/deployment.md, "Several receivers").

The client plays load balancer and vendor at once: pushes alternate between the instances that
are up; a push whose connection breaks or that is not answered 200 goes to the other instance
(the balancer's retry, or the vendor's), and an instance that refuses connections is taken out of
rotation until it is back. A tenth of the pushes are sent a second time to the other instance
(a vendor retry landing elsewhere). Lean for the suite: a few thousand pushes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest

from phonecheck.receiver.spool import Spool
from tests import seed_payloads as seed
from tests.fixtures.ports import reserve_port
from tests.fixtures.receiver import NUMBER_CHECK, PREFIX, REPO_ROOT, receiver_env, wait_until_healthy

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PUSHES = 2000
IN_FLIGHT = 32
RESEND_EVERY = 10  # every tenth push is delivered again, to the other instance
KILL_AT = PUSHES // 3  # acknowledged pushes when instance A is killed
RESTART_AT = 2 * PUSHES // 3  # ... and when it is started again on its spool


class Instance:
    """One ``python -m phonecheck.receiver`` with its own port and spool directory."""

    def __init__(self, name: str, dsn: str, token: str, spool_dir: Path) -> None:
        self.name, self.dsn, self.token, self.spool_dir = name, dsn, token, spool_dir
        self.proc: subprocess.Popen | None = None
        self.base = ""
        self.up = False
        self.acknowledged = 0

    def start(self) -> None:
        port = reserve_port()
        env = receiver_env(self.dsn, self.token, port, self.spool_dir, RECEIVER_ACCESS_LOG="0")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "phonecheck.receiver"],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{port}{PREFIX}"
        wait_until_healthy(self.base, 60, self.proc)
        self.up = True

    def kill(self) -> None:
        assert self.proc is not None
        self.up = False
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def push(n: int) -> tuple[str, dict]:
    """(dedupe key, body) of push ``n``."""
    body = {
        **seed.NUMBER_CHECK_PUSH_BASIC,
        "messageId": f"so-{n}",
        "batchNo": "scale-out",
        "phone": f"52552{n:07d}",
    }
    return f"scale-out|52552{n:07d}|so-{n}", body


async def burst(instances: list[Instance], a: Instance, restart_a) -> tuple[set[str], int, int]:
    """Deliver every push until acknowledged; returns (acknowledged keys, deliveries acknowledged,
    requests broken by the kill)."""
    acked: set[str] = set()
    deliveries = broken = 0
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for n in range(PUSHES):
        queue.put_nowait((n, n))
        if n % RESEND_EVERY == 0:
            queue.put_nowait((n, n + 1))  # the same push again, aimed at the other instance
    killed = restarted = False

    async def deliver(client: httpx.AsyncClient, n: int, turn: int) -> None:
        nonlocal deliveries, broken, killed, restarted
        key, body = push(n)
        while True:
            live = [i for i in instances if i.up] or instances
            target = live[turn % len(live)]
            turn += 1
            base = target.base
            try:
                answer = await client.post(base + NUMBER_CHECK.format(token=target.token), json=body)
            except httpx.ConnectError:
                if target.base == base:  # not restarted meanwhile
                    target.up = False  # the balancer's health check takes it out of rotation
                broken += 1
                continue
            except httpx.TransportError:
                broken += 1  # died with our request in flight: unknown outcome, send again
                continue
            if answer.status_code != 200:
                continue
            acked.add(key)
            deliveries += 1
            target.acknowledged += 1
            if not killed and len(acked) >= KILL_AT:
                killed = True
                a.kill()
            elif killed and not restarted and len(acked) >= RESTART_AT:
                restarted = True
                await asyncio.to_thread(restart_a)
            return

    async def worker() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            while not queue.empty():
                n, turn = queue.get_nowait()
                await deliver(client, n, turn)

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    assert killed and restarted
    return acked, deliveries, broken


def test_two_receivers_split_a_burst_and_one_is_killed_mid_burst(
    fresh_warehouse_dsn, receiver_token, tmp_path
):
    a = Instance("a", fresh_warehouse_dsn, receiver_token, tmp_path / "spool-a")
    b = Instance("b", fresh_warehouse_dsn, receiver_token, tmp_path / "spool-b")
    try:
        a.start()
        b.start()
        acked_by_a_before_kill: list[int] = []

        def restart_a() -> None:
            acked_by_a_before_kill.append(a.acknowledged)
            a.start()  # same spool directory: what a restarted pod finds on its volume

        acked, deliveries, broken = asyncio.run(burst([a, b], a, restart_a))
        acked_by_a_after_restart = a.acknowledged - acked_by_a_before_kill[0]
    finally:
        a.stop()
        b.stop()

    # both instances took a share before the kill, and A again after its restart
    assert acked_by_a_before_kill[0] > 0 and b.acknowledged > 0 and acked_by_a_after_restart > 0
    assert len(acked) == PUSHES
    with psycopg.connect(fresh_warehouse_dsn) as conn:
        rows = dict(
            conn.execute(
                "SELECT dedupe_key, count(*) FROM raw.webhook_event WHERE endpoint = 'nxcloud_number_check' "
                "GROUP BY dedupe_key"
            ).fetchall()
        )
        counted = conn.execute(
            "SELECT sum(delivery_count) FROM raw.webhook_event WHERE endpoint = 'nxcloud_number_check'"
        ).fetchone()[0]
    assert set(rows) == acked, "an acknowledged push is missing, or a row nobody acknowledged"
    assert max(rows.values()) == 1, "a push stored twice"
    # every acknowledged delivery counted; a request the kill cut off may have committed unseen
    assert deliveries <= counted <= deliveries + broken
    # nothing left behind in either spool (the warehouse was up throughout)
    for spool_dir in (tmp_path / "spool-a", tmp_path / "spool-b"):
        assert Spool(spool_dir).pending_files() == 0
