"""Validating 100,000 loaded rows vs loading them (target: validation < 1/5 of the load time).

The rows: 100 batches x 1,000 NXCLOUD number-check results (the vendor's HLR push example with distinct
real numbers), as the nxcloud_number_check pipeline loads and validates them.

Load, measured three ways into an empty ``telco.nxcloud_number_check``:

* **the pipeline's load step** (the figure's denominator): the pushes are in the inbox
  (``raw.webhook_event``, where the receiver put them) and ``phonecheck.nxcloud.results.load_pushes``
  (the work of nxcloud_number_check's ``load`` task, whose batches its ``validate`` task then
  validates) turns the 100 batches into typed rows: read the inbox, parse (incl. offline E.164
  derivation), upsert;
* parse + upsert of payloads already in memory (the same work without the inbox);
* the upsert alone (``phonecheck.loader.upsert``: binary COPY into a staging table + merge).

Validation: ``phonecheck.quality.validate_rows`` over the 100 batches, everything a pipeline's
validate task does except Airflow's own start-up: the SQL scan of every expectation, Great
Expectations on the suspect rows + the clean sample (33 expectations), one
``dq.validation_result`` row per expectation, the Data Docs page and index. Baseline in the same
run: the same call with ``full_gx=True`` (every row read into pandas and validated by GX).

Great Expectations' one-off import (~7 s, once per worker process) is measured separately and
not counted: a tiny validation runs first. Each figure is the median of ``REPEATS`` runs (the
tables are emptied before each load). Run: ``python -m bench.quality_bench`` or ``make bench``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime

import psycopg

from bench.sizes import note, pick
from phonecheck import loader, warehouse
from phonecheck.nxcloud.results import load_pushes
from phonecheck.parsers import nxcloud as nx
from phonecheck.quality import validate_rows
from tests import seed_payloads as seed

ROWS = pick(100_000, 500, env="QUALITY_BENCH_ROWS")
BATCHES = pick(100, 5)
REPEATS = pick(3, 1)
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


def fill_inbox(conn: psycopg.Connection, vendor_payloads: list[dict]) -> None:
    """The pushes as the receiver stores them: one parsed ``raw.webhook_event`` row each."""
    now = datetime.now(UTC)
    with conn.cursor().copy(
        "COPY raw.webhook_event (endpoint, vendor, dedupe_key, content_type, body, payload, parse_status,"
        " received_at, last_received_at) FROM STDIN"
    ) as copy:
        for p in vendor_payloads:
            body = json.dumps(p, separators=(",", ":"))
            key = f"{p['batchNo']}:{p['phone']}"
            copy.write_row(
                (
                    "nxcloud_number_check",
                    "nxcloud",
                    key,
                    "application/json",
                    body.encode(),
                    body,
                    "parsed",
                    now,
                    now,
                )
            )


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

            inbox_loads, parse_loads, upserts = [], [], []
            validations, without_docs, full_gx = [], [], []
            for _ in range(REPEATS):
                # the pipeline's load step: inbox -> typed rows
                # the inbox and the typed rows (no foreign key ties them since the inbox is partitioned)
                conn.execute(f"TRUNCATE raw.webhook_event, {TABLE} CASCADE")
                fill_inbox(conn, vendor_payloads)
                conn.execute("VACUUM ANALYZE raw.webhook_event")
                conn.execute("CHECKPOINT")
                with psycopg.connect(dsn) as load_conn:
                    t0 = time.perf_counter()
                    pushes = load_pushes(load_conn, batches)
                    inbox_loads.append(time.perf_counter() - t0)
                assert pushes.inserted == ROWS and pushes.unreadable == 0, pushes

                # the same rows from payloads in memory, and the upsert alone
                conn.execute("TRUNCATE telco.nxcloud_number_check")
                conn.execute("CHECKPOINT")
                t0 = time.perf_counter()
                parsed = [nx.parse_number_check_push(p) for p in vendor_payloads]
                parse_time = time.perf_counter() - t0
                t0 = time.perf_counter()
                result = loader.upsert(conn, TABLE, parsed)
                upserts.append(time.perf_counter() - t0)
                parse_loads.append(parse_time + upserts[-1])
                assert result.inserted == ROWS, result

                t0 = time.perf_counter()
                summary = validate_rows(dsn, TABLE, key_column="batch_no", key_values=batches)
                validations.append(time.perf_counter() - t0)
                assert summary.success and summary.element_count == ROWS, summary.describe()
                assert summary.data_docs_path is not None and summary.data_docs_path.is_file()

                t0 = time.perf_counter()
                validate_rows(dsn, TABLE, key_column="batch_no", key_values=batches, data_docs=False)
                without_docs.append(time.perf_counter() - t0)

                t0 = time.perf_counter()
                baseline = validate_rows(dsn, TABLE, key_column="batch_no", key_values=batches, full_gx=True)
                full_gx.append(time.perf_counter() - t0)
                assert baseline.success and baseline.element_count == ROWS

    inbox, parse_load, upsert, validate, bare, gx_all = (
        statistics.median(x) for x in (inbox_loads, parse_loads, upserts, validations, without_docs, full_gx)
    )
    ratio = validate / inbox

    def listed(values: list[float]) -> str:
        return ", ".join(f"{x:.2f}" for x in values)

    print(f"load step, inbox -> rows (s): {listed(inbox_loads)}")
    print(f"parse + upsert (s):           {listed(parse_loads)}")
    print(f"upsert alone (s):             {listed(upserts)}")
    print(f"validations (s):              {listed(validations)}")
    print(f"validations w/o docs (s):     {listed(without_docs)}")
    print(f"full GX validations (s):      {listed(full_gx)}")
    print(f"GX first use (import + first run, once per process): {gx_first_use:.1f} s")
    print(
        f"FIGURE quality: validating {ROWS:,} loaded rows took {validate:.2f} s vs {inbox:.2f} s for the "
        f"pipeline's load step (inbox -> typed rows): ratio {ratio:.3f} (target < 0.2: "
        f"{'MET' if ratio < 0.2 else 'NOT MET'}); vs parse + upsert {parse_load:.2f} s: "
        f"{validate / parse_load:.3f}; vs the upsert alone {upsert:.2f} s: {validate / upsert:.3f}; "
        f"baseline full-GX validation {gx_all:.2f} s ({gx_all / validate:.1f}x slower); {bare:.2f} s "
        f"without Data Docs; medians of {REPEATS}, same run; load avg {load_avg:.1f}{note()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
