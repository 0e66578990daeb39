"""The loader against a real PostgreSQL: idempotent, merging, never duplicating."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from phonecheck import loader
from phonecheck.parsers import accuauth as aa
from phonecheck.parsers import nxcloud as nx
from tests import seed_payloads as seed

pytestmark = pytest.mark.integration


def _count(wh, table):
    return wh.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _synthetic_rows(n: int, batch: str = "bulk-1", price: str = "0.0100") -> list[dict]:
    return [
        {
            "batch_no": batch,
            "phone": f"8613800{i:06d}",
            "message_id": f"m-{i}",
            "code": 0,
            "number_type": "2",
            "pre_check": "YES",
            "price": Decimal(price),
            "currency": "USD",
            "source": "push",
        }
        for i in range(n)
    ]


@pytest.mark.slow
def test_100k_rows_loaded_twice_count_once(wh):
    rows = _synthetic_rows(100_000)
    first = loader.upsert(wh, "telco.nxcloud_number_check", rows)
    assert (first.inserted, first.updated) == (100_000, 0)
    stamp = wh.execute("SELECT max(updated_at) FROM telco.nxcloud_number_check").fetchone()[0]
    second = loader.upsert(wh, "telco.nxcloud_number_check", rows)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 100_000)
    assert _count(wh, "telco.nxcloud_number_check") == 100_000
    assert wh.execute("SELECT max(updated_at) FROM telco.nxcloud_number_check").fetchone()[0] == stamp


def test_push_and_query_rows_merge_into_one_row(wh):
    push = nx.parse_number_check_push(seed.NUMBER_CHECK_PUSH_HLR)
    push["pushed_at"] = datetime(2026, 11, 1, tzinfo=UTC)
    loader.upsert(wh, "telco.nxcloud_number_check", [push])
    query = nx.parse_query_row(
        {"batchNo": push["batch_no"], "phone": push["phone"], "checkLevel": 5, "messageId": push["message_id"],
         "price": 0.923, "currency": "USD"}
    )  # fmt: skip
    query["queried_at"] = datetime(2026, 11, 2, tzinfo=UTC)
    result = loader.upsert(wh, "telco.nxcloud_number_check", [query])
    assert (result.inserted, result.updated) == (0, 1)
    row = wh.execute(
        "SELECT check_level, code, validity, carrier, pushed_at, queried_at, source, first_seen_at <= updated_at "
        "FROM telco.nxcloud_number_check"
    ).fetchone()
    assert row == (5, 0, "YES", "China Telecom", push["pushed_at"], query["queried_at"], "push", True)
    # the same answers the other way round: the same row
    wh.execute("DELETE FROM telco.nxcloud_number_check")
    loader.upsert(wh, "telco.nxcloud_number_check", [query])
    loader.upsert(wh, "telco.nxcloud_number_check", [push])
    assert (
        wh.execute(
            "SELECT check_level, code, validity, carrier, pushed_at, queried_at, source, first_seen_at <= updated_at "
            "FROM telco.nxcloud_number_check"
        ).fetchone()
        == row
    )


def test_changed_values_update_and_report_counts(wh):
    loader.upsert(wh, "telco.nxcloud_number_check", _synthetic_rows(10))
    result = loader.upsert(
        wh, "telco.nxcloud_number_check", _synthetic_rows(5, price="0.0200") + _synthetic_rows(12)[10:]
    )
    assert (result.inserted, result.updated, result.unchanged) == (2, 5, 0)
    assert _count(wh, "telco.nxcloud_number_check") == 12


def test_duplicate_keys_in_one_load_keep_the_last(wh):
    rows = _synthetic_rows(1) + _synthetic_rows(1, price="0.0300")
    result = loader.upsert(wh, "telco.nxcloud_number_check", rows)
    assert result.inserted == 1
    assert wh.execute("SELECT price FROM telco.nxcloud_number_check").fetchone()[0] == Decimal("0.0300")


def test_accuauth_status_never_goes_back_from_ok(wh):
    t = "telco.accuauth_phone_check"
    pending = aa.parse_submit_response({"request_id": "R1", "status": "OK", "task_id": "T1"}, "525512345678")
    loader.upsert(wh, t, [pending | {"reason": "check in progress"}])
    done = aa.parse_callback(
        {"request_id": "R2", "phone_number": "525512345678", "phone_status": "busy", "task_id": "T1"}
    )
    loader.upsert(wh, t, [done])
    late_poll = aa.parse_task_result(seed.ACCUAUTH_TASK_PENDING, "T1", "525512345678") | {"poll_count": 3}
    result = loader.upsert(wh, t, [late_poll])
    row = wh.execute(f"SELECT status, phone_status, reason, source, poll_count FROM {t}").fetchone()
    assert row[:3] == ("OK", "busy", None)
    assert row[4] == 3  # the poll still counts
    assert result.updated == 1


def test_voice_and_call_records_load(wh):
    voice = nx.parse_voice_receipt(seed.VOICE_RECEIPT_FIELDS)
    call = nx.parse_call_record(seed.CALL_RECORD_PUSH)
    legs = nx.parse_call_record({"callId": "c-2", "legList": [{"callStartAt": 1, "callFinishAt": 2}]})
    assert loader.upsert(wh, "telco.nxcloud_voice_receipt", [voice, voice]).inserted == 1
    assert loader.upsert(wh, "telco.nxcloud_call_record", [call, legs]).inserted == 2
    assert loader.upsert(wh, "telco.nxcloud_call_record", [call, legs]).unchanged == 2
    assert wh.execute(
        "SELECT leg_list->0->>'callFinishAt' FROM telco.nxcloud_call_record WHERE call_id='c-2'"
    ).fetchone() == ("2",)


def test_unknown_column_is_refused(wh):
    with pytest.raises(ValueError, match="not loadable"):
        loader.upsert(wh, "telco.nxcloud_number_check", [], columns=["batch_no", "phone", "drop_table"])


def test_a_load_naming_only_some_columns_still_follows_the_merge_rule(wh):
    """The merge rule ranks answers by pushed_at / queried_at; a caller whose ``columns`` leave
    them out loads them as NULL (an answer of unknown rank) instead of failing the statement."""
    table = "telco.nxcloud_number_check"
    pushed = {**_synthetic_rows(1)[0], "pushed_at": datetime(2026, 1, 5, 12, 0, tzinfo=UTC)}
    loader.upsert(wh, table, [pushed])
    poorer = {
        "batch_no": "bulk-1",
        "phone": pushed["phone"],
        "code": 2,
        "carrier": "Telcel",
        "source": "query",
    }
    result = loader.upsert(wh, table, [poorer], columns=["batch_no", "phone", "code", "carrier", "source"])
    assert (result.inserted, result.updated) == (0, 1)  # the hole is filled ...
    row = wh.execute(
        f"SELECT code, carrier, pushed_at, source FROM {table} WHERE phone = %s", [pushed["phone"]]
    )
    assert row.fetchone() == (0, "Telcel", pushed["pushed_at"], "push")  # ... the pushed code is kept


def test_mixed_load_repeating_keys_updates_existing_and_inserts_new_with_the_last_value(wh):
    loader.upsert(wh, "telco.nxcloud_number_check", _synthetic_rows(3))
    stamp = wh.execute("SELECT max(updated_at) FROM telco.nxcloud_number_check").fetchone()[0]
    # rows 0-1 exist (row 0 changes twice, row 1 is repeated unchanged), rows 3-4 are new (row 4 twice)
    rows = (
        _synthetic_rows(1, price="0.0200")
        + _synthetic_rows(2)
        + _synthetic_rows(1, price="0.0300")
        + _synthetic_rows(5)[3:]
        + _synthetic_rows(5, price="0.0500")[4:]
    )
    result = loader.upsert(wh, "telco.nxcloud_number_check", rows)
    assert (result.inserted, result.updated) == (2, 1)
    prices = dict(wh.execute("SELECT phone, price FROM telco.nxcloud_number_check").fetchall())
    assert prices == {
        "8613800000000": Decimal("0.0300"),
        "8613800000001": Decimal("0.0100"),
        "8613800000002": Decimal("0.0100"),
        "8613800000003": Decimal("0.0100"),
        "8613800000004": Decimal("0.0500"),
    }
    untouched = wh.execute(
        "SELECT count(*) FROM telco.nxcloud_number_check WHERE phone IN ('8613800000001', '8613800000002') "
        "AND updated_at = %s",
        (stamp,),
    ).fetchone()[0]
    assert untouched == 2


def test_number_check_updates_can_be_hot(wh):
    """V0500: no index of the table contains updated_at, and pages keep room for new versions."""
    indexed = wh.execute(
        """SELECT a.attname FROM pg_index i JOIN pg_attribute a
             ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
           WHERE i.indrelid = 'telco.nxcloud_number_check'::regclass"""
    ).fetchall()
    assert {name for (name,) in indexed} == {"batch_no", "phone", "e164", "check_level"}
    options = wh.execute(
        "SELECT reloptions FROM pg_class WHERE oid = 'telco.nxcloud_number_check'::regclass"
    ).fetchone()[0]
    assert "fillfactor=85" in options


def test_a_query_row_never_changes_a_pushed_value_and_price_travels_with_its_currency(wh):
    push = nx.parse_number_check_push(seed.NUMBER_CHECK_PUSH_HLR)
    push.update(pushed_at=datetime(2026, 11, 1, tzinfo=UTC), check_level=5)  # our submitted level
    loader.upsert(wh, "telco.nxcloud_number_check", [push])
    columns = ("check_level", "validity", "reachable", "roaming", "carrier", "price", "currency")
    select = f"SELECT {', '.join(columns)} FROM telco.nxcloud_number_check"  # noqa: S608 - static
    before = wh.execute(select).fetchone()
    assert before[1] == "YES" and before[5] is not None
    # the vendor's example row shape: undocumented level, empty flags, price 0 in another currency
    query = nx.parse_query_row(
        {"batchNo": push["batch_no"], "phone": push["phone"], "checkLevel": 2, "validity": "", "reachable": "",
         "roaming": "", "carrier": "Other", "price": 0, "currency": "VND"}
    )  # fmt: skip
    query["queried_at"] = datetime(2026, 11, 2, tzinfo=UTC)
    loader.upsert(wh, "telco.nxcloud_number_check", [query])
    assert wh.execute(select).fetchone() == before
    assert wh.execute("SELECT vendor_check_level FROM telco.nxcloud_number_check").fetchone() == (2,)
