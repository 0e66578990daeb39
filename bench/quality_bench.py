"""Validating 100,000 loaded rows vs loading them (target: validation < 1/5 of the load time).

Load, measured two ways into an empty ``telco.nxcloud_number_check`` (100 batches x 1,000
numbers, SEED 000 HLR pushes with distinct real numbers):

* upsert only: ``phonecheck.loader.upsert`` (binary COPY into a staging table + one upsert);
* from payloads: the parser (``parse_number_check_push``, incl. E.164 derivation) + the upsert,
  i.e. what push processing and the query sync do with what the vendor sent.
 Validation: ``phonecheck.quality.validate_rows`` over the
same 100 batches: read the rows, run the full Great Expectations suite (30 expectations), store
the results in ``dq.validation_result`` and render Data Docs, i.e. everything a pipeline's
validate task does except Airflow's own start-up.

Great Expectations' one-off import (~7 s, once per worker process) is measured separately and
not counted: a tiny validation runs first. Each figure is the median of ``REPEATS`` runs (the
table is truncated before each load). Run: ``python -m bench.quality_bench`` or ``make bench``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

import psycopg

from phonecheck import loader, warehouse
from phonecheck.parsers import nxcloud as nx
from phonecheck.quality import validate_rows
from tests import seed_payloads as seed

ROWS = 100_000
BATCHES = 100
REPEATS = 3
TABLE = "telco.nxcloud_number_check"


def payloads() -> list[dict]:
    per_batch = ROWS // BATCHES
    live = ({"validity": "YES", "reachable": r, "roaming": "NO"} for r in ("YES", "NO", "UNKNOWN"))
    lives = list(live)
    return [
        {
            **seed.NUMBER_CHECK_PUSH_HLR,
            "phone": f"86138{i:08d}",
            "batchNo": f"bench-{i // per_batch:03d}",
            "messageId": f"m-{i}",
            "data": {
                "basic": {**seed.NUMBER_CHECK_PUSH_HLR["data"]["basic"], "standNumber": f"86138{i:08d}",
                          "nationalNumber": f"138{i:08d}"},
                "live": lives[i % 3],
            },
        }
        for i in range(ROWS)
    ]  # fmt: skip


def main() -> int:
    os.environ.setdefault("PHONECHECK_DATA_DOCS_DIR", tempfile.mkdtemp(prefix="quality-bench-docs-"))
    vendor_payloads = payloads()
    data = [nx.parse_number_check_push(p) for p in vendor_payloads]
    batches = sorted({r["batch_no"] for r in data})
    with warehouse.throwaway_database(warehouse.resolve_dsn(), prefix="phonecheck_bench_quality") as dsn:
        warehouse.migrate(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            t0 = time.perf_counter()
            loader.upsert(conn, TABLE, data[:10])
            validate_rows(
                dsn, TABLE, key_column="batch_no", key_values=[data[0]["batch_no"]], data_docs=False
            )
            gx_first_use = time.perf_counter() - t0

            loads, full_loads, validations, without_docs = [], [], [], []
            for _ in range(REPEATS):
                conn.execute("TRUNCATE telco.nxcloud_number_check")
                conn.execute("CHECKPOINT")
                t0 = time.perf_counter()
                parsed = [nx.parse_number_check_push(p) for p in vendor_payloads]
                parse_time = time.perf_counter() - t0
                t0 = time.perf_counter()
                result = loader.upsert(conn, TABLE, parsed)
                loads.append(time.perf_counter() - t0)
                full_loads.append(parse_time + loads[-1])
                assert result.inserted == ROWS, result

                t0 = time.perf_counter()
                summary = validate_rows(dsn, TABLE, key_column="batch_no", key_values=batches)
                validations.append(time.perf_counter() - t0)
                assert summary.success and summary.element_count == ROWS, summary.describe()

                t0 = time.perf_counter()
                validate_rows(dsn, TABLE, key_column="batch_no", key_values=batches, data_docs=False)
                without_docs.append(time.perf_counter() - t0)

    load, full, validate, bare = (
        statistics.median(x) for x in (loads, full_loads, validations, without_docs)
    )
    ratio = validate / load
    print(f"upsert loads (s):        {', '.join(f'{x:.2f}' for x in loads)}")
    print(f"parse + upsert (s):      {', '.join(f'{x:.2f}' for x in full_loads)}")
    print(f"validations (s):         {', '.join(f'{x:.2f}' for x in validations)}")
    print(f"validations w/o docs (s): {', '.join(f'{x:.2f}' for x in without_docs)}")
    print(f"GX first use (import + first run, once per process): {gx_first_use:.1f} s")
    print(
        f"FIGURE quality: validating {ROWS:,} loaded rows took {validate:.2f} s vs {load:.2f} s to load them "
        f"(upsert only; ratio {ratio:.3f}, target < 0.2; {bare:.2f} s without Data Docs; median of {REPEATS})"
    )
    print(
        f"FIGURE quality: vs parse + upsert from vendor payloads ({full:.2f} s): ratio {validate / full:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
