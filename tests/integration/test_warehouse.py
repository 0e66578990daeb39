"""Warehouse runtime and migrations against a real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from phonecheck import warehouse

pytestmark = pytest.mark.integration

CONTRACT_TABLES = {
    "raw.webhook_event",
    "ops.number_check_submission",
    "telco.nxcloud_number_check",
    "telco.accuauth_phone_check",
    "telco.nxcloud_voice_receipt",
    "telco.nxcloud_call_record",
    "dq.validation_result",
}

# Every field of the vendor documents (docs/vendors/) must have a column (snake_case) in its typed table.
SEED_FIELDS = {
    "telco.nxcloud_number_check": [
        "message_id",
        "code",
        "msg",
        "batch_no",
        "phone",
        "pre_check",
        "region_code",
        "country_code",
        "national_number",
        "stand_number",
        "number_type",
        "carrier",
        "validity",
        "reachable",
        "roaming",
        "early",
        "answered",
        "response",
        "price",
        "currency",
        "check_level",
    ],
    "telco.accuauth_phone_check": [
        "request_id",
        "status",
        "phone_number",
        "phone_status",
        "reason",
        "task_id",
    ],
    "telco.nxcloud_voice_receipt": [
        "phone",
        "country_code",
        "duration",
        "voice_type",
        "message_id",
        "basic_price",
        "second",
        "cycle",
        "size",
        "customer_price",
        "start_time",
        "end_time",
        "result",
        "hangup_cause",
        "hangup_disposition",
        "ivr_result",
        "record_url",
        "ext",
    ],
    "telco.nxcloud_call_record": [
        "record_id",
        "business_id",
        "customer_bind_id",
        "bind_id",
        "call_id",
        "did",
        "caller",
        "callee",
        "call_status",
        "call_status_msg",
        "duration",
        "start_at",
        "answer_at",
        "hangup_at",
        "hangup_cause",
        "hangup_code",
        "hangup",
        "record_file",
    ],
}
BOOKKEEPING = ["source", "first_seen_at", "updated_at", "raw_event_id"]


def _columns(conn, table):
    schema, name = table.split(".")
    return {
        row[0]: row[1]
        for row in conn.execute(
            """SELECT a.attname, col_description(a.attrelid, a.attnum)
               FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped""",
            (f"{schema}.{name}",),
        )
    }


def test_migrations_are_rerunnable(fresh_warehouse_dsn):
    assert warehouse.migrate(fresh_warehouse_dsn) == []  # already applied by the template
    with psycopg.connect(fresh_warehouse_dsn, autocommit=True) as conn:
        for m in warehouse.list_migrations():  # and each file is idempotent on its own
            conn.execute(m.path.read_text())
            conn.execute(m.path.read_text())
    assert warehouse.migrate(fresh_warehouse_dsn) == []


def test_migrate_applies_everything_on_an_empty_database(warehouse_server_dsn):
    with warehouse.throwaway_database(warehouse_server_dsn) as dsn:
        applied = warehouse.migrate(dsn)
        assert [m.version for m in applied] == [m.version for m in warehouse.list_migrations()]
        assert warehouse.migrate(dsn) == []
        tables = {f"{s}.{n}" for s, n, _ in warehouse.list_tables(dsn)}
    assert CONTRACT_TABLES <= tables


@pytest.mark.parametrize("table", sorted(CONTRACT_TABLES))
def test_every_contract_column_is_documented(wh, table):
    schema, name = table.split(".")
    assert wh.execute("SELECT obj_description(%s::regclass, 'pg_class')", (table,)).fetchone()[0]
    undocumented = [col for col, comment in _columns(wh, table).items() if not comment]
    assert undocumented == []


@pytest.mark.parametrize("table", sorted(SEED_FIELDS))
def test_typed_tables_have_every_seed_field_and_bookkeeping(wh, table):
    missing = [c for c in SEED_FIELDS[table] + BOOKKEEPING if c not in _columns(wh, table)]
    assert missing == []


def test_fresh_databases_are_isolated(fresh_warehouse_dsn, warehouse_dsn):
    assert fresh_warehouse_dsn != warehouse_dsn
    with psycopg.connect(fresh_warehouse_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ops.rejected_number (vendor, raw_input, reason) VALUES ('nxcloud', 'x', 'test')"
        )
    with psycopg.connect(warehouse_dsn) as conn:
        assert (
            conn.execute("SELECT count(*) FROM ops.rejected_number WHERE raw_input = 'x'").fetchone()[0] == 0
        )


def test_airflow_connection_json_round_trips_a_socket_dsn():
    conn = warehouse.airflow_connection_json("postgresql://postgres:@/wh?host=/tmp/sock")
    assert '"host": "/tmp/sock"' in conn and '"schema": "wh"' in conn
