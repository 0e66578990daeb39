"""Big lists through ``numbers_uri``: streamed from a file, kept in ``ops.run_number``, and only
run keys and counts in XCom, whatever the size of the list."""

from __future__ import annotations

import psycopg
import pytest

pytestmark = pytest.mark.integration

DAG_ID = "nxcloud_number_check"
FAST = {"wait_poll_seconds": 0.3, "wait_timeout_minutes": 1}
ODD_LINES = ["+52 55 FAKE NUMB", "+52 55 1234\x005678", "12345"]


def _xcom_sizes(run_id: str) -> dict[str, int]:
    """Bytes of every XCom value of the run, per task, as stored in the metadata database."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        rows = session.execute(
            select(XComModel.task_id, func.length(XComModel.value)).where(
                XComModel.dag_id == DAG_ID, XComModel.run_id == run_id
            )
        ).all()
    return {task_id: int(size or 0) for task_id, size in rows}


def _write_csv(path, numbers: list[str]) -> None:
    """A customer export: an id column first, the phone in the column named ``Phone``."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("customer_id,Phone,note\n")
        for i, number in enumerate(numbers):
            handle.write(f'{i},"{number}",x\n')
    with open(path, "ab") as handle:  # a line that is not UTF-8 at all
        handle.write(b"999999,\xff\xfe52 55,x\n")


def test_a_200000_number_csv_runs_with_constant_size_xcoms(nxcloud_wired, inputs_dir, run_dag):
    """200,000 numbers from a file:// CSV (dry run: prepared, chunked and priced, nothing bought);
    every XCom is as small as a 20-number run's."""
    _, live_receiver = nxcloud_wired
    numbers = [f"+52 55 {10_000_000 + i:08d}" for i in range(200_000)]
    big, small = inputs_dir / "customers.csv", inputs_dir / "few.csv"
    _write_csv(big, numbers + ODD_LINES)
    _write_csv(small, numbers[:20] + ODD_LINES)
    conf = {"numbers_column": "phone", "budget": 1000, "dry_run": True, "freshness_days": 0, **FAST}

    runs = {}
    for name, path in (("small", small), ("big", big)):
        run = run_dag(DAG_ID, conf={**conf, "numbers_uri": f"file://{path}", "batch_label": name})
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        assert states["prepare"] == "success" and states["estimate"] == "success", states
        assert states["submit"] == "skipped", states  # the dry run stops before any paid call
        runs[name] = run

    with psycopg.connect(live_receiver.dsn) as conn:
        intake = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT run_id, received, rejected, duplicates, to_check FROM ops.run_intake"
            )
        }
        kept = conn.execute(
            "SELECT count(*) FROM ops.run_number WHERE run_key = %s", (f"{DAG_ID}/{runs['big'].run_id}",)
        ).fetchone()[0]
        reasons = {
            r[0]
            for r in conn.execute(
                "SELECT reason FROM ops.rejected_number WHERE run_id = %s", (runs["big"].run_id,)
            )
        }
    assert intake[runs["big"].run_id] == (200_004, 4, 0, 200_000)
    assert intake[runs["small"].run_id] == (24, 4, 0, 20)
    assert kept == 200_000
    assert any("contains letters" in r for r in reasons) and any("U+0000" in r for r in reasons)
    assert any("not valid UTF-8" in r for r in reasons)

    big_sizes, small_sizes = _xcom_sizes(runs["big"].run_id), _xcom_sizes(runs["small"].run_id)
    # every task that hands something on (prepare, estimate and the spend-control steps) does
    # so in a few keys and counts, whatever the number of numbers
    assert {"prepare", "estimate"} <= set(big_sizes) == set(small_sizes), (big_sizes, small_sizes)
    for task_id, size in big_sizes.items():
        # the same keys, only the digits of the counts and amounts differ
        assert size < 2048 and abs(size - small_sizes[task_id]) < 64, (task_id, big_sizes, small_sizes)


def test_a_csv_by_uri_is_checked_end_to_end(nxcloud_wired, inputs_dir, run_dag):
    """A paid (sandbox) run from a file: every valid number submitted and loaded, odd lines kept."""
    _, live_receiver = nxcloud_wired
    numbers = [f"+52 55 12{i:06d}" for i in range(30)]
    path = inputs_dir / "list.txt"  # one number per line, no header
    path.write_text("\n".join(numbers + ODD_LINES + numbers[:5]) + "\n", encoding="utf-8")
    run = run_dag(DAG_ID, conf={"numbers_uri": f"file://{path}", "batch_label": "uri", "budget": 10, **FAST})
    assert str(run.state) in ("success", "DagRunState.SUCCESS"), [
        (ti.task_id, str(ti.state)) for ti in run.get_task_instances()
    ]
    with psycopg.connect(live_receiver.dsn) as conn:
        loaded = conn.execute(
            "SELECT count(*) FROM telco.nxcloud_number_check t JOIN ops.number_check_submission s "
            "USING (batch_no) WHERE s.run_id = %s",
            (run.run_id,),
        ).fetchone()[0]
        row = conn.execute(
            "SELECT received, rejected, duplicates, to_check, source FROM ops.run_intake WHERE run_id = %s",
            (run.run_id,),
        ).fetchone()
    assert loaded == 30
    assert row == (38, 3, 5, 30, f"file://{path}")
    assert max(_xcom_sizes(run.run_id).values()) < 4096


def test_a_file_outside_the_allowed_folders_is_refused(nxcloud_wired, inputs_dir, tmp_path, run_dag):
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("+52 55 1234 5678\n")
    run = run_dag(DAG_ID, conf={"numbers_uri": f"file://{secret}", "dry_run": True, **FAST})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["prepare"] == "failed"
    with psycopg.connect(nxcloud_wired[1].dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ops.run_number").fetchone()[0] == 0


def test_the_numbers_field_has_a_form_limit_and_says_so(dagbag):
    """The pasted field stops the form before it freezes; its description names the limit."""
    for dag_id in (DAG_ID, "accuauth_phone_check"):
        params = dagbag.dags[dag_id].params
        field = params.get_param("numbers")
        assert field.schema["maxLength"] == 20_000, dag_id
        assert "1,000 numbers" in field.description, dag_id
        uri = params.get_param("numbers_uri").schema
        assert uri["type"] == ["null", "string"] and "Numbers file" in uri["title"]
        assert params.get_param("allow_vanity").value is False
