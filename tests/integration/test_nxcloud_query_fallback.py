"""The query API is the fallback for what the pushes did not bring, and one merge gives the
same row whatever order the answers arrive in.

Query calls are counted from the sandbox's own wire log (``/_sandbox/calls``) over real HTTP;
the strict profile plays the unfriendly vendor (query rows listed only minutes after a submit,
in the shape of its example rows, dated in China time).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import permutations
from types import SimpleNamespace

import psycopg
import pytest

from phonecheck.nxcloud.planning import Chunk
from phonecheck.nxcloud.submissions import submit_chunk

pytestmark = pytest.mark.integration

DAG_ID = "nxcloud_number_check"


def mx(count: int, start: int) -> list[str]:
    return [f"525513{start + i:06d}" for i in range(count)]


def context(run_id: str, dag_id: str = DAG_ID) -> dict:
    return {"dag": SimpleNamespace(dag_id=dag_id), "run_id": run_id, "dag_run": None}


def query_calls(sandbox) -> list[dict]:
    """Every query call the sandbox received, with the batchNo it asked for."""
    return [
        {**call, "batch_no": json.loads(call["body"]).get("batchNo")}
        for call in sandbox.control.calls(event="nxcloud.query")
    ]


def dr_url_of(receiver) -> str:
    from phonecheck.webhook_urls import NXCLOUD_NUMBER_CHECK, webhook_url

    return webhook_url(NXCLOUD_NUMBER_CHECK, base_url=receiver.base_url, token=receiver.token)


def submit_batches(
    sandbox, receiver, run_id: str, batches: dict[str, list[str]], *, unpushed: str | None = None
):
    """Submit each batch as run ``run_id`` would; the vendor never pushes batch ``unpushed``."""
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    client = NxCloudHook().get_client()
    with psycopg.connect(receiver.dsn) as conn:
        for batch_no, phones in batches.items():
            sandbox.control.faults(
                *([{"target": "push.number_check", "kind": "drop"}] if batch_no == unpushed else [])
            )
            submit_chunk(
                conn, client, Chunk(batch_no, "MX", 1, 0, tuple(phones)), dr_url=dr_url_of(receiver),
                dag_id=DAG_ID, run_id=run_id,
            )  # fmt: skip
            sandbox.control.wait_pushes()
    sandbox.control.faults()


@pytest.fixture
def strict(nxcloud_wired):
    sandbox, receiver = nxcloud_wired
    sandbox.control.settings(profile="strict")
    return SimpleNamespace(sandbox=sandbox, receiver=receiver, dsn=receiver.dsn)


def listed_dates(client, batch_no: str) -> list:
    """The vendor date that lists ``batch_no`` (the strict vendor lists a batch only a few vendor
    minutes after its submit, so this asks again until it does)."""
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while not (days := client.batch_dates_listed(batch_no, datetime.now(UTC) - timedelta(hours=1))):
        assert datetime.now(UTC) < deadline, "the query API never listed the batch"
    return days


def daily_sync_of_today(run_id: str) -> dict:
    from phonecheck_airflow.tasks import nxcloud_daily

    ctx = context(run_id, "nxcloud_number_check_daily")
    plan = nxcloud_daily.plan_day({"vendor_date": datetime.now(UTC).date().isoformat()}, ctx)
    return nxcloud_daily.sync_day(plan, ctx)


def test_a_run_whose_pushes_all_arrived_makes_no_query_call_nor_does_the_daily_sync(strict, run_dag):
    numbers = mx(30, start=1000)
    run = run_dag(
        DAG_ID,
        conf={"numbers": "\n".join("+" + n for n in numbers), "default_region": "MX", "check_level": "basic",
              "batch_label": "allpushed", "budget": 100, "max_per_chunk": 10, "wait_poll_seconds": 0.3,
              "wait_timeout_minutes": 1},
    )  # fmt: skip
    assert str(getattr(run.state, "value", run.state)) == "success"
    assert len(strict.sandbox.control.calls(event="nxcloud.check")) == 3  # the run did submit
    assert query_calls(strict.sandbox) == []
    with psycopg.connect(strict.dsn) as conn:
        loaded = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE source = 'push' AND queried_at IS NULL) "
            "FROM telco.nxcloud_number_check"
        ).fetchone()
    assert loaded == (30, 30)  # every row from its push

    synced = daily_sync_of_today("daily-after-complete-run")
    assert query_calls(strict.sandbox) == []  # the day's batches are complete: nothing to ask
    assert synced["batches_complete_from_pushes"] == 3 and synced["query_calls"] == {"missing_numbers": 0}


def test_a_batch_the_vendor_never_pushed_is_the_only_one_queried(strict):
    from phonecheck_airflow.tasks.nxcloud import reconcile

    batches = {f"fallback-{i}": mx(10, start=2000 + 100 * i) for i in range(3)}
    submit_batches(strict.sandbox, strict.receiver, "fallback", batches, unpushed="fallback-1")
    dropped = [p for p in strict.sandbox.control.pushes(kind="number_check") if p["outcome"] == "dropped"]
    assert {p["batch_no"] for p in dropped} == {"fallback-1"} and len(dropped) == 10

    # the strict vendor lists a new batch only a few vendor minutes after its submit: reconcile
    # runs after that (as it does in a run, after the wait for pushes), whatever the machine's pace
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    listed_dates(NxCloudHook().get_client(), "fallback-1")
    asked_before = len(query_calls(strict.sandbox))
    reconciled = reconcile({"run_key": f"{DAG_ID}/fallback"}, context("fallback"))
    calls = query_calls(strict.sandbox)[asked_before:]
    assert calls and {c["batch_no"] for c in calls} == {"fallback-1"}  # the unpushed batch only
    # one page holds its 10 rows: one call, or two when the vendor dates it a China day ahead
    assert len(calls) <= 2
    assert reconciled["batches_complete_from_pushes"] == 2 and reconciled["batches_queried"] == 1
    assert reconciled["numbers_missing_before_query"] == 10 and reconciled["numbers_found_by_query"] == 10
    assert reconciled["query_calls"] == {"missing_numbers": len(calls)} and reconciled["still_missing"] == 0
    with psycopg.connect(strict.dsn) as conn:
        got = dict(conn.execute("SELECT phone, source FROM telco.nxcloud_number_check").fetchall())
    assert sorted(got) == sorted(batches["fallback-1"])  # the others come from their pushes (load)

    before = len(query_calls(strict.sandbox))
    synced = daily_sync_of_today("daily-after-fallback")
    assert len(query_calls(strict.sandbox)) == before  # every batch of the day has its results
    assert synced["completed_batches"] == 3


def test_paging_stops_once_the_missing_numbers_are_listed(strict):
    """A batch of 250 numbers (3 pages) missing one push found on page 1 costs one call."""
    from phonecheck.nxcloud.sync import BatchLookup, query_batch
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    phones = mx(250, start=5000)
    submit_batches(strict.sandbox, strict.receiver, "stop-early", {"stop-early": phones})
    client = NxCloudHook().get_client()
    listed = listed_dates(client, "stop-early")
    before = len(query_calls(strict.sandbox))
    with psycopg.connect(strict.dsn) as conn:
        first_page = client.query_page(date=listed[0], page=1, batch_no="stop-early").rows
        wanted = frozenset({first_page[0]["phone"]})
        batch = query_batch(client, conn, BatchLookup("stop-early", listed, missing=wanted))
    assert (batch.pages, batch.still_missing) == (1, 0)
    assert len(query_calls(strict.sandbox)) == before + 2  # our probe of page 1, then one page


# ---- one merge, any order ----------------------------------------------------------------------

COMPARED_SKIP = ("updated_at", "first_seen_at")


def test_every_order_of_push_query_row_and_daily_sync_gives_the_same_row(nxcloud_wired, vendor_profile):
    """The same answers (the push, loaded by push processing and by ``load``; the query row read
    by ``reconcile`` and, later, by the daily sync) delivered in all 24 orders: the same rows,
    field by field."""
    from phonecheck.nxcloud.results import load_pushes, load_query_page
    from phonecheck.receiver.processing import process_inbox
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    sandbox, receiver = nxcloud_wired
    dsn = receiver.dsn
    phones = mx(10, start=8000)  # every outcome: successes and failure codes
    submit_batches(sandbox, receiver, "any-order", {"any-order": phones})
    client = NxCloudHook().get_client()
    days = listed_dates(client, "any-order")
    early, late = (client.query_page(date=days[0], page=1, batch_no="any-order") for _ in range(2))
    assert len(early.rows) == len(late.rows) == 10
    read_at = datetime.now(UTC)

    answer_of: dict[int, str] = {}

    def page_writer(page, name: str, at: datetime):
        def write(conn):
            load_query_page(conn, page, queried_at=at)
            answer_of[conn.execute("SELECT max(answer_id) FROM raw.vendor_answer").fetchone()[0]] = name

        return write

    writers = {
        "push processing": lambda conn: process_inbox(dsn),
        "load": lambda conn: load_pushes(conn, ["any-order"]),
        "reconcile": page_writer(early, "reconcile page", read_at - timedelta(minutes=30)),
        "daily sync": page_writer(late, "daily page", read_at),
    }
    results: dict[tuple[str, ...], dict[str, dict]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for order in permutations(writers):
            conn.execute("DELETE FROM telco.nxcloud_number_check")
            conn.execute("UPDATE raw.webhook_event SET processed_at = NULL, process_error = NULL")
            for name in order:
                writers[name](conn)
            cur = conn.execute("SELECT * FROM telco.nxcloud_number_check ORDER BY phone")
            names = [d.name for d in cur.description]
            table = {}
            for values in cur.fetchall():
                row = {k: v for k, v in zip(names, values, strict=True) if k not in COMPARED_SKIP}
                row["vendor_answer_id"] = answer_of.get(row["vendor_answer_id"])
                table[row["phone"]] = row
            results[order] = table
    first_order, first = next(iter(results.items()))
    assert sorted(first) == sorted(phones)
    assert {r["source"] for r in first.values()} == {"push"}
    assert {r["vendor_answer_id"] for r in first.values()} == {"daily page"}  # the latest read
    assert all(r["pushed_at"] is not None and r["raw_event_id"] is not None for r in first.values())
    for order, table in results.items():
        for phone, row in table.items():
            differs = {k: (v, first[phone][k]) for k, v in row.items() if v != first[phone][k]}
            assert not differs, f"{' > '.join(order)} vs {' > '.join(first_order)}: {phone} {differs}"


def test_counts_and_missing_numbers_follow_pushes_rows_and_refusals(warehouse_dsn):
    """Which numbers still lack a result: refused numbers (object, bare text, bare number) are not
    expected, a number listed twice is expected twice, a push or a typed row is a result, a push
    to another endpoint or a batch we did not submit is not; reconcile reads per batch what the
    one statement over all batches counted."""
    from phonecheck.nxcloud.results import count_results, missing_counts, missing_numbers, missing_results
    from phonecheck.nxcloud.sync import lookups_for

    a, b, c = mx(6, 0), mx(3, 100), mx(2, 200)
    with psycopg.connect(warehouse_dsn) as conn:
        for batch_no, phones, status, refused in (
            ("cnt-a", [*a, a[5]], "submitted", [{"number": a[0]}, a[1], int(a[2]), {"other": a[3]}, None]),
            ("cnt-b", b, "complete", None),
            ("cnt-c", c, "pending", None),
        ):
            conn.execute(
                "INSERT INTO ops.number_check_submission (vendor, batch_no, check_level, region_code, phones, "
                "phone_count, params, status, failed_numbers) VALUES ('nxcloud', %s, 1, 'MX', %s, %s, '{}', %s, %s)",
                (batch_no, phones, len(phones), status, None if refused is None else json.dumps(refused)),
            )
        for endpoint, batch_no, phone in (
            ("nxcloud_number_check", "cnt-a", a[3]),
            ("nxcloud_number_check", "cnt-a", a[0]),  # refused, pushed anyway: not counted
            ("nxcloud_voice", "cnt-a", a[4]),  # another endpoint: not a result
            ("nxcloud_number_check", "cnt-b", b[0]),
            ("nxcloud_number_check", "cnt-c", c[0]),
        ):
            payload = json.dumps({"batchNo": batch_no, "phone": phone})
            conn.execute(
                "INSERT INTO raw.webhook_event (endpoint, vendor, dedupe_key, content_type, body, payload, "
                "parse_status) VALUES (%s, 'nxcloud', %s, 'application/json', %s, %s, 'parsed')",
                (endpoint, f"{endpoint}|{batch_no}|{phone}", payload.encode(), payload),
            )
        conn.execute(
            "INSERT INTO telco.nxcloud_number_check (batch_no, phone, source) VALUES ('cnt-b', %s, 'query')",
            (b[1],),
        )
        conn.commit()
        batches = ["cnt-a", "cnt-b", "cnt-c", "not-ours"]
        count = count_results(conn, batches)
        # expected: a[3], a[4], a[5] twice (a[0..2] refused) + b[0..2]; results: a[3], b[0], b[1]
        assert (count.expected, count.results, count.missing) == (7, 3, 4)
        assert missing_results(conn, batches) == sorted(
            [("cnt-a", a[4]), ("cnt-a", a[5]), ("cnt-a", a[5]), ("cnt-b", b[2])]
        )
        assert missing_results(conn, batches, limit=1) == [("cnt-a", a[4])]
        assert missing_counts(conn, batches) == {"cnt-a": 3, "cnt-b": 1, "cnt-c": None, "not-ours": None}
        assert missing_numbers(conn, "cnt-a") == frozenset({a[4], a[5]})
        assert missing_numbers(conn, "cnt-c") is None
        lookups = {lookup.batch_no: lookup.missing for lookup in lookups_for(conn, batches, lambda _: [])}
        assert lookups == {
            "cnt-a": frozenset({a[4], a[5]}),
            "cnt-b": frozenset({b[2]}),
            "cnt-c": None,
            "not-ours": None,
        }
        conn.execute(
            "INSERT INTO telco.nxcloud_number_check (batch_no, phone, source) VALUES ('cnt-b', %s, 'query')",
            (b[2],),
        )
        assert missing_counts(conn, ["cnt-b"]) == {"cnt-b": 0}
        assert next(lookups_for(conn, ["cnt-b"], lambda _: [])).missing == frozenset()
