"""Repeated rounds of mixed pushes while the receiver's database backends are terminated every
50 ms: no acknowledged delivery missing, none doubled, no restart (docs/receiver.md).

The standalone receiver (``python -m phonecheck.receiver``) runs once for all rounds. Each round
sends ``DELIVERIES_PER_ROUND`` deliveries (number-check results, voice receipts, PNS call
records, AccuAuth callbacks; 30% of them second deliveries of an earlier push of the run) with
up to 32 in flight, while a killer calls ``pg_terminate_backend`` on every receiver backend every
50 ms. The client behaves like the vendors: anything but 200 is sent again (voice: never).

Scaled for the suite (``make test`` stays under 20 minutes): 10 rounds of 2,000 deliveries take
about two minutes on a 2-core machine; on a slower one the test stops starting rounds after
``RECEIVER_KILL_BUDGET_S`` (default 150 s, at least 3 rounds) and prints how many ran.
``RECEIVER_KILL_ROUNDS`` / ``RECEIVER_KILL_DELIVERIES`` change the load.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections import Counter, defaultdict

import psycopg
import pytest

from phonecheck.receiver.processing import process_inbox
from phonecheck.receiver.spool import Spool
from tests import seed_payloads as seed
from tests.fixtures.receiver import ACCUAUTH, CALL, NUMBER_CHECK, VOICE

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

ROUNDS = int(os.environ.get("RECEIVER_KILL_ROUNDS", "10"))
DELIVERIES_PER_ROUND = int(os.environ.get("RECEIVER_KILL_DELIVERIES", "2000"))
BUDGET_S = float(os.environ.get("RECEIVER_KILL_BUDGET_S", "150"))
MIN_ROUNDS = 3
DUPLICATE_SHARE = 0.30
KILL_EVERY_S = 0.05
IN_FLIGHT = 32


def make_push(n: int) -> tuple[str, tuple[str, str], str, str, dict]:
    """(kind, (endpoint, key), method, path, request kwargs) of push number ``n`` of the run."""
    kind = ("number_check", "voice", "call", "accuauth")[n % 4]
    if kind == "number_check":
        body = {
            **seed.NUMBER_CHECK_PUSH_BASIC,
            "messageId": f"k-{n}",
            "batchNo": "kills",
            "phone": f"52551{n:07d}",
        }
        return (
            kind,
            ("nxcloud_number_check", f"kills|52551{n:07d}|k-{n}"),
            "POST",
            NUMBER_CHECK,
            {"json": body},
        )
    if kind == "voice":
        fields = {**seed.VOICE_RECEIPT_FIELDS, "messageid": f"k-{n}", "phone": f"8615088{n:06d}"}
        return kind, ("nxcloud_voice", f"k-{n}|8615088{n:06d}"), "POST", VOICE, {"data": fields}
    if kind == "call":
        body = {**seed.CALL_RECORD_PUSH, "id": 2_000_000 + n, "callId": f"k-call-{n}"}
        return kind, ("nxcloud_call", str(2_000_000 + n)), "POST", CALL, {"json": body}
    params = {
        "request_id": f"TID{n}",
        "phone_number": f"5255{n:08d}",
        "phone_status": "ring",
        "task_id": f"k-task-{n}",
    }
    return kind, ("accuauth_phone_number", f"k-task-{n}"), "GET", ACCUAUTH, {"params": params}


class BackendKiller:
    """Terminates every backend of the receiver (by application_name) every ``KILL_EVERY_S``."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.killed = 0
        self.active = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                if self.active.is_set():
                    self.killed += conn.execute(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = 'phonecheck-receiver' AND datname = current_database()"
                    ).fetchone()[0]
                time.sleep(KILL_EVERY_S)


async def send_round(receiver, pushes: list[tuple], attempts: dict, acked: Counter) -> None:
    import aiohttp

    slots = asyncio.Semaphore(IN_FLIGHT)
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def deliver(push: tuple) -> None:
            kind, key, method, path, request = push
            while True:
                async with slots:
                    attempts[key] += 1
                    try:
                        async with http.request(method, receiver.url(path), **request) as response:
                            await response.read()
                            status = response.status
                    except (TimeoutError, aiohttp.ClientError):
                        status = 0
                if status == 200:
                    acked[key] += 1
                    return
                if kind == "voice":
                    return  # pushed once, whatever the answer
                await asyncio.sleep(0.1)

        await asyncio.gather(*(deliver(p) for p in pushes))


def test_backends_terminated_every_50_ms_lose_and_double_nothing(disposable_warehouse, outage_receiver):
    receiver = outage_receiver
    dsn = disposable_warehouse.dsn
    rng = random.Random(14)
    attempts: defaultdict[tuple, int] = defaultdict(int)
    acked: Counter = Counter()
    sent: list[tuple] = []
    killer = BackendKiller(dsn)
    killer.thread.start()
    started = time.monotonic()
    rounds_run = 0
    try:
        for round_no in range(ROUNDS):
            if round_no >= MIN_ROUNDS and time.monotonic() - started > BUDGET_S:
                break
            fresh = round(DELIVERIES_PER_ROUND * (1 - DUPLICATE_SHARE))
            first = len(sent)
            new = [make_push(n) for n in range(first, first + fresh)]
            sent += new
            again = [rng.choice(sent) for _ in range(DELIVERIES_PER_ROUND - fresh)]
            batch = new + again
            rng.shuffle(batch)
            killer.active.set()
            asyncio.run(send_round(receiver, batch, attempts, acked))
            killer.active.clear()
            deadline = time.monotonic() + 60
            while Spool(receiver.spool_dir).has_files():  # the replay catches up between rounds
                assert time.monotonic() < deadline, f"round {round_no}: spool not replayed"
                time.sleep(0.1)
            rounds_run += 1
    finally:
        killer.stop.set()
        killer.thread.join(timeout=10)
    elapsed = time.monotonic() - started

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT endpoint, dedupe_key, delivery_count, via_spool FROM raw.webhook_event"
        ).fetchall()
        replay_records = conn.execute("SELECT count(*) FROM ops.receiver_spool_record").fetchone()[0]
    stored = Counter((r[0], r[1]) for r in rows)
    counted = {(r[0], r[1]): r[2] for r in rows}
    missing = [key for key in acked if key not in stored]
    assert missing == [], f"{len(missing)} acknowledged deliveries missing, e.g. {missing[:5]}"
    assert [key for key, n in stored.items() if n > 1] == []
    assert set(stored) <= set(attempts)
    # every acknowledged delivery counted once at least; never more than it was attempted
    wrong = [
        (k, acked[k], counted[k], attempts[k]) for k in acked if not acked[k] <= counted[k] <= attempts[k]
    ]
    assert wrong == [], wrong[:10]
    assert killer.killed > 100, "the killer never hit a receiver backend"
    assert receiver.output().count("receiver listening on") == 1  # no restart

    counts = process_inbox(dsn, limit=100_000)
    assert counts["failed"] == 0, counts
    with psycopg.connect(dsn) as conn:
        typed = sum(
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in (
                "telco.nxcloud_number_check",
                "telco.nxcloud_voice_receipt",
                "telco.nxcloud_call_record",
                "telco.accuauth_phone_check",
            )
        )
    assert typed == len(stored)
    print(
        f"\n{rounds_run} rounds x {DELIVERIES_PER_ROUND} deliveries in {elapsed:.0f} s: {sum(acked.values())} "
        f"acknowledged, {killer.killed} backends terminated, {sum(1 for r in rows if r[3])} rows via the "
        f"spool ({replay_records} spool records replayed), {len(stored)} pushes stored once each"
    )
