"""Retention on a real PostgreSQL: the inbox partitioned by day (migrated from the unpartitioned
table without losing a row), expired partitions dropped whole, nothing young touched, and the
inbox's dedupe (a duplicate push stored once) intact through the key table."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from phonecheck import warehouse
from phonecheck.privacy.retention import enforce_retention

pytestmark = pytest.mark.integration

# a fixed clock: the last day of a month, just before 00:00 UTC, and in the past, so that the
# partitions a fresh warehouse got for the real current week are never "expired" here
NOW = datetime(2026, 1, 31, 23, 58, 30, tzinfo=UTC)


def store(conn, key: str, received_at: datetime, *, endpoint: str = "nxcloud_voice", body: bytes = b"x=1"):
    return conn.execute(
        """SELECT event_id, inserted FROM raw.store_webhook_event(
               %s, 'nxcloud', %s, 'application/x-www-form-urlencoded', %s, NULL, '{"x": "1"}', 'parsed',
               NULL, %s, false)""",
        (endpoint, key, body, received_at),
    ).fetchone()


def partitions(conn) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'raw.webhook_event'::regclass ORDER BY 1"""
        )
    ]


def day_partition(moment: datetime) -> str:
    return "webhook_event_p" + moment.astimezone(UTC).strftime("%Y%m%d")


def test_migration_to_partitions_keeps_every_row_and_its_dedupe(warehouse_server_dsn, tmp_path):
    before_v0710 = tmp_path / "migrations"
    before_v0710.mkdir()
    for migration in warehouse.list_migrations():
        if migration.version < 710:
            shutil.copy(migration.path, before_v0710 / migration.path.name)
    with warehouse.throwaway_database(warehouse_server_dsn, prefix="phonecheck_partition") as dsn:
        warehouse.migrate(dsn, before_v0710)
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute(
                "SELECT relkind FROM pg_class WHERE oid = 'raw.webhook_event'::regclass"
            ).fetchone() == ("r",)
            # an inbox with history: 300 pushes over 200 days, some delivered twice, one unparseable
            for i in range(300):
                conn.execute(
                    """INSERT INTO raw.webhook_event (endpoint, vendor, dedupe_key, content_type, body, payload,
                           parse_status, received_at, last_received_at, delivery_count, processed_at)
                       VALUES ('nxcloud_number_check', 'nxcloud', %s, 'application/json', %s, %s, %s, %s, %s,
                               %s, %s)""",
                    (
                        f"b{i % 7}|52551234{i:04d}|m{i}",
                        f'{{"phone": "52551234{i:04d}"}}'.encode(),
                        None if i == 13 else f'{{"phone": "52551234{i:04d}"}}',
                        "error" if i == 13 else "parsed",
                        NOW - timedelta(days=200 - i * 2 // 3, hours=i % 24),
                        NOW - timedelta(days=200 - i * 2 // 3),
                        1 + i % 3,
                        None if i % 5 else NOW,
                    ),
                )
            conn.execute(
                """INSERT INTO telco.nxcloud_voice_receipt (message_id, phone, raw_event_id)
                   SELECT 'm' || event_id, '525512340000', event_id FROM raw.webhook_event LIMIT 3"""
            )
            snapshot = "SELECT md5(string_agg(e::text, '|' ORDER BY event_id)), count(*), max(event_id) FROM raw.webhook_event e"
            digest_before = conn.execute(snapshot).fetchone()

        assert [m.version for m in warehouse.migrate(dsn) if m.version == 710] == [710]

        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute(
                "SELECT relkind FROM pg_class WHERE oid = 'raw.webhook_event'::regclass"
            ).fetchone() == ("p",)
            assert conn.execute(snapshot).fetchone() == digest_before  # every row, same ids, same values
            assert digest_before[1] == 300
            assert conn.execute("SELECT count(*) FROM raw.webhook_event_key").fetchone() == (300,)
            assert conn.execute("SELECT count(*) FROM raw.webhook_event_default").fetchone() == (0,)
            days = conn.execute(
                "SELECT count(DISTINCT (received_at AT TIME ZONE 'UTC')::date) FROM raw.webhook_event"
            ).fetchone()[0]
            assert len([p for p in partitions(conn) if p != "webhook_event_default"]) >= days
            # the indexes came along (on every partition)
            indexes = {
                r[0]
                for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'webhook_event'")
            }
            assert {
                "webhook_event_pkey",
                "webhook_event_unprocessed_idx",
                "webhook_event_nxcloud_batch_idx",
            } <= indexes
            # typed rows keep their link
            assert conn.execute(
                "SELECT count(*) FROM telco.nxcloud_voice_receipt v JOIN raw.webhook_event e ON e.event_id = v.raw_event_id"
            ).fetchone() == (3,)
            # dedupe is intact: an old push delivered again is counted, not stored twice
            old_key, old_count = conn.execute(
                "SELECT dedupe_key, delivery_count FROM raw.webhook_event ORDER BY event_id LIMIT 1"
            ).fetchone()
            event_id, inserted = store(conn, old_key, NOW, endpoint="nxcloud_number_check")
            assert not inserted
            assert conn.execute(
                "SELECT delivery_count, last_received_at FROM raw.webhook_event WHERE event_id = %s",
                (event_id,),
            ).fetchone() == (old_count + 1, NOW)
            new_id, inserted = store(conn, "brand-new", NOW)
            assert inserted and new_id > digest_before[2]
            assert conn.execute("SELECT count(*) FROM raw.webhook_event").fetchone() == (301,)
            # the migration is re-runnable
            conn.execute(
                (warehouse.MIGRATIONS_DIR / "V0710__webhook_event_partitioned.sql").read_text(
                    encoding="utf-8"
                )
            )
            assert conn.execute("SELECT count(*) FROM raw.webhook_event").fetchone() == (301,)


def test_a_duplicate_push_is_stored_once_whoever_writes(wh):
    first = store(wh, "m1|525512340000", NOW)
    again = store(wh, "m1|525512340000", NOW + timedelta(seconds=5))
    assert first[1] is True and again == (first[0], False)
    assert wh.execute("SELECT delivery_count, last_received_at FROM raw.webhook_event").fetchone() == (
        2,
        NOW + timedelta(seconds=5),
    )
    # a group commit with the key twice and a key already stored
    rows = wh.execute(
        """SELECT endpoint, dedupe_key, event_id, inserted FROM raw.store_webhook_events(
               %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            ["nxcloud_voice"] * 3,
            ["nxcloud"] * 3,
            ["m2|1", "m2|1", "m1|525512340000"],
            [None] * 3,
            [b"a", b"a", b"b"],
            [None] * 3,
            [None] * 3,
            ["parsed"] * 3,
            [None] * 3,
            [NOW, NOW + timedelta(seconds=1), NOW + timedelta(seconds=9)],
        ),
    ).fetchall()
    assert [(r[1], r[3]) for r in rows] == [("m1|525512340000", False), ("m2|1", True)]
    assert wh.execute("SELECT dedupe_key, delivery_count FROM raw.webhook_event ORDER BY 1").fetchall() == [
        ("m1|525512340000", 3),
        ("m2|1", 2),
    ]
    # a plain INSERT of a stored key is refused like a unique constraint
    with pytest.raises(psycopg.errors.UniqueViolation):
        wh.execute(
            """INSERT INTO raw.webhook_event (endpoint, vendor, dedupe_key, body, received_at)
               VALUES ('nxcloud_voice', 'nxcloud', 'm2|1', 'c', now() - interval '3 days')"""
        )


def test_retention_drops_expired_partitions_and_touches_nothing_young(wh, tmp_path):
    windows = dict(wh.execute("SELECT area, keep_days FROM ops.retention_policy").fetchall())
    assert windows["raw_inbox"] == 90  # the documented conservative default
    ages = {"expired": 120, "almost": 80, "young": 1, "today": 0}
    moments = {name: NOW - timedelta(days=days) for name, days in ages.items()}
    for moment in moments.values():
        wh.execute("SELECT raw.ensure_webhook_event_partitions(%s, %s)", (moment.date(), moment.date()))
    for name, moment in moments.items():
        store(wh, f"{name}|525512340000", moment)
    # a replay from a day without a partition lands in the default partition
    store(wh, "stray|1", NOW - timedelta(days=100, hours=3))
    assert wh.execute("SELECT count(*) FROM raw.webhook_event_default").fetchone() == (1,)
    wh.execute(
        """INSERT INTO dq.validation_result (validation_run_id, table_name, suite_name, expectation_type, success,
               validated_at) VALUES ('old', 't', 's', 'e', true, %s), ('new', 't', 's', 'e', true, %s)""",
        (NOW - timedelta(days=200), NOW - timedelta(days=2)),
    )
    dry = enforce_retention(wh.info.dsn, now=NOW, dry_run=True, data_docs_dir=tmp_path)
    assert dry.dropped_partitions == [day_partition(moments["expired"])]
    assert wh.execute("SELECT count(*) FROM raw.webhook_event").fetchone() == (
        5,
    )  # a dry run changes nothing

    result = enforce_retention(wh.info.dsn, now=NOW, data_docs_dir=tmp_path)
    assert result.dropped_partitions == [day_partition(moments["expired"])]
    assert result.counts["raw.webhook_event_default"] == 1
    kept = [r[0] for r in wh.execute("SELECT dedupe_key FROM raw.webhook_event ORDER BY received_at")]
    assert kept == ["almost|525512340000", "young|525512340000", "today|525512340000"]
    assert [
        r[0] for r in wh.execute("SELECT dedupe_key FROM raw.webhook_event_key ORDER BY received_at")
    ] == kept
    assert day_partition(moments["expired"]) not in partitions(wh)
    assert day_partition(NOW + timedelta(days=7)) in partitions(wh)  # the coming week is ready
    assert [r[0] for r in wh.execute("SELECT validation_run_id FROM dq.validation_result")] == ["new"]

    # the clock moves on 15 days: "almost" expires, the others stay; a second run is a no-op
    later = enforce_retention(wh.info.dsn, now=NOW + timedelta(days=15), data_docs_dir=tmp_path)
    assert later.dropped_partitions == [day_partition(moments["almost"])]
    assert [
        r[0] for r in wh.execute("SELECT dedupe_key FROM raw.webhook_event ORDER BY received_at")
    ] == kept[1:]
    again = enforce_retention(wh.info.dsn, now=NOW + timedelta(days=15), data_docs_dir=tmp_path)
    assert again.dropped_partitions == [] and not any(again.counts.values())


def test_retention_creates_the_coming_utc_days_whatever_the_timezone_of_now(wh, tmp_path):
    # 00:00:30 UTC on 1 February is still 31 January in Honolulu: the partitions are UTC days
    moment = datetime(2026, 2, 1, 0, 0, 30, tzinfo=UTC)
    before = set(partitions(wh))
    result = enforce_retention(
        wh.info.dsn, now=moment.astimezone(ZoneInfo("Pacific/Honolulu")), data_docs_dir=tmp_path
    )
    created = set(partitions(wh)) - before
    assert created == {day_partition(moment + timedelta(days=d)) for d in range(8)}
    assert result.created_partitions == 8


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Honolulu"])
def test_partitions_ahead_start_from_the_utc_day_in_any_session_timezone(wh, zone):
    wh.execute(psycopg.sql.SQL("SET TimeZone = {}").format(psycopg.sql.Literal(zone)))
    with wh.transaction():  # one now(): the day cannot change between the call and the check
        days = [name for name in partitions(wh) if name != "webhook_event_default"]
        for name in days:
            wh.execute(psycopg.sql.SQL("DROP TABLE raw.{}").format(psycopg.sql.Identifier(name)))
        assert wh.execute("SELECT raw.ensure_webhook_event_partitions_ahead(1)").fetchone() == (2,)
        utc_today = wh.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]
        assert [name for name in partitions(wh) if name != "webhook_event_default"] == [
            "webhook_event_p" + (utc_today + timedelta(days=d)).strftime("%Y%m%d") for d in (0, 1)
        ]
