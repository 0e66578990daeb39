"""docs/data-dictionary.md is generated from the catalogue, enums.py and the suites, and current."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from phonecheck.quality import dictionary

pytestmark = pytest.mark.integration

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "data-dictionary.md"


def test_committed_data_dictionary_is_up_to_date(warehouse_dsn):
    with psycopg.connect(warehouse_dsn) as conn:
        generated = dictionary.render(conn)
    assert COMMITTED.read_text(encoding="utf-8") == generated, (
        "docs/data-dictionary.md is stale: run `make data-dictionary` "
        "(or .venv/bin/python -m phonecheck.quality.dictionary > docs/data-dictionary.md)"
    )


def test_dictionary_lists_every_mart_view_and_enum_values(warehouse_dsn):
    with psycopg.connect(warehouse_dsn) as conn:
        text = dictionary.render(conn)
    for view in ("latest_phone_status", "daily_spend", "daily_outcome_rates", "voice_call_outcomes"):
        assert f"### `mart.{view}` (view)" in text
    assert "- `'invalid_number'`: Invalid number" in text  # dial.response meaning, from enums.py
    assert "| `number_type` | text | yes |" in text and "in nxcloud_number_type" in text


def test_a_partition_made_on_another_day_leaves_the_dictionary_unchanged(warehouse_dsn):
    """The inbox gains a partition a day: the dictionary documents the parent only."""
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        before = dictionary.render(conn)
        conn.execute(
            "CREATE TABLE raw.webhook_event_p20991231 PARTITION OF raw.webhook_event "
            "FOR VALUES FROM ('2099-12-31') TO ('2100-01-01')"
        )
        after = dictionary.render(conn)
    assert "webhook_event_p20991231" not in after
    assert "### `raw.webhook_event` (partitioned table)" in after
    assert after == before
