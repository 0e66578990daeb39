"""Loader throughput (``make bench``; not a test).

The issue's figure: rows/s of ``phonecheck.loader.upsert`` loading 200,000 number-check rows,
HALF new and HALF updates of rows already in the table, against ``PostgresHook.upsert_rows`` on
the same rows and against a raw binary COPY of the same rows into an UNINDEXED copy of the table
(the ceiling: COPY cannot upsert), and, as the bound any writer into the real table obeys, a raw
binary COPY of the same rows into the emptied table WITH its indexes. Each round resets the table to the same 100,000 pre-existing
rows (then VACUUM ANALYZE and CHECKPOINT, so no method pays for the previous one's dead tuples
or dirty pages) and times the three methods back to back; ``BENCH_LOADER_ROUNDS`` rounds
(default 3), medians reported. Ratios are per round (same minute, same machine load), then the
median, because the machine is shared and absolute rows/s swing by ±35%.

Extra lines, measured once: insert into an empty table (loader, insert_rows, raw COPY with the
table's indexes), every row conflicting and changed (loader, upsert_rows), and a reload of the
same rows (nothing changes: not even ``updated_at``).

``BENCH_ROWS`` (default 200,000; 400 in a tiny run, ``bench.sizes``) sets the size. The summary is one ``FIGURE loader:`` line.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import psycopg

from bench.sizes import note, pick
from phonecheck import loader, warehouse

TABLE = "telco.nxcloud_number_check"
UNINDEXED = "public.bench_number_check_unindexed"
COLUMNS = (
    "batch_no", "phone", "message_id", "check_level", "code", "msg", "pre_check", "region_code",
    "country_code", "number_type", "carrier", "price", "currency", "e164", "source", "pushed_at", "queried_at",
)  # fmt: skip
COPY_TYPES = ["text", "text", "text", "int4", "int4", "text", "text", "text", "text",
              "text", "text", "numeric", "text", "text", "text", "timestamptz", "timestamptz"]  # fmt: skip
N = pick(200_000, 400, env="BENCH_ROWS")
ROUNDS = pick(3, 1, env="BENCH_LOADER_ROUNDS")
PUSHED_AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
TARGET_VS_UPSERT_ROWS = 3.0
TARGET_VS_COPY = 0.40


def make_rows(start: int, stop: int, carrier: str = "Telcel") -> list[dict]:
    return [
        {
            "batch_no": f"bench-{i // 5000:04d}",
            "phone": f"5255{i:08d}",
            "message_id": f"{i:032x}-{i % 5000 + 1:06d}",
            "check_level": 1,
            "code": 0,
            "msg": "success",
            "pre_check": "YES",
            "region_code": "MX",
            "country_code": "52",
            "number_type": "2",
            "carrier": carrier,
            "price": Decimal("0.0040"),
            "currency": "USD",
            "e164": f"+5255{i:08d}",
            "source": "push",
            # a pushed row: the merge rule of the table tells push rows from query rows by it
            "pushed_at": PUSHED_AT,
            "queried_at": None,  # never listed by the query API
        }
        for i in range(start, stop)
    ]


def as_tuples(rows: list[dict]) -> list[tuple]:
    return [tuple(r[c] for c in COLUMNS) for r in rows]


def timed(label: str, fn: Callable[[], object], rows: int) -> float:
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # PostgresHook logs every 1,000 rows
        fn()
    seconds = time.perf_counter() - t0
    print(f"  {label:58s} {seconds:7.2f} s  {rows / seconds:10,.0f} rows/s", flush=True)
    return rows / seconds


def main() -> int:
    half = N // 2
    existing = make_rows(0, half)  # already in the table before each mixed load
    # the load: the existing half with a changed value (updates) + as many new keys (inserts)
    mixed = make_rows(0, half, carrier="Movistar") + make_rows(half, N)
    mixed_tuples = as_tuples(mixed)
    load_avg = os.getloadavg()
    server = warehouse.resolve_dsn()
    with warehouse.throwaway_database(server, prefix="phonecheck_bench") as dsn:
        warehouse.migrate(dsn)
        os.environ["AIRFLOW_CONN_WAREHOUSE_BENCH"] = warehouse.airflow_connection_json(dsn)
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        hook = PostgresHook(postgres_conn_id="warehouse_bench")
        with psycopg.connect(dsn) as conn, psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"CREATE TABLE {UNINDEXED} (LIKE {TABLE} INCLUDING DEFAULTS)")

            def copy_into(table: str, tuples: list[tuple]) -> None:
                cols = ", ".join(COLUMNS)
                with (
                    conn.cursor() as cur,
                    cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)") as copy,
                ):
                    copy.set_types(COPY_TYPES)
                    for t in tuples:
                        copy.write_row(t)
                conn.commit()

            def reset(prefill: list[dict] | None) -> None:
                admin.execute(f"TRUNCATE {TABLE}, {UNINDEXED} CASCADE")
                if prefill:
                    copy_into(TABLE, as_tuples(prefill))
                admin.execute(f"VACUUM ANALYZE {TABLE}")
                admin.execute("CHECKPOINT")

            def loader_upsert(data: list[dict]) -> loader.LoadResult:
                result = loader.upsert(conn, TABLE, data, columns=COLUMNS)
                conn.commit()
                return result

            print(f"{N:,} rows x {len(COLUMNS)} columns, {TABLE}; load average at start {load_avg}")
            print(f"mixed load: {half:,} updates of existing rows + {N - half:,} new rows, {ROUNDS} rounds")
            rounds: list[dict[str, float]] = []
            for r in range(ROUNDS):
                print(f" round {r + 1}:")
                got: dict[str, float] = {}
                reset(existing)
                got["loader"] = timed("phonecheck.loader.upsert", lambda: loader_upsert(mixed), N)
                reset(existing)
                got["upsert_rows"] = timed(
                    "PostgresHook.upsert_rows",
                    lambda: hook.upsert_rows(
                        TABLE,
                        mixed_tuples,
                        target_fields=list(COLUMNS),
                        conflict_fields=["batch_no", "phone"],
                    ),
                    N,
                )
                reset(None)
                got["copy"] = timed(
                    "raw binary COPY into an unindexed table", lambda: copy_into(UNINDEXED, mixed_tuples), N
                )
                reset(None)
                got["copy_indexed"] = timed(
                    "raw binary COPY into the (empty) table with its indexes",
                    lambda: copy_into(TABLE, mixed_tuples),
                    N,
                )
                rounds.append(got)

            print("extra (once): insert into an empty table:")
            all_new = make_rows(0, N)
            reset(None)
            timed(
                "raw binary COPY (table's indexes, no upsert)",
                lambda: copy_into(TABLE, as_tuples(all_new)),
                N,
            )
            reset(None)
            timed("PostgresHook.insert_rows (default commit_every=1000)",
                  lambda: hook.insert_rows(TABLE, as_tuples(all_new), target_fields=list(COLUMNS)), N)  # fmt: skip
            reset(None)
            timed("phonecheck.loader.upsert (insert)", lambda: loader_upsert(all_new), N)
            print("extra: every row conflicting and changed:")
            admin.execute(f"VACUUM ANALYZE {TABLE}")
            changed = make_rows(0, N, carrier="Movistar")
            timed("phonecheck.loader.upsert (conflict, changed)", lambda: loader_upsert(changed), N)
            print("extra: reload of the same rows (loaded twice, counted once):")
            before = conn.execute(f"SELECT count(*), max(updated_at) FROM {TABLE}").fetchone()
            conn.commit()
            result: list[loader.LoadResult] = []
            timed(
                "phonecheck.loader.upsert (nothing changes)", lambda: result.append(loader_upsert(changed)), N
            )
            after = conn.execute(f"SELECT count(*), max(updated_at) FROM {TABLE}").fetchone()
            assert before == after and result[0].unchanged == N, (before, after, result)

    def med(key: str) -> float:
        return statistics.median(g[key] for g in rounds)

    vs_upsert_rows = statistics.median(g["loader"] / g["upsert_rows"] for g in rounds)
    vs_copy = statistics.median(g["loader"] / g["copy"] for g in rounds)
    indexed_vs_copy = statistics.median(g["copy_indexed"] / g["copy"] for g in rounds)
    vs_copy_indexed = statistics.median(g["loader"] / g["copy_indexed"] for g in rounds)
    met = vs_upsert_rows >= TARGET_VS_UPSERT_ROWS and vs_copy >= TARGET_VS_COPY
    print(
        f"FIGURE loader: {med('loader'):,.0f} rows/s upserting {N:,} rows (half new, half updates) = "
        f"{vs_upsert_rows:.2f}x PostgresHook.upsert_rows ({med('upsert_rows'):,.0f} rows/s; target >= "
        f"{TARGET_VS_UPSERT_ROWS:.0f}x) and {vs_copy:.0%} of raw binary COPY into an unindexed table "
        f"({med('copy'):,.0f} rows/s; target >= {TARGET_VS_COPY:.0%}); medians of {ROUNDS} rounds, same run; "
        f"{'MET' if met else 'NOT MET'}; bound: a plain COPY into the same table WITH its 2 indexes gets "
        f"{med('copy_indexed'):,.0f} rows/s = {indexed_vs_copy:.0%} of the unindexed COPY (loader = "
        f"{vs_copy_indexed:.0%} of it); load avg {load_avg[0]:.1f}{note()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
