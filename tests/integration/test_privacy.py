"""Personal data tiers on a real PostgreSQL: classification tags, the analyst role (pseudonyms
only, every readable column checked), pii_reader (raw values), the documented analyst queries."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from phonecheck.privacy.classification import unclassified_columns, untagged_columns_holding
from tests.integration.test_marts import A, B, C, D, E, loaded  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

ANALYSTS_DOC = Path(__file__).resolve().parents[2] / "docs" / "analysts.md"
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")


def known_numbers(conn: psycopg.Connection) -> set[str]:
    """Every number-like value the raw side holds (read as the warehouse owner): digits, 7+ long."""
    values = conn.execute(
        """SELECT v FROM (
               SELECT unnest(ARRAY[phone, e164, national_number, stand_number]) FROM telco.nxcloud_number_check
               UNION ALL SELECT unnest(ARRAY[phone_number, e164]) FROM telco.accuauth_phone_check
               UNION ALL SELECT unnest(ARRAY[phone, e164]) FROM telco.nxcloud_voice_receipt
               UNION ALL SELECT unnest(ARRAY[caller, callee, did, did_x, did_y]) FROM telco.nxcloud_call_record
               UNION ALL SELECT unnest(phones) FROM ops.number_check_submission
           ) t(v) WHERE v IS NOT NULL"""
    ).fetchall()
    digits = {re.sub(r"\D", "", v) for (v,) in values}
    return {d for d in digits if len(d) >= 7}


def analyst_readable(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    """(schema, relation, column) of every column the analyst role may SELECT, in any schema."""
    return conn.execute(
        """SELECT n.nspname, c.relname, a.attname
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
             AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg\\_%%'
             AND has_column_privilege('analyst', c.oid, a.attnum, 'SELECT')
           ORDER BY 1, 2, a.attnum""",
        (list(SYSTEM_SCHEMAS),),
    ).fetchall()


def analyst_leaks(conn: psycopg.Connection, numbers: set[str]) -> list[str]:
    """Every (relation.column: value) the analyst role reads that holds a number or a URL."""
    assert numbers, "no numbers loaded: the check would pass vacuously"
    columns = analyst_readable(conn)
    assert columns, "analyst reads nothing"
    leaks = []
    conn.execute("SET ROLE analyst")
    try:
        for schema, rel, col in columns:
            values = conn.execute(
                psycopg.sql.SQL("SELECT DISTINCT {}::text FROM {}").format(
                    psycopg.sql.Identifier(col), psycopg.sql.Identifier(schema, rel)
                )
            ).fetchall()
            for (value,) in values:
                if value is None:
                    continue
                if "://" in value or any(n in re.sub(r"\D", "", value) for n in numbers):
                    leaks.append(f"{schema}.{rel}.{col}: {value[:80]}")
        # statistics are readable by everyone for the columns they may read (most common values)
        for row in conn.execute(
            "SELECT schemaname, tablename, attname, most_common_vals::text FROM pg_stats"
        ):
            if row[3] and any(n in re.sub(r"\D", "", row[3]) for n in numbers):
                leaks.append(f"pg_stats {row[0]}.{row[1]}.{row[2]}")
    finally:
        conn.execute("RESET ROLE")
    return leaks


def documented_queries() -> list[str]:
    text = ANALYSTS_DOC.read_text(encoding="utf-8")
    block = text[text.index("```sql") + len("```sql") :]
    block = block[: block.index("```")]
    return [q.strip() for q in block.split(";") if q.strip()]


@pytest.fixture
def with_dq_sample(loaded):  # noqa: F811
    """``loaded`` plus a failed dq result whose sample holds A's digits and C's E.164."""
    loaded.execute(
        """INSERT INTO dq.validation_result (validation_run_id, table_name, suite_name, expectation_type,
               column_name, success, unexpected_count, unexpected_sample, row_filter, validated_at)
           VALUES ('r1', 'telco.nxcloud_number_check', 's', 'expect_column_values_to_match_regex', 'e164',
                   false, 2, %s, %s, now())""",
        (Jsonb([{"batch_no": "b1", "phone": A[1:]}, {"e164": C, "n": int(C[1:])}]), f"phone IN ({A[1:]})"),
    )
    loaded.execute("ANALYZE")
    return loaded


def test_number_like_columns_are_all_classified_and_a_new_one_is_caught(wh):
    assert unclassified_columns(wh) == []
    wh.execute("ALTER TABLE ops.rejected_number ADD COLUMN contact_msisdn text")
    wh.execute("CREATE TABLE telco.later_table (caller_number text)")
    assert unclassified_columns(wh) == [
        "ops.rejected_number.contact_msisdn",
        "telco.later_table.caller_number",
    ]
    wh.execute("SELECT ops.classify_column('ops', 'rejected_number', 'contact_msisdn', 'pii')")
    wh.execute("COMMENT ON COLUMN telco.later_table.caller_number IS '[pii] who called'")
    assert unclassified_columns(wh) == []


def test_numbers_only_sit_in_columns_tagged_pii(with_dq_sample):
    wh = with_dq_sample
    numbers = known_numbers(wh)
    assert {A[1:], D[1:], "85235757583"} <= numbers
    assert untagged_columns_holding(wh, sorted(numbers)) == []
    # and it would notice one
    wh.execute("ALTER TABLE ops.rejected_number ADD COLUMN note text")
    wh.execute(
        "INSERT INTO ops.rejected_number (vendor, raw_input, reason, note) VALUES ('x', 'y', 'z', %s)", (B,)
    )
    assert untagged_columns_holding(wh, sorted(numbers)) == ["ops.rejected_number.note"]


def test_analyst_reads_only_pseudonymised_views_and_no_column_holds_a_number_or_a_recording(with_dq_sample):
    wh = with_dq_sample
    readable = {f"{s}.{r}" for s, r, _ in analyst_readable(wh)}
    assert readable == {
        "analyst.phone_check_result", "analyst.latest_phone_status", "analyst.daily_spend",
        "analyst.daily_outcome_rates", "analyst.voice_call_outcomes", "analyst.nxcloud_number_check",
        "analyst.accuauth_phone_check", "analyst.nxcloud_voice_receipt", "analyst.nxcloud_call_record",
        "analyst.validation_result",
    }  # fmt: skip
    assert analyst_leaks(wh, known_numbers(wh)) == []
    # the check is not vacuous: the raw side does hold the recording and the numbers
    assert wh.execute(
        "SELECT count(*) FROM telco.nxcloud_call_record WHERE record_file LIKE 'https://%'"
    ).fetchone()[0]
    wh.execute("GRANT USAGE ON SCHEMA telco TO analyst")
    wh.execute("GRANT SELECT ON telco.nxcloud_call_record TO analyst")
    try:
        leaks = analyst_leaks(wh, known_numbers(wh))
    finally:
        wh.execute("REVOKE SELECT ON telco.nxcloud_call_record FROM analyst")
        wh.execute("REVOKE USAGE ON SCHEMA telco FROM analyst")
    assert {leak.split(":")[0] for leak in leaks} == {
        f"telco.nxcloud_call_record.{c}" for c in ("did", "caller", "callee", "record_file")
    }


def test_pseudonyms_are_keyed_hmac_of_e164_and_join_like_numbers(with_dq_sample):
    wh = with_dq_sample
    secret = wh.execute("SELECT secret FROM ops.pseudonym_key").fetchone()[0]

    def key(e164: str) -> str:
        return hmac.new(secret, e164.encode(), hashlib.sha256).hexdigest()[:32]

    wh.execute("SET ROLE analyst")
    try:
        keys = {r[0] for r in wh.execute("SELECT phone_key FROM analyst.latest_phone_status")}
        per_vendor = wh.execute(
            """SELECT count(DISTINCT n.phone_key) FROM analyst.nxcloud_number_check n
               JOIN analyst.accuauth_phone_check a USING (phone_key)"""
        ).fetchone()[0]
        masked = wh.execute(
            "SELECT unexpected_sample, row_filter FROM analyst.validation_result WHERE NOT success"
        ).fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            wh.execute("SELECT secret FROM ops.pseudonym_key")
    finally:
        wh.execute("RESET ROLE")
    assert keys == {key(n) for n in (A, B, C, D, E)}
    assert per_vendor == 1  # D was checked by both vendors: its two pseudonyms are the same
    assert masked == (
        [{"batch_no": "b1", "phone": "86******8000"}, {"e164": "+86******8002", "n": "86******8002"}],
        "phone IN (86******8000)",
    )


def test_analyst_has_a_statement_timeout_and_creates_nothing(wh):
    config = wh.execute("SELECT rolconfig FROM pg_roles WHERE rolname = 'analyst'").fetchone()[0]
    assert "statement_timeout=2min" in config
    wh.execute("SET ROLE analyst")
    try:
        for statement in (
            "CREATE TEMP TABLE t (x int)",
            "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE TABLE public.t (x int)",
            "CREATE VIEW analyst.v AS SELECT 1",
            "CREATE TABLE mart.t (x int)",
            "SELECT 1 FROM mart.latest_phone_status",
            "SELECT 1 FROM telco.nxcloud_number_check",
            "SELECT 1 FROM dq.validation_result",
            "SELECT 1 FROM raw.webhook_event",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                wh.execute(statement)
    finally:
        wh.execute("RESET ROLE")


def test_pii_reader_reads_the_raw_values_but_not_the_key(with_dq_sample):
    wh = with_dq_sample
    wh.execute("SET ROLE pii_reader")
    try:
        assert {r[0] for r in wh.execute("SELECT e164 FROM mart.latest_phone_status")} == {A, B, C, D, E}
        assert wh.execute("SELECT caller FROM telco.nxcloud_call_record WHERE caller IS NOT NULL").fetchone()
        assert wh.execute("SELECT count(*) FROM raw.webhook_event").fetchone() == (0,)
        assert wh.execute("SELECT ops.phone_pseudonym(%s)", (A,)).fetchone()[0]
        wh.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS x")  # a working role keeps temp tables
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            wh.execute("SELECT secret FROM ops.pseudonym_key")
    finally:
        wh.execute("RESET ROLE")


def test_documented_analyst_queries_answer_as_analyst(with_dq_sample):
    wh = with_dq_sample
    queries = documented_queries()
    assert len(queries) == 4
    wh.execute("SET ROLE analyst")
    try:
        a_key = wh.execute(
            "SELECT phone_key FROM analyst.phone_check_result WHERE check_key = 'b1' AND vendor = 'nxcloud'"
        ).fetchone()[0]
        # the same answers whatever the analyst's session timezone (the sample's checks fall on
        # 1 November UTC from 08:00: still October in Honolulu, already 2 November in Kiritimati)
        per_zone = {}
        for zone in ("UTC", "Pacific/Honolulu", "America/Mexico_City", "Pacific/Kiritimati"):
            wh.execute(psycopg.sql.SQL("SET TimeZone = {}").format(psycopg.sql.Literal(zone)))
            per_zone[zone] = [wh.execute(q).fetchall() for q in queries]
    finally:
        wh.execute("RESET ROLE")
        wh.execute("RESET TimeZone")
    answers = per_zone["UTC"]
    for zone, zone_answers in per_zone.items():
        assert [zone_answers[0], zone_answers[3]] == [answers[0], answers[3]], zone
    assert [row[0] for row in answers[0]] == [a_key]  # A's latest HLR says NO; B's says YES
    assert len(answers[2]) == 1 and answers[2][0][5] == {"batch_no": "b1", "phone": "86******8000"}
    assert [(vendor, month, n) for vendor, month, n in answers[3]] == [
        ("accuauth", datetime(2026, 11, 1), 2),
        ("nxcloud", datetime(2026, 11, 1), 4),
    ]


def test_erasure_dry_run_only_counts_then_erasure_deletes_and_redacts(with_dq_sample, tmp_path):
    from phonecheck.privacy.erasure import erase_numbers

    wh = with_dq_sample
    dsn = wh.info.dsn
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.html").write_text(f"<td>{A}</td><td>{B}</td>", encoding="utf-8")
    where = {"spool_dir": tmp_path / "spool", "data_docs_dir": tmp_path / "docs"}

    def holdings() -> tuple:
        return (
            wh.execute("SELECT count(*) FROM telco.nxcloud_number_check WHERE e164 = %s", (A,)).fetchone()[0],
            wh.execute(
                "SELECT count(*) FROM dq.validation_result WHERE unexpected_sample::text LIKE %s",
                (f"%{A[1:]}%",),
            ).fetchone()[0],
            (tmp_path / "docs" / "page.html").read_text(encoding="utf-8"),
        )

    before = holdings()
    assert before[:2] == (4, 1)
    dry = erase_numbers(dsn, [A], reason="dry", dry_run=True, **where)
    assert holdings() == before
    assert dry.found["+86******8000"] == {
        "telco.nxcloud_number_check": 4,
        "dq.validation_result.unexpected_sample": 1,
        "dq.validation_result.row_filter": 1,
        "data_docs": 1,
    }
    report = erase_numbers(dsn, [A], reason="ticket 7", **where)
    assert report.found == dry.found
    assert holdings()[:2] == (0, 0) and A not in holdings()[2] and B in holdings()[2]
    assert erase_numbers(dsn, [A], reason="ticket 7", **where).total == 0
    actions = wh.execute("SELECT action, count(*) FROM ops.erasure_log GROUP BY 1 ORDER BY 1").fetchall()
    assert actions == [("deleted", 1), ("found", 4), ("redacted", 3), ("requested", 3)]
