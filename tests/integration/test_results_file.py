"""The results file of an on-demand run (``results_uri``): one row per input line, CSV or
Parquet by extension, under the allowed folders, written in a stream."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.integration.test_bulk_input import ODD_LINES
from tests.integration.test_nxcloud_pipeline import FAST, state_of, task_states

pytestmark = pytest.mark.integration


def read_csv(path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def downstream_dag_from_the_docs(folder) -> str:
    """The example DAG of docs/pipelines.md "Scheduling on new results", written to ``folder``
    and serialized into the metadata DB as the dag-processor would; its dag_id."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    doc = (Path(__file__).resolve().parents[2] / "docs" / "pipelines.md").read_text()
    section = doc[doc.index("### Scheduling on new results") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (folder / "downstream.py").write_text(code)
    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors and len(bag.dags) == 1, bag.import_errors
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    dag_id = next(iter(bag.dags))
    with create_session() as session:  # new DAGs start paused; a user unpauses theirs
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=False))
    return dag_id


def asset_events_and_queue(asset_name: str, run_id: str) -> tuple[list[dict], list[str]]:
    """The metadata DB's events of ``asset_name`` from ``run_id`` and the DAGs queued on it."""
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        asset_id = session.scalar(select(AssetModel.id).where(AssetModel.name == asset_name))
        events = session.scalars(
            select(AssetEvent).where(AssetEvent.asset_id == asset_id, AssetEvent.source_run_id == run_id)
        ).all()
        queued = session.scalars(
            select(AssetDagRunQueue.target_dag_id).where(AssetDagRunQueue.asset_id == asset_id)
        ).all()
        return [dict(e.extra or {}) | {"task_id": e.source_task_id} for e in events], list(queued)


def test_a_run_from_a_file_writes_one_csv_row_per_line_beside_it(
    nxcloud_wired, inputs_dir, tmp_path, run_dag
):
    downstream_folder = tmp_path / "user_dags"
    downstream_folder.mkdir()
    downstream = downstream_dag_from_the_docs(downstream_folder)
    numbers = [f"+52 55 13{i:06d}" for i in range(12)]
    lines = numbers + ODD_LINES + numbers[:3]  # 3 rejected, 3 repeated
    path = inputs_dir / "crm export.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = run_dag(
        "nxcloud_number_check",
        conf={"numbers_uri": f"file://{path}", "batch_label": "res", "budget": 10, **FAST},
    )
    assert state_of(run) == "success", task_states(run)

    rows = read_csv(inputs_dir / "crm export.results.csv")  # beside the input: no results_uri given
    assert [r["line"] for r in rows] == [str(n) for n in range(1, len(lines) + 1)]
    assert [r["input"] for r in rows[:12]] == numbers
    assert {r["status"] for r in rows[:12]} == {"checked"}
    # every checked line has its E.164 and the vendor's code; a charged answer (code 0) its price
    assert all(
        r["e164"] == "+5255" + n[-8:] and r["code"] and (r["price"] or r["code"] != "0")
        for n, r in zip(numbers, rows, strict=False)
    ), [(n, r["e164"], r["code"], r["price"]) for n, r in zip(numbers, rows, strict=False)]
    rejected = rows[12:15]
    assert [r["status"] for r in rejected] == ["rejected"] * 3 and all(r["reason"] for r in rejected)
    assert "contains letters" in rejected[0]["reason"] and rejected[1]["input"] == "+52 55 1234\\x005678"
    assert [(r["status"], r["reason"]) for r in rows[15:]] == [
        ("duplicate", f"same number as line {n}") for n in (1, 2, 3)
    ]
    # the same answers the warehouse holds for the run
    with psycopg.connect(nxcloud_wired[1].dsn) as conn:
        held = dict(
            conn.execute(
                "SELECT t.e164, t.code::text FROM telco.nxcloud_number_check t JOIN ops.number_check_submission s "
                "USING (batch_no) WHERE s.run_id = %s",
                (run.run_id,),
            ).fetchall()
        )
    assert {r["e164"]: r["code"] for r in rows[:12]} == held

    # the load emitted an Asset event with the run key and counts, and the user's DAG scheduled
    # on that Asset is queued for the scheduler (what it turns into a run)
    events, queued = asset_events_and_queue("telco.nxcloud_number_check", run.run_id)
    assert events == [
        {"task_id": "load", "run_key": f"nxcloud_number_check/{run.run_id}", "batches": 1, "rows": 12,
         "results": 12, "expected": 12, "complete_batches": 1}
    ]  # fmt: skip
    assert downstream in queued


def test_a_dry_run_writes_the_estimate_per_line_as_parquet(accuauth_wired, inputs_dir, run_dag):
    import pyarrow.parquet as pq

    target = inputs_dir / "out" / "estimate.parquet"
    run = run_dag(
        "accuauth_phone_check",
        conf={
            "numbers": "+52 55 1234 5678\nnot a number\n+52 55 1234 5678",
            "results_uri": f"file://{target}",
            "dry_run": True,
            "unit_price": 0.02,
        },
    )
    assert state_of(run) == "success", task_states(run)
    assert task_states(run)["write_results"] == "success"
    table = pq.read_table(target)
    assert table.column_names[:7] == [
        "line",
        "input",
        "e164",
        "region_code",
        "status",
        "reason",
        "checked_at",
    ]
    rows = table.to_pylist()
    assert [(r["line"], r["status"]) for r in rows] == [(1, "estimate"), (2, "rejected"), (3, "duplicate")]
    assert rows[0]["e164"] == "+525512345678" and rows[0]["estimated_price"] == "0.02"
    assert rows[0]["currency"] == "USD" and rows[2]["reason"] == "same number as line 1"


def test_a_results_path_outside_the_allowed_folders_is_refused_before_any_spend(
    nxcloud_wired, inputs_dir, tmp_path, run_dag
):
    from airflow.sdk.exceptions import AirflowFailException

    from phonecheck_airflow.results_output import check_results_target

    elsewhere = f"file://{tmp_path}/elsewhere.csv"
    with pytest.raises(AirflowFailException, match="outside the folders") as refused:
        check_results_target({"results_uri": elsewhere})
    assert str(inputs_dir) in str(refused.value) and "PHONECHECK_NUMBERS_URI_PREFIXES" in str(refused.value)
    with pytest.raises(AirflowFailException, match=r"\.csv or \.parquet"):
        check_results_target({"results_uri": f"file://{inputs_dir}/out.xlsx"})

    run = run_dag(
        "nxcloud_number_check", conf={"numbers": "+52 55 1234 5678", "results_uri": elsewhere, **FAST}
    )
    states = task_states(run)
    assert states["prepare"] == "failed" and states["submit"] == "upstream_failed", states
    assert not (tmp_path / "elsewhere.csv").exists()


_WRITE_AND_MEASURE = """
import json, resource, sys
from types import SimpleNamespace
import pyarrow.parquet  # imported before the baseline: the library is not the data
from phonecheck_airflow.results_output import write_run_results
params, dag_id, run_id = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
written = write_run_results("nxcloud", params, {"dag": SimpleNamespace(dag_id=dag_id), "run_id": run_id},
                            check_level=1)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": written["rows"], "growth_kib": after - before}))
"""


def test_200000_lines_are_written_with_flat_memory(nxcloud_wired, inputs_dir):
    """The writer holds one block of lines at a time: the peak RSS of the process writing the
    results of 200,000 lines grows by a small multiple of the input file's size, where holding
    the rows would take hundreds of MB."""
    from phonecheck.intake import NXCLOUD, RunContext, prepare_numbers

    numbers = [f"+52 55 {20_000_000 + i:08d}" for i in range(200_000)]
    source = inputs_dir / "big.txt"
    source.write_text("\n".join(numbers) + "\n", encoding="utf-8")
    target = inputs_dir / "big.results.parquet"
    ctx = RunContext(dag_id="nxcloud_number_check", run_id="manual__big")
    with psycopg.connect(nxcloud_wired[1].dsn) as conn, open(source, encoding="utf-8") as lines:
        prepare_numbers(conn, vendor=NXCLOUD, entries=(line.rstrip("\n") for line in lines), default_region=None,
                        freshness_days=0, check_level=1, ctx=ctx)  # fmt: skip

    params = {"numbers_uri": f"file://{source}", "results_uri": f"file://{target}"}
    done = subprocess.run(
        [sys.executable, "-c", _WRITE_AND_MEASURE, json.dumps(params), ctx.dag_id, ctx.run_id],
        capture_output=True, text=True, timeout=900, env=os.environ.copy(), cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])

    import pyarrow.parquet as pq

    assert measured["rows"] == 200_000 == pq.ParquetFile(target).metadata.num_rows
    assert pq.read_table(target, columns=["status"]).column("status").unique().to_pylist() == [
        "not_submitted"
    ]
    input_bytes = source.stat().st_size  # 3.4 MB of text
    growth = measured["growth_kib"] * 1024
    assert growth < 15 * input_bytes, (
        f"peak RSS grew {growth / 1e6:.1f} MB for {input_bytes / 1e6:.1f} MB of input"
    )
