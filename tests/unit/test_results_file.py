"""The results file's name rules and writers, without a warehouse (the rows come in as dicts)."""

from __future__ import annotations

import csv
import io

import pytest

from phonecheck.intake import NXCLOUD
from phonecheck.results_file import ResultsFileError, columns_for, results_format, write_rows
from phonecheck_airflow.results_output import results_target


def test_the_format_follows_the_extension():
    assert results_format("file:///x/list.results.CSV") == "csv"
    assert results_format("s3://bucket/out.parquet") == "parquet"
    with pytest.raises(ResultsFileError, match=r"\.csv or \.parquet"):
        results_format("file:///x/list.xlsx")


def test_a_run_from_a_file_writes_beside_it_unless_told_otherwise():
    assert results_target({"numbers_uri": "file:///in/crm.v2.csv"}) == "file:///in/crm.v2.results.csv"
    assert results_target({"numbers_uri": "s3://b/list"}) == "s3://b/list.results.csv"
    assert results_target({"numbers_uri": "file:///in/a.csv", "results_uri": " file:///out/b.parquet "}) == (
        "file:///out/b.parquet"
    )
    assert results_target({"numbers": "+52 55 1234 5678"}) is None  # pasted only: no file unless asked


class _Unclosable(io.BytesIO):
    def close(self) -> None:  # keep the bytes readable after the writer is done
        pass


def test_csv_and_parquet_say_the_same_in_blocks():
    import pyarrow.parquet as pq

    columns = columns_for(NXCLOUD, dry_run=False)
    blocks = [
        [{"line": 1, "input": "+52 55 1234 5678", "e164": "+525512345678", "status": "checked", "code": 0}],
        [{"line": 2, "input": "abc", "status": "rejected", "reason": "contains letters"}],
    ]
    as_csv, as_parquet = _Unclosable(), _Unclosable()
    assert write_rows(as_csv, "csv", columns, iter(blocks)) == 2
    assert write_rows(as_parquet, "parquet", columns, iter(blocks)) == 2
    rows = list(csv.DictReader(io.StringIO(as_csv.getvalue().decode())))
    table = pq.read_table(io.BytesIO(as_parquet.getvalue())).to_pylist()
    assert [r["status"] for r in rows] == [r["status"] for r in table] == ["checked", "rejected"]
    assert rows[0]["code"] == table[0]["code"] == "0" and table[1]["line"] == 2
    assert rows[1]["e164"] == "" and table[1]["e164"] is None and rows[1]["reason"] == "contains letters"
