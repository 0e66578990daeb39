"""The fast validation path (one SQL scan + GX on the suspect rows) against a full GX run on the
same rows: every expectation's success, element count and unexpected count must agree, for
every table, on clean rows, bad rows and the edge cases where SQL and Python regexes differ."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from phonecheck import loader
from phonecheck.parsers import nxcloud as nx
from phonecheck.quality import suite_for, validate_rows
from phonecheck.quality.runner import CLEAN_SAMPLE_ROWS, sample_rows, scan_rows
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
        # Arabic-Indic digits: Python's \d matches them
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
    ]  # fmt: skip


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
    rows = clean_number_checks("b-1") + bad_number_checks("b-2") + _edge_number_checks("b-3")
    loader.upsert(wh, NC, rows)
    loaded = wh.execute("SELECT count(*) FROM telco.nxcloud_number_check").fetchone()[0]
    batches = sorted({r["batch_no"] for r in rows})  # the seed query rows carry their own batches
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


def test_gx_sees_only_the_suspect_rows_and_the_clean_sample(wh):
    rows = [
        _push(seed.NUMBER_CHECK_PUSH_BASIC, phone=f"86138{i:08d}", batch="big", basic={"standNumber": None})
        for i in range(CLEAN_SAMPLE_ROWS + 300)
    ]
    rows[-1]["number_type"] = "9"
    loader.upsert(wh, NC, rows)
    scanned = scan_rows(wh, suite_for(NC), "batch_no", ["big"])
    assert scanned.element_count == len(rows)
    assert [r[:2] for r in scanned.rows] == [("big", rows[-1]["phone"])]  # the one suspect row
    sample = sample_rows(wh, suite_for(NC), "batch_no", ["big"])
    assert len(sample) == CLEAN_SAMPLE_ROWS and all(r[0] == "big" for r in sample)


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
