"""The fast validation path (one SQL scan + GX on the suspect rows) against a full GX run on the
same rows: every expectation's success, element count and unexpected count must agree, for
every table, on clean rows, bad rows and the edge cases where SQL and Python regexes differ."""

from __future__ import annotations

import logging
from decimal import Decimal

import psycopg
import pytest

from phonecheck import loader
from phonecheck.parsers import nxcloud as nx
from phonecheck.quality import suite_for, validate_rows
from phonecheck.quality.rows import CLEAN_SAMPLE_ROWS, enforced_unique_keys, frame_from_rows, sample_rows
from phonecheck.quality.runner import validate_frame
from phonecheck.quality.scan import scan_rows
from phonecheck.quality.sql_forms import sql_check
from phonecheck.quality.suites import Check, TableSuite
from tests import seed_payloads as seed
from tests.integration.test_quality import (
    AA,
    CALL,
    NC,
    VOICE,
    _bad_accuauth,
    _bad_call,
    _bad_voice,
    _clean_accuauth,
    _clean_calls,
    _push,
    bad_number_checks,
    clean_number_checks,
)

pytestmark = pytest.mark.integration


def _edge_number_checks(batch: str) -> list[dict]:
    """Values where PostgreSQL's and Python's regexes could disagree, NULLs, duplicates."""
    return [
        # Python's "$" matches before a final newline: GX accepts this stand number
        _push(seed.NUMBER_CHECK_PUSH_BASIC, phone="8613800138100", batch=batch,
              basic={"standNumber": "8613800138100\n", "nationalNumber": "13800138100\n\n"}),
        # Arabic-Indic digits: not [0-9] in either engine (and non-ASCII: suspect, GX decides)
        _push(seed.NUMBER_CHECK_PUSH_BASIC, phone="8613800138101", batch=batch, basic={"countryCode": "٨٦"}),
        _push(seed.NUMBER_CHECK_PUSH_BASIC, phone="8613800138102", batch=batch, basic={"regionCode": "ZZ"}),
        _push(seed.NUMBER_CHECK_PUSH_BASIC, phone="8613800138103", batch=batch, basic={"numberType": None}),
        _push(seed.NUMBER_CHECK_PUSH_HLR, phone="+8613800138104", batch=batch),
        _push(seed.NUMBER_CHECK_PUSH_HLR, phone="8613800138104", batch=batch),
        _push(seed.NUMBER_CHECK_PUSH_HLR, phone="008613800138104", batch=batch),
        nx.parse_number_check_push({**seed.NUMBER_CHECK_PUSH_CALL, "batchNo": batch, "cost": {"price": -1}}),
        # lengths just outside the formats, and a price that is not a number (numeric holds NaN)
        _push(seed.NUMBER_CHECK_PUSH_BASIC, phone="8613800138105", batch=batch,
              basic={"countryCode": "12345", "standNumber": "8613800138000123", "nationalNumber": "1"}),
        {**_push(seed.NUMBER_CHECK_PUSH_HLR, phone="8613800138106", batch=batch), "price": Decimal("NaN")},
        # the largest price numeric(12,4) holds is a valid price
        {**_push(seed.NUMBER_CHECK_PUSH_HLR, phone="8613800138107", batch=batch), "price": Decimal("99999999.9999")},
    ]  # fmt: skip


def _clean_filler(batch: str, n: int = CLEAN_SAMPLE_ROWS + 50) -> list[dict]:
    """Clean rows loaded first, so the clean sample (the first rows read) is all filler and every
    bad or edge row reaches GX only as a suspect row of the SQL scan."""
    return [_push(seed.NUMBER_CHECK_PUSH_HLR, phone=f"86139{i:08d}", batch=batch) for i in range(n)]


def _compared(outcomes) -> list[tuple]:
    return [
        (o.expectation_type, o.column_name, o.success, o.element_count, o.unexpected_count) for o in outcomes
    ]


def _both_ways(dsn, table, key_column, keys, caplog):
    caplog.set_level(logging.WARNING, logger="phonecheck.quality.runner")
    fast = validate_rows(dsn, table, key_column=key_column, key_values=keys, data_docs=False)
    assert not [r for r in caplog.records if "validating every row with GX" in r.getMessage()]
    full = validate_rows(dsn, table, key_column=key_column, key_values=keys, data_docs=False, full_gx=True)
    assert _compared(fast.outcomes) == _compared(full.outcomes)
    assert fast.success == full.success and fast.element_count == full.element_count
    return fast, full


def test_number_checks_fast_path_agrees_with_full_gx(wh, fresh_warehouse_dsn, caplog):
    filler = _clean_filler("b-0")
    loader.upsert(wh, NC, filler)
    rows = clean_number_checks("b-1") + bad_number_checks("b-2") + _edge_number_checks("b-3")
    loader.upsert(wh, NC, rows)
    loaded = wh.execute("SELECT count(*) FROM telco.nxcloud_number_check").fetchone()[0]
    batches = sorted({r["batch_no"] for r in filler + rows})  # the seed query rows carry their own batches
    sample = sample_rows(wh, suite_for(NC), "batch_no", batches)
    assert {r[0] for r in sample} == {"b-0"}  # nothing below reaches GX through the sample
    fast, full = _both_ways(fresh_warehouse_dsn, NC, "batch_no", batches, caplog)
    assert not fast.success and fast.element_count == loaded
    assert len(fast.failed) == 11  # every kind of bad row above is caught
    # the SQL scan alone already has GX's counts
    with_sql = scan_rows(wh, suite_for(NC), "batch_no", batches)
    assert with_sql.element_count == loaded
    by_check = {(o.expectation_type, o.column_name): o.unexpected_count for o in full.outcomes}
    assert len(by_check) == len(full.outcomes)
    assert with_sql.unexpected_counts == [
        by_check[(c.expectation_type, c.column_name)] for c in suite_for(NC).checks
    ]


@pytest.mark.parametrize(
    ("table", "clean", "bad", "key_column"),
    [
        (VOICE, [nx.parse_voice_receipt(seed.VOICE_RECEIPT_FIELDS)], _bad_voice(), "raw_event_id"),
        (CALL, _clean_calls(), _bad_call(), "record_id"),
        (AA, _clean_accuauth(), _bad_accuauth(), "task_id"),
    ],
)
def test_other_tables_fast_path_agrees_with_full_gx(
    wh, fresh_warehouse_dsn, caplog, table, clean, bad, key_column
):
    rows = clean + bad
    if key_column == "raw_event_id":  # voice: the clean and the bad receipt share a message id
        rows = [{**r, "message_id": f"m-{i}"} for i, r in enumerate(rows)]
        key_column = "message_id"
    loader.upsert(wh, table, rows)
    fast, _ = _both_ways(fresh_warehouse_dsn, table, key_column, [r[key_column] for r in rows], caplog)
    loaded = wh.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - constant
    assert not fast.success and fast.element_count == loaded


def test_scan_returns_the_suspect_rows_and_the_sample_is_the_first_rows_read(wh):
    rows = [
        _push(seed.NUMBER_CHECK_PUSH_BASIC, phone=f"86138{i:08d}", batch="big", basic={"standNumber": None})
        for i in range(CLEAN_SAMPLE_ROWS + 300)
    ]
    rows[-1]["number_type"] = "9"  # counted
    rows[-2]["stand_number"] = "8613800138100\n"  # not counted (Python's "$"), but GX must decide
    loader.upsert(wh, NC, rows)
    scanned = scan_rows(wh, suite_for(NC), "batch_no", ["big"])
    assert scanned.element_count == len(rows)
    assert sorted(r[1] for r in scanned.rows) == sorted([rows[-1]["phone"], rows[-2]["phone"]])
    assert sum(scanned.unexpected_counts) == 1
    sample = sample_rows(wh, suite_for(NC), "batch_no", ["big"])
    assert [r[1] for r in sample] == [r["phone"] for r in rows[:CLEAN_SAMPLE_ROWS]]


def test_scan_refuses_a_connection_inside_a_transaction(fresh_warehouse_dsn):
    with psycopg.connect(fresh_warehouse_dsn) as conn, pytest.raises(ValueError, match="autocommit"):
        scan_rows(conn, suite_for(NC), "batch_no", ["b-1"])


def test_a_compound_key_with_a_null_is_grouped_like_gx_does(wh):
    """ignore_row_if="all_values_are_missing": ("x", NULL) twice is a repeated key for GX (pandas
    takes NULLs as equal); SQL counts it with GROUP BY and fetches both rows although IN cannot
    match a NULL."""
    wh.execute("CREATE TABLE telco.compound_probe (k text PRIMARY KEY, a text, b text)")
    # a unique index on nullable columns lets ("x", NULL) repeat: it must not stand for the check
    wh.execute("CREATE UNIQUE INDEX ON telco.compound_probe (a, b)")
    wh.execute(
        "INSERT INTO telco.compound_probe VALUES ('1', 'x', NULL), ('2', 'x', NULL), ('3', 'x', 'y'), ('4', NULL, NULL)"
    )
    suite = TableSuite(
        "telco.compound_probe",
        ("k",),
        (Check("expect_compound_columns_to_be_unique", {"column_list": ["a", "b"]}, "probe"),),
    )
    scanned = scan_rows(wh, suite, "k", ["1", "2", "3", "4"])
    assert scanned.unexpected_counts == [2]
    assert sorted(r[0] for r in scanned.rows) == ["1", "2"]
    gx = validate_frame(suite.table, frame_from_rows(suite, scanned.rows), suite=suite)
    assert [o.unexpected_count for o in gx.outcomes] == [2]


def test_a_key_the_table_enforces_is_not_scanned_again(wh):
    with wh.cursor() as cur:
        enforced = enforced_unique_keys(cur, NC)
    assert frozenset({"batch_no", "phone"}) in enforced  # the primary key
    assert frozenset({"batch_no", "e164"}) not in enforced  # checked by the scan


def test_checks_the_sql_form_cannot_honour_are_refused():
    types = {
        "price": "numeric(12,4)",
        "code": "smallint",
        "a": "timestamp with time zone",
        "b": "timestamp with time zone",
    }
    suite = suite_for(NC)
    refused = [
        Check("expect_column_values_to_be_between", {"column": "price", "min_value": 0, "mostly": 0.9}, ""),
        Check("expect_column_values_to_be_in_set", {"column": "code", "value_set": ["0", "103"]}, ""),
        Check("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "a", "column_B": "b"}, ""),
        Check(
            "expect_compound_columns_to_be_unique", {"column_list": ["a", "b"], "ignore_row_if": "never"}, ""
        ),
        Check("expect_column_values_to_be_in_type_list", {"column": "code", "type_list": ["int"]}, ""),
    ]
    for check in refused:
        with pytest.raises(NotImplementedError, match="no SQL form"):
            sql_check(check, suite, types)


def test_a_repeated_number_makes_its_whole_group_suspect(wh):
    rows = [
        _push(seed.NUMBER_CHECK_PUSH_HLR, phone=phone, batch="dup")
        for phone in ("8613800138104", "+8613800138104", "8613800138105")
    ]
    loader.upsert(wh, NC, rows)
    scanned = scan_rows(wh, suite_for(NC), "batch_no", ["dup"])
    by_check = dict(
        zip([c.column_name for c in suite_for(NC).checks], scanned.unexpected_counts, strict=True)
    )
    assert by_check["batch_no,e164"] == 2
    assert sorted(r[1] for r in scanned.rows) == ["+8613800138104", "8613800138104"]


def test_no_rows(wh, fresh_warehouse_dsn, caplog):
    fast, _ = _both_ways(fresh_warehouse_dsn, NC, "batch_no", [], caplog)
    assert fast.success and fast.element_count == 0
