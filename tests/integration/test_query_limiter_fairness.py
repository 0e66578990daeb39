"""The per-access-key query limiter serves concurrent runs fairly (real PostgreSQL, real threads).

Fairness is asserted on the order of grants, never on time: every slot the limiter hands out
is numbered in the warehouse, and each grant records how many slots went to others while it
waited. Round-robin bounds that by the number of other waiting takers, whatever the timing.
"""

from __future__ import annotations

import threading

import psycopg
import pytest

from phonecheck.nxcloud.ratelimit import WarehouseIntervalLimiter

pytestmark = pytest.mark.integration

KEY = "one-shared-access-key"
INTERVAL_S = 0.05  # small: the test is about the order of grants, not the spacing


def test_a_small_run_is_not_queued_behind_a_big_runs_pages(fresh_warehouse_dsn):
    big = WarehouseIntervalLimiter(fresh_warehouse_dsn, KEY, INTERVAL_S, taker="big run")
    small = WarehouseIntervalLimiter(fresh_warehouse_dsn, KEY, INTERVAL_S, taker="small run")
    stop = threading.Event()
    errors: list[BaseException] = []

    def big_pages() -> None:  # the big run pages with 4 threads: 4 calls always waiting
        try:
            while not stop.is_set():
                big.acquire()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=big_pages) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        while len(big.grants) < 8 and not errors:  # the big run is paging at full speed
            threading.Event().wait(0.01)
        for _ in range(5):  # the small run's few pages
            small.acquire()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    big_grants, small_grants = list(big.grants), list(small.grants)
    # each small page waited for at most one call of the other waiting run (first come first
    # served would have put it behind the big run's four waiting calls)
    assert [overtaken for _, overtaken in small_grants] and max(o for _, o in small_grants) <= 1, small_grants
    assert any(overtaken >= 1 for _, overtaken in big_grants)  # the big run did yield turns
    numbers = sorted(n for n, _ in big_grants + small_grants)
    assert numbers == list(range(1, len(numbers) + 1))  # one call per slot, none handed out twice
    with psycopg.connect(fresh_warehouse_dsn) as conn:
        assert conn.execute("SELECT calls FROM ops.nxcloud_query_slot").fetchone()[0] == len(numbers)
        assert conn.execute("SELECT count(*) FROM ops.nxcloud_query_waiter").fetchone()[0] == 0


def test_a_waiter_whose_process_died_does_not_block_the_key(fresh_warehouse_dsn):
    limiter = WarehouseIntervalLimiter(fresh_warehouse_dsn, KEY, INTERVAL_S, taker="alive")
    with psycopg.connect(fresh_warehouse_dsn) as conn:  # a never-served taker: first in line, but gone
        conn.execute(
            "INSERT INTO ops.nxcloud_query_waiter (key_hash, taker, grants_at_request, seen_at) "
            "VALUES (%s, 'dead', 0, now() - interval '1 hour')",
            (limiter.key_hash,),
        )
    limiter.acquire()
    limiter.acquire()
    assert [n for n, _ in limiter.grants] == [1, 2]
    with psycopg.connect(fresh_warehouse_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ops.nxcloud_query_waiter").fetchone()[0] == 0
