"""Loader throughput (``make bench``; not a test): ``phonecheck.loader.upsert`` (binary COPY →
temp staging → one ``INSERT … ON CONFLICT``) against ``PostgresHook.insert_rows``,
``PostgresHook.upsert_rows`` and a raw binary COPY, on the same rows, in the same run, on the
same server (``WAREHOUSE_DSN`` or the embedded PostgreSQL; a throw-away database).

Cases, each on a freshly emptied (or freshly pre-filled) ``telco.nxcloud_number_check``:

* insert: empty table (loader, insert_rows, raw COPY - COPY cannot upsert, it is the ceiling);
* upsert, every row conflicting and changed (loader, upsert_rows);
* reload, the same rows again (loader: nothing changes, nothing is written).

``BENCH_ROWS`` (default 100,000) sets the size. Figures are printed as ``FIGURE`` lines.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Callable
from decimal import Decimal

import psycopg

from phonecheck import loader, warehouse

TABLE = "telco.nxcloud_number_check"
COLUMNS = (
    "batch_no", "phone", "message_id", "check_level", "code", "msg", "pre_check", "region_code",
    "country_code", "number_type", "carrier", "price", "currency", "e164", "source",
)  # fmt: skip
N = int(os.environ.get("BENCH_ROWS", "100000"))


def make_rows(n: int, carrier: str = "Telcel") -> list[dict]:
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
        }
        for i in range(n)
    ]


def timed(label: str, fn: Callable[[], object], rows: int, results: dict[str, float]) -> None:
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # PostgresHook logs every 1,000 rows
        fn()
    seconds = time.perf_counter() - t0
    results[label] = rows / seconds
    print(f"  {label:55s} {seconds:7.2f} s  {rows / seconds:10,.0f} rows/s", flush=True)


def main() -> int:
    server = warehouse.resolve_dsn()
    with warehouse.throwaway_database(server, prefix="phonecheck_bench") as dsn:
        warehouse.migrate(dsn)
        os.environ["AIRFLOW_CONN_WAREHOUSE_BENCH"] = warehouse.airflow_connection_json(dsn)
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        hook = PostgresHook(postgres_conn_id="warehouse_bench")
        rows = make_rows(N)
        changed = make_rows(N, carrier="Movistar")
        tuples = [tuple(r[c] for c in COLUMNS) for r in rows]
        changed_tuples = [tuple(r[c] for c in COLUMNS) for r in changed]
        results: dict[str, float] = {}

        with psycopg.connect(dsn) as conn:

            def empty() -> None:
                conn.execute(f"TRUNCATE {TABLE} CASCADE")  # noqa: S608 - constant
                conn.commit()
                conn.execute("CHECKPOINT")

            def loader_upsert(data: list[dict]) -> None:
                loader.upsert(conn, TABLE, data, columns=COLUMNS)
                conn.commit()

            def raw_copy() -> None:
                cols = ", ".join(COLUMNS)
                with (
                    conn.cursor() as cur,
                    cur.copy(f"COPY {TABLE} ({cols}) FROM STDIN (FORMAT BINARY)") as copy,
                ):  # noqa: S608
                    copy.set_types(["text", "text", "text", "int4", "int4", "text", "text", "text", "text",
                                    "text", "text", "numeric", "text", "text", "text"])  # fmt: skip
                    for t in tuples:
                        copy.write_row(t)
                conn.commit()

            print(f"{N:,} rows x {len(COLUMNS)} columns into {TABLE} (PostgreSQL, same run)")
            print("insert into an empty table:")
            empty()
            timed("raw binary COPY (no upsert: the ceiling)", raw_copy, N, results)
            empty()
            timed("PostgresHook.insert_rows (default commit_every=1000)",
                  lambda: hook.insert_rows(TABLE, tuples, target_fields=list(COLUMNS)), N, results)  # fmt: skip
            empty()
            timed("phonecheck.loader.upsert (insert)", lambda: loader_upsert(rows), N, results)
            print("upsert, every row conflicting and changed:")
            timed("phonecheck.loader.upsert (conflict, changed)", lambda: loader_upsert(changed), N, results)
            loader_upsert(rows)  # back to the original values for upsert_rows
            timed(
                "PostgresHook.upsert_rows (conflict, changed)",
                lambda: hook.upsert_rows(
                    TABLE, changed_tuples, target_fields=list(COLUMNS), conflict_fields=["batch_no", "phone"]
                ),
                N,
                results,
            )
            print("reload of the same rows (loaded twice, counted once):")
            before = conn.execute(f"SELECT count(*), max(updated_at) FROM {TABLE}").fetchone()  # noqa: S608
            timed("phonecheck.loader.upsert (nothing changes)", lambda: loader_upsert(changed), N, results)
            after = conn.execute(f"SELECT count(*), max(updated_at) FROM {TABLE}").fetchone()  # noqa: S608
            assert before == after, (before, after)
        print(
            "FIGURE loader rows/s "
            + json.dumps({k: round(v) for k, v in results.items()})
            + f" ({N:,} rows, same run)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
