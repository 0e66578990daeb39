"""Validating 100,000 loaded rows vs loading them (target: validation < 1/5 of the load time).

Load, measured two ways into an empty ``telco.nxcloud_number_check`` (100 batches x 1,000
numbers, SEED 000 HLR pushes with distinct real numbers):

* upsert only: ``phonecheck.loader.upsert`` (binary COPY into a staging table + one upsert);
* from payloads: the parser (``parse_number_check_push``, incl. E.164 derivation) + the upsert,
  i.e. what push processing and the query sync do with what the vendor sent.

Validation: ``phonecheck.quality.validate_rows`` over the same 100 batches, everything a
pipeline's validate task does except Airflow's own start-up: the SQL scan of every expectation
(one query), Great Expectations on the suspect rows + the clean sample (30 expectations), one
``dq.validation_result`` row per expectation, Data Docs. Baseline in the same run: the same call
with ``full_gx=True`` (every row read into pandas and validated by GX, the former path).

Which load time? The figure's denominator is the upsert alone (the strictest reading: COPY +
merge of rows already parsed); the pipeline's load step (parse the vendor payloads + upsert) is
printed as a second ratio.

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
    load_avg = os.getloadavg()[0]
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

            loads, full_loads, validations, without_docs, full_gx = [], [], [], [], []
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

                t0 = time.perf_counter()
                baseline = validate_rows(dsn, TABLE, key_column="batch_no", key_values=batches, full_gx=True)
                full_gx.append(time.perf_counter() - t0)
                assert baseline.success and baseline.element_count == ROWS

    load, full, validate, bare, gx_all = (
        statistics.median(x) for x in (loads, full_loads, validations, without_docs, full_gx)
    )
    ratio = validate / load
    print(f"upsert loads (s):              {', '.join(f'{x:.2f}' for x in loads)}")
    print(f"parse + upsert (s):            {', '.join(f'{x:.2f}' for x in full_loads)}")
    print(f"validations (s):               {', '.join(f'{x:.2f}' for x in validations)}")
    print(f"validations w/o docs (s):      {', '.join(f'{x:.2f}' for x in without_docs)}")
    print(f"full GX validations (s):       {', '.join(f'{x:.2f}' for x in full_gx)}")
    print(f"GX first use (import + first run, once per process): {gx_first_use:.1f} s")
    print(
        f"FIGURE quality: validating {ROWS:,} loaded rows took {validate:.2f} s vs {load:.2f} s to upsert them: "
        f"ratio {ratio:.3f} (target < 0.2: {'MET' if ratio < 0.2 else 'NOT MET'}); vs the pipeline's load step "
        f"(parse + upsert, {full:.2f} s): ratio {validate / full:.3f}; baseline full-GX validation "
        f"{gx_all:.2f} s (ratio {gx_all / load:.3f}, {gx_all / validate:.1f}x slower); {bare:.2f} s without "
        f"Data Docs; medians of {REPEATS}, same run; load avg {load_avg:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
