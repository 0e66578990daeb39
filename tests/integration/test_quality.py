"""validate_rows against a real warehouse: bad loads fail and are kept, results land in
dq.validation_result, Data Docs are written, clean loads pass; the Airflow operator fails its task.

Rows come from the vendor example payloads (tests/seed_payloads.py) through the real parsers
and the real loader. Great Expectations is imported once for the session (first validation).
"""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from phonecheck import loader
from phonecheck.parsers import accuauth as aa
from phonecheck.parsers import nxcloud as nx
from phonecheck.quality import suite_for, validate_records, validate_rows
from tests import seed_payloads as seed

pytestmark = pytest.mark.integration

NC = "telco.nxcloud_number_check"
AA = "telco.accuauth_phone_check"
VOICE = "telco.nxcloud_voice_receipt"
CALL = "telco.nxcloud_call_record"


@pytest.fixture(autouse=True)
def data_docs(tmp_path, monkeypatch):
    path = tmp_path / "data_docs"
    monkeypatch.setenv("PHONECHECK_DATA_DOCS_DIR", str(path))
    return path


def _push(template: dict, *, phone: str, batch: str = "clean-1", basic: dict | None = None, **top) -> dict:
    payload = {**template, "phone": phone, "batchNo": batch, **top}
    if basic is not None:
        payload["data"] = {**payload["data"], "basic": {**payload["data"]["basic"], **basic}}
    return nx.parse_number_check_push(payload)


def clean_number_checks(batch: str = "clean-1") -> list[dict]:
    real = {"standNumber": None, "nationalNumber": None}
    rows = [
        _push(seed.NUMBER_CHECK_PUSH_BASIC, phone="8613800138000", batch=batch, basic=real),
        _push(seed.NUMBER_CHECK_PUSH_HLR, phone="8613800138001", batch=batch, basic=real),
        _push(seed.NUMBER_CHECK_PUSH_CALL, phone="8613800138002", batch=batch, basic=real),
        _push(seed.NUMBER_CHECK_PUSH_FAILURE, phone="18617", batch=batch),
        # the vendor's verbatim example (masked number, no e164): as received, it passes
        nx.parse_number_check_push({**seed.NUMBER_CHECK_PUSH_HLR, "batchNo": batch}),
    ]
    rows += [nx.parse_query_row(r) for r in seed.NUMBER_CHECK_QUERY_RESPONSE["data"]["result"]]
    return rows


def bad_number_checks(batch: str = "bad-1") -> list[dict]:
    """An unknown numberType, a receipt code outside the documented set, and a duplicate key:
    the same number under two spellings in one batch (distinct primary keys, so both rows load;
    the number was checked, and paid for, twice)."""
    return [
        _push(seed.NUMBER_CHECK_PUSH_BASIC, phone="8613800138010", batch=batch, basic={"numberType": 9}),
        _push(seed.NUMBER_CHECK_PUSH_BASIC, phone="8613800138011", batch=batch, code=999),
        _push(seed.NUMBER_CHECK_PUSH_HLR, phone="+8613800138012", batch=batch),
        _push(seed.NUMBER_CHECK_PUSH_HLR, phone="8613800138012", batch=batch),
    ]


def _count(wh, table: str, where: str = "true") -> int:
    return wh.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]


def test_bad_load_fails_keeps_rows_and_records_the_failures(wh, fresh_warehouse_dsn, data_docs):
    loader.upsert(wh, NC, clean_number_checks() + bad_number_checks())
    before = wh.execute(
        "SELECT batch_no, phone, number_type, code FROM telco.nxcloud_number_check ORDER BY 1, 2"
    ).fetchall()
    context = {"dag_id": "nxcloud_number_check", "task_id": "validate", "run_id": "manual__1"}

    summary = validate_rows(
        fresh_warehouse_dsn, NC, key_column="batch_no", key_values=["bad-1"], context=context
    )

    assert not summary.success
    assert summary.element_count == 4
    failed = {(f.expectation, f.column): f for f in summary.failed}
    assert set(failed) == {
        ("expect_column_values_to_be_in_set", "number_type"),
        ("expect_column_values_to_be_in_set", "code"),
        ("expect_compound_columns_to_be_unique", "batch_no,e164"),
    }
    number_type = failed[("expect_column_values_to_be_in_set", "number_type")]
    assert number_type.unexpected_count == 1
    assert number_type.sample == [{"number_type": "9", "batch_no": "bad-1", "phone": "8613800138010"}]
    assert failed[("expect_column_values_to_be_in_set", "code")].sample[0]["code"] == 999
    duplicate = failed[("expect_compound_columns_to_be_unique", "batch_no,e164")]
    assert duplicate.unexpected_count == 2
    assert {s["phone"] for s in duplicate.sample} == {"+8613800138012", "8613800138012"}

    # nothing deleted or changed
    after = wh.execute(
        "SELECT batch_no, phone, number_type, code FROM telco.nxcloud_number_check ORDER BY 1, 2"
    ).fetchall()
    assert after == before and len(after) == 11

    # one dq row per expectation, the failing ones with their rows
    stored = wh.execute(
        """SELECT expectation_type, column_name, success, element_count, unexpected_count, unexpected_sample,
                  dag_id, task_id, airflow_run_id, table_name, suite_name, row_filter
           FROM dq.validation_result WHERE validation_run_id = %s""",
        (summary.validation_run_id,),
    ).fetchall()
    assert len(stored) == len(suite_for(NC).checks) == len(summary.outcomes)
    failing = {(r[0], r[1]): r for r in stored if not r[2]}
    assert set(failing) == set(failed)
    row = failing[("expect_column_values_to_be_in_set", "number_type")]
    assert row[3:6] == (4, 1, [{"number_type": "9", "batch_no": "bad-1", "phone": "8613800138010"}])
    assert row[6:12] == (
        "nxcloud_number_check",
        "validate",
        "manual__1",
        NC,
        "nxcloud_number_check",
        "batch_no IN (bad-1)",
    )
    assert all(r[3] == 4 for r in stored)

    # Data Docs: the run's page, under the configured folder
    assert summary.data_docs_path is not None and summary.data_docs_path.is_file()
    assert data_docs in summary.data_docs_path.parents
    assert (data_docs / "index.html").is_file()
    # the report goes into the task log: its sample rows show numbers masked (docs/privacy.md)
    assert "expect_column_values_to_be_in_set" in summary.describe() and "86******8010" in summary.describe()
    assert "8613800138010" not in summary.describe()


def test_data_docs_keep_every_run_and_index_the_newest_first(wh, fresh_warehouse_dsn, data_docs):
    loader.upsert(wh, NC, clean_number_checks() + bad_number_checks())
    first = validate_rows(fresh_warehouse_dsn, NC, key_column="batch_no", key_values=["bad-1"])
    second = validate_rows(fresh_warehouse_dsn, NC, key_column="batch_no", key_values=["clean-1"])
    # GX's own index builder deletes pages its (ephemeral) context does not know: not here
    assert first.data_docs_path.is_file() and second.data_docs_path.is_file()
    assert first.data_docs_path != second.data_docs_path
    assert "999" in first.data_docs_path.read_text()  # the unexpected receipt code is on its page
    index = (data_docs / "index.html").read_text()
    assert index.index(second.validation_run_id) < index.index(first.validation_run_id)
    for summary in (first, second):
        link = summary.data_docs_path.relative_to(data_docs).as_posix()
        assert f"href='{link}'" in index
    assert "FAILED" in index and "passed" in index
    assert (data_docs / "expectations" / "nxcloud_number_check.html").is_file()


def test_clean_number_check_load_passes_and_is_recorded(wh, fresh_warehouse_dsn):
    loader.upsert(wh, NC, clean_number_checks() + bad_number_checks())
    summary = validate_rows(
        fresh_warehouse_dsn, NC, key_column="batch_no", key_values=["clean-1", "101713775788", "clean-1"]
    )
    assert summary.success, summary.describe()
    assert summary.element_count == 7  # the bad batch is not read
    assert _count(wh, "dq.validation_result", "success") == len(suite_for(NC).checks)
    assert _count(wh, "dq.validation_result", "NOT success") == 0


def _clean_accuauth() -> list[dict]:
    pending = aa.parse_submit_response({"request_id": "R1", "status": "OK", "task_id": "T1"}, "525512345678")
    done = aa.parse_task_result(seed.ACCUAUTH_TASK_OK, "T2", "525587654321")
    callback = aa.parse_callback(
        {"request_id": "R3", "phone_number": "525511112222", "phone_status": "busy", "task_id": "T3"}
    )
    return [pending, done, callback]


def _clean_calls() -> list[dict]:
    legs = {"callId": "c-2", "legList": [{"callStartAt": 1700000000, "callAnswerAt": 1700000003,
                                          "callFinishAt": 1700000030, "hangupCause": "NORMAL_CLEARING",
                                          "hangupCode": 16, "hangupType": 1}]}  # fmt: skip
    return [nx.parse_call_record(seed.CALL_RECORD_PUSH), nx.parse_call_record(legs)]


@pytest.mark.parametrize(
    ("table", "rows", "key_column", "keys"),
    [
        (AA, _clean_accuauth(), "task_id", ["T1", "T2", "T3"]),
        (
            VOICE,
            [nx.parse_voice_receipt(seed.VOICE_RECEIPT_FIELDS)],
            "message_id",
            ["74078a0090f17e011505297261994"],
        ),
        (CALL, _clean_calls(), "record_id", ["45", "c-2"]),
    ],
)
def test_clean_loads_of_every_table_pass(wh, fresh_warehouse_dsn, table, rows, key_column, keys):
    loader.upsert(wh, table, rows)
    summary = validate_rows(fresh_warehouse_dsn, table, key_column=key_column, key_values=keys)
    assert summary.success, summary.describe()
    assert summary.element_count == len(rows)
    assert _count(wh, "dq.validation_result") == len(suite_for(table).checks)


def _bad_voice() -> list[dict]:
    fields = {**seed.VOICE_RECEIPT_FIELDS, "start_time": "2020-12-01 00:00:10", "end_time": "2020-12-01 00:00:00",
              "hangup_disposition": "hung_up_by_martians"}  # fmt: skip
    return [nx.parse_voice_receipt(fields)]


def _bad_call() -> list[dict]:
    payload = {**seed.CALL_RECORD_PUSH, "answerAt": seed.CALL_RECORD_PUSH["hangupAt"] + 5, "callStatus": 7}
    return [nx.parse_call_record(payload)]


def _bad_accuauth() -> list[dict]:
    return [aa.parse_callback({"request_id": "R9", "phone_number": "525512345678", "phone_status": "on_mars",
                               "task_id": "T9"})]  # fmt: skip


@pytest.mark.parametrize(
    ("table", "rows", "key_column", "expected"),
    [
        (VOICE, _bad_voice(), "message_id", {("expect_column_values_to_be_in_set", "hangup_disposition"),
                                             ("expect_column_pair_values_a_to_be_greater_than_b", "end_time,start_time")}),
        (CALL, _bad_call(), "record_id", {("expect_column_values_to_be_in_set", "call_status"),
                                          ("expect_column_pair_values_a_to_be_greater_than_b", "hangup_at,answer_at")}),
        (AA, _bad_accuauth(), "task_id", {("expect_column_values_to_be_in_set", "phone_status")}),
    ],
)  # fmt: skip
def test_bad_rows_of_every_table_fail(wh, fresh_warehouse_dsn, table, rows, key_column, expected):
    loader.upsert(wh, table, rows)
    key = rows[0][key_column]
    summary = validate_rows(fresh_warehouse_dsn, table, key_column=key_column, key_values=[key])
    assert {(f.expectation, f.column) for f in summary.failed} == expected
    assert _count(wh, table) == 1
    assert _count(wh, "dq.validation_result", "NOT success") == len(expected)


def test_nothing_loaded_validates_nothing_and_passes(wh, fresh_warehouse_dsn):
    loader.upsert(wh, NC, bad_number_checks())
    summary = validate_rows(fresh_warehouse_dsn, NC, key_column="batch_no", key_values=[], data_docs=False)
    assert summary.success and summary.element_count == 0 and summary.data_docs_path is None
    assert _count(wh, "dq.validation_result", "element_count = 0") == len(suite_for(NC).checks)


def test_unknown_key_column_is_refused(fresh_warehouse_dsn):
    with pytest.raises(ValueError, match="no column"):
        validate_rows(fresh_warehouse_dsn, NC, key_column="batch_no; DROP TABLE x", key_values=["b"])


def test_parsed_rows_with_five_decimal_price_fail_before_loading():
    """numeric(12,4) would round 0.12345 on load; validating parsed rows first catches it."""
    row = _push(
        seed.NUMBER_CHECK_PUSH_BASIC, phone="8613800138000", cost={"price": 0.12345, "currency": "USD"}
    )
    assert row["price"] == Decimal("0.12345")
    summary = validate_records(NC, [row], data_docs=None)
    assert [(f.expectation, f.column) for f in summary.failed] == [
        ("expect_column_values_to_match_regex", "price")
    ]
    assert summary.failed[0].sample[0]["price__as_text"] == "0.12345"


# --- the Airflow operator ----------------------------------------------------------------------


def _airflow_context(task_id: str = "validate_loaded") -> dict:
    ti = SimpleNamespace(dag_id="quality_test_dag", task_id=task_id, run_id="manual__2026-11-24")
    return {"ti": ti, "run_id": ti.run_id}


def test_a_failed_check_fails_the_task_with_the_failed_expectations_and_keeps_the_rows(
    wh, fresh_warehouse_dsn
):
    from airflow.sdk.exceptions import AirflowFailException

    from phonecheck_airflow.operators.quality import validate_loaded_rows

    loader.upsert(wh, NC, bad_number_checks())
    with pytest.raises(AirflowFailException) as failure:
        validate_loaded_rows(NC, "batch_no", ["bad-1"], context=_airflow_context())
    message = str(failure.value)
    assert "rows are kept" in message
    for expected in ("number_type", "code", "batch_no,e164", "86******8010"):
        assert expected in message
    assert "8613800138010" not in message  # the message goes into the task log: numbers masked
    assert _count(wh, NC) == 4
    assert wh.execute(
        "SELECT DISTINCT dag_id, task_id, airflow_run_id FROM dq.validation_result"
    ).fetchall() == [("quality_test_dag", "validate_loaded", "manual__2026-11-24")]


def test_a_clean_load_passes_and_returns_a_summary(wh, fresh_warehouse_dsn):
    from phonecheck_airflow.operators.quality import validate_loaded_rows

    loader.upsert(wh, NC, clean_number_checks())
    result = validate_loaded_rows(NC, "batch_no", ["clean-1"], context=_airflow_context())
    assert result["success"] is True and result["rows"] == 5 and result["table"] == NC
    assert result["expectations"] == len(suite_for(NC).checks)
    assert result["data_docs_path"].endswith(".html")
