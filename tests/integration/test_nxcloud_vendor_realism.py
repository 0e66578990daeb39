"""NXCLOUD guarantees that must hold whichever way the vendor goes where its documents are silent.

Every test runs under both sandbox profiles (``vendor_profile``): ``default`` and ``strict``,
where a lost submit answer comes after the vendor charged, a resubmitted ``batchNo`` is charged
again, the query API lists a batch only minutes after its submit and in the shape of the
vendor's own example rows (``checkLevel`` 2, ``""`` live flags, price 0), code 88 texts are
Chinese and query dates are China days. All over real HTTP, into a real warehouse; the
sandbox's charge ledger (``/_sandbox/charges``) says what we paid for.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import psycopg
import pytest

from phonecheck.nxcloud.planning import Chunk
from phonecheck.nxcloud.submissions import submit_chunk
from tests.fixtures.sandbox import nxcloud_vendor_day

pytestmark = pytest.mark.integration

PUSHED_COLUMNS = (
    "message_id", "check_level", "code", "msg", "pre_check", "region_code", "country_code", "national_number",
    "stand_number", "number_type", "carrier", "validity", "reachable", "roaming", "early", "answered", "response",
    "mcc", "mnc", "ported", "active", "price", "currency", "e164", "raw_event_id", "pushed_at",
)  # fmt: skip


def vendor_day(nx, batch_no: str) -> str:
    """The date the vendor lists the batch under (China time when strict: a day ahead of UTC from
    16:00 to 24:00 UTC), from the sandbox's record of the submit, not from the test's clock."""
    return nxcloud_vendor_day(nx.sandbox.control, batch_no, strict=nx.profile == "strict").isoformat()


def query_pages_by_date(nx, batch_no: str) -> dict[str, list[tuple[int, int]]]:
    """date -> (page, rows listed) of every answered (code 0) query call for the batch."""
    by_date: dict[str, list[tuple[int, int]]] = {}
    for call in nx.sandbox.control.calls(event="nxcloud.query"):
        body = json.loads(call["body"])
        if body.get("batchNo") == batch_no and call["answer"].get("code") == 0:
            by_date.setdefault(body["date"], []).append((body["page"], len(call["answer"]["data"]["result"])))
    return by_date


def mx(count: int, start: int = 0) -> list[str]:
    return [f"525512{start + i:06d}" for i in range(count)]


def rows(dsn: str, query: str, *args) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, args).fetchall()


def charges_per_number(sandbox, batch_no: str) -> Counter:
    return Counter(c["phone"] for c in sandbox.control.charges(batch_no=batch_no))


def context(run_id: str = "realism") -> dict:
    return {"dag": SimpleNamespace(dag_id="nxcloud_number_check"), "run_id": run_id, "dag_run": None}


def of_run(run_id: str) -> dict:
    """Record a submission as the run ``run_id`` of the on-demand DAG would (its run key selects it)."""
    return {"dag_id": "nxcloud_number_check", "run_id": run_id}


def run_key(run_id: str) -> str:
    return f"nxcloud_number_check/{run_id}"


@pytest.fixture
def nx(nxcloud_wired, vendor_profile):
    sandbox, live_receiver = nxcloud_wired
    return SimpleNamespace(
        sandbox=sandbox, dsn=live_receiver.dsn, receiver=live_receiver, profile=vendor_profile
    )


def dr_url_of(receiver) -> str:
    from phonecheck.webhook_urls import NXCLOUD_NUMBER_CHECK, webhook_url

    return webhook_url(NXCLOUD_NUMBER_CHECK, base_url=receiver.base_url, token=receiver.token)


# ---- a lost submit answer ----------------------------------------------------------------------


def settle(conn, client, batch_no: str):
    """Settle one batch in doubt as the DAG's settle_in_doubt task does, in plain Python."""
    from phonecheck.nxcloud.in_doubt import act_on_evidence, wait_for_evidence
    from phonecheck.nxcloud.submissions import get_submission

    since = get_submission(conn, batch_no)["in_doubt_since"]
    event = wait_for_evidence(conn, client, [(batch_no, since)], poll_s=0.05)
    assert event["status"] == "settled", event
    return act_on_evidence(conn, client, [batch_no], event["listed"], event["unlisted"], None, True)


@pytest.mark.parametrize(
    ("how", "with_pushes"),
    [
        ({"kind": "disconnect"}, True),  # connection closed mid-answer; pushes settle it
        ({"kind": "error", "status": 502}, False),  # 5xx after processing; the query API settles it
        ({"kind": "slow", "delay_s": 2.0}, False),  # read timeout; the query API settles it
    ],
    ids=["connection-closed", "5xx", "read-timeout"],
)
def test_a_lost_submit_answer_costs_exactly_one_charge_per_number(nx, how, with_pushes):
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    client = NxCloudHook(warehouse_conn_id="warehouse", timeout=(5.0, 1.0)).get_client()
    chunk = Chunk(f"lost-{how['kind']}-MX-0000", "MX", 1, 0, tuple(mx(6, start=11_000)))
    nx.sandbox.control.faults({"target": "nxcloud.check", "count": 1, **how})
    with psycopg.connect(nx.dsn) as conn:
        outcome = submit_chunk(conn, client, chunk, dr_url=dr_url_of(nx.receiver) if with_pushes else None)
        retried = submit_chunk(conn, client, chunk, dr_url=None)  # a task retry while in doubt sends nothing
        settled = settle(conn, client, chunk.batch_no)  # what the settle_in_doubt task does
        again = submit_chunk(conn, client, chunk, dr_url=None)  # a task retry / a rerun
    assert charges_per_number(nx.sandbox, chunk.batch_no) == Counter(dict.fromkeys(chunk.phones, 1))
    assert (outcome.status, retried.status) == ("in_doubt", "in_doubt")
    # strict: the vendor had charged, we found out without sending again; default: the fault
    # came before the vendor did anything, so after the window the batch was sent again
    assert (settled.recovered, settled.resent) == (
        ([chunk.batch_no], []) if nx.profile == "strict" else ([], [chunk.batch_no])
    )
    assert again.status == "already_submitted"
    [(status, in_doubt_since)] = rows(
        nx.dsn,
        "SELECT status, in_doubt_since FROM ops.number_check_submission WHERE batch_no = %s",
        chunk.batch_no,
    )
    assert status == "submitted" and in_doubt_since is not None


def xcom_of(run_id: str, task_id: str):
    """The return value of a task of a ``dag.test()`` run, read from the metadata database."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.execute(
            select(XComModel.value).where(
                XComModel.dag_id == "nxcloud_number_check",
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
        ).scalar_one()
    return json.loads(value) if isinstance(value, str) else value


def test_a_rerun_after_a_lost_answer_buys_nothing(nx, run_dag):
    numbers = mx(40, start=12_000)
    nx.sandbox.control.faults({"target": "nxcloud.check", "kind": "error", "status": 503, "count": 1})
    conf = {"numbers": "\n".join("+" + n for n in numbers), "check_level": "basic", "batch_label": "rerun",
            "budget": 100, "wait_poll_seconds": 0.3, "wait_timeout_minutes": 0.1}  # fmt: skip
    first = run_dag("nxcloud_number_check", conf=conf)
    assert str(getattr(first.state, "value", first.state)) == "success"
    # the lost answer was settled by the deferrable task after submit, as before: recovered
    # when the vendor had charged (strict), sent again after the window when it had not
    settled = xcom_of(first.run_id, "settle_in_doubt")
    assert (settled["in_doubt"], settled["recovered"], settled["resent"]) == (
        (1, 1, 0) if nx.profile == "strict" else (1, 0, 1)
    )
    ours = set(numbers)  # (a slow answer of an earlier test may still land in the ledger)
    ledger = Counter(c["phone"] for c in nx.sandbox.control.charges() if c["phone"] in ours)
    assert ledger == Counter(dict.fromkeys(numbers, 1))
    assert rows(nx.dsn, "SELECT count(*) FROM telco.nxcloud_number_check")[0][0] == 40

    second = run_dag("nxcloud_number_check", conf=conf)
    assert str(getattr(second.state, "value", second.state)) == "success"
    assert Counter(c["phone"] for c in nx.sandbox.control.charges() if c["phone"] in ours) == ledger


# ---- query rows never degrade pushed values ----------------------------------------------------


def test_query_rows_never_change_a_pushed_value_and_every_page_is_kept_verbatim(nx):

    from phonecheck.nxcloud.results import load_pushes
    from phonecheck_airflow.tasks.nxcloud import reconcile

    chunk = Chunk("merge-MX-0000", "MX", 5, 0, tuple(mx(150, start=13_000)))  # HLR: live flags pushed
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    with psycopg.connect(nx.dsn) as conn:
        submit_chunk(
            conn, NxCloudHook().get_client(), chunk, dr_url=dr_url_of(nx.receiver), **of_run("merge")
        )
        nx.sandbox.control.wait_pushes()
        load_pushes(conn, [chunk.batch_no])
    columns = ", ".join(PUSHED_COLUMNS)
    query = f"SELECT phone, {columns} FROM telco.nxcloud_number_check WHERE batch_no = %s ORDER BY phone"  # noqa: S608
    pushed = rows(nx.dsn, query, chunk.batch_no)
    with_flags = [r for r in pushed if r[PUSHED_COLUMNS.index("validity") + 1] is not None]
    assert len(pushed) == 150 and len(with_flags) > 100  # what the query rows must not erase

    # strict: the query API lists the batch only minutes later: reconcile once it does
    lag = nx.sandbox.control.settings()["strict_query_lag_minutes"] * 0.05
    threading.Event().wait(lag + 0.1)
    result = reconcile({"run_key": run_key("merge")}, context("merge"))
    assert result["run_key"] == run_key("merge") and result["batches"] == 1
    assert result["api_calls"] == 0 and result["batches_complete_from_pushes"] == 1  # every push is in
    # the query rows come anyway (a day's sync of a batch we cannot tell is complete reads them
    # all): the query loop over every page of the batch, as for such a batch
    from phonecheck.nxcloud.client import candidate_dates
    from phonecheck.nxcloud.sync import BatchLookup, query_batch

    client = NxCloudHook().get_client()
    with psycopg.connect(nx.dsn) as conn:
        [(submitted_at,)] = conn.execute(
            "SELECT submitted_at FROM ops.number_check_submission WHERE batch_no = %s", (chunk.batch_no,)
        ).fetchall()
        days = candidate_dates(submitted_at, client.settings.query_timezone)
        read = query_batch(client, conn, BatchLookup(chunk.batch_no, days, expected=150))
    # the dates tried before the vendor's own each cost one empty page (strict, 16:00-24:00 UTC:
    # the first guess, the connection's UTC date, is a day behind China's)
    wrong_date_pages = [d.isoformat() for d in days].index(vendor_day(nx, chunk.batch_no))
    assert read.rows == 150 and read.pages == 2 + wrong_date_pages

    after = rows(nx.dsn, query, chunk.batch_no)
    names = ("phone", *PUSHED_COLUMNS)
    for before_row, after_row in zip(pushed, after, strict=True):  # field by field
        before, now = dict(zip(names, before_row, strict=True)), dict(zip(names, after_row, strict=True))
        assert {k: now[k] for k, v in before.items() if v is not None} == {
            k: v for k, v in before.items() if v is not None
        }, before["phone"]  # a query row only fills what the push left empty
        if before["price"] is not None:
            assert now["currency"] == before["currency"]  # price and currency from one source
    vendor_levels = rows(
        nx.dsn,
        "SELECT DISTINCT vendor_check_level, check_level FROM telco.nxcloud_number_check WHERE batch_no = %s",
        chunk.batch_no,
    )
    assert vendor_levels == [(2 if nx.profile == "strict" else 5, 5)]
    # every page kept byte for byte and linked from its rows
    pages = rows(
        nx.dsn,
        "SELECT answer_id, body, http_status, parse_error FROM raw.vendor_answer "
        "WHERE vendor = 'nxcloud' AND api = 'number_check_query' ORDER BY answer_id",
    )
    assert [(p[2], p[3]) for p in pages] == [(200, None)] * (2 + wrong_date_pages)
    for empty in pages[:wrong_date_pages]:  # the wrong date's answer is kept too, and lists nothing
        assert json.loads(bytes(empty[1]))["data"]["result"] == []
    pages = pages[wrong_date_pages:]
    linked = rows(
        nx.dsn,
        "SELECT vendor_answer_id, count(*) FROM telco.nxcloud_number_check WHERE batch_no = %s GROUP BY 1 ORDER BY 1",
        chunk.batch_no,
    )
    assert linked == [(pages[0][0], 100), (pages[1][0], 50)]
    assert {r["phone"] for p in pages for r in json.loads(bytes(p[1]))["data"]["result"]} == set(chunk.phones)


# ---- refusals and the shared query limiter -----------------------------------------------------


def test_chinese_refusals_and_two_concurrent_runs_on_one_access_key_complete_with_every_row(nx, monkeypatch):
    """The sandbox refuses queries closer than 0.2 s apart (code 88; Chinese text when strict).
    Two runs reconcile at once with the same access key: the limiter in the warehouse spaces
    them together, refusals that still happen are retried, and both load every row."""

    from phonecheck_airflow.hooks.nxcloud import NxCloudHook
    from phonecheck_airflow.tasks.nxcloud import reconcile

    batches = {}
    with psycopg.connect(nx.dsn) as conn:
        for i in range(2):
            chunk = Chunk(f"shared-key-{i}-MX-0000", "MX", 1, 0, tuple(mx(300, start=14_000 + 1000 * i)))
            submit_chunk(
                conn, NxCloudHook().get_client(), chunk, dr_url=None, **of_run(f"run-{chunk.batch_no}")
            )
            batches[chunk.batch_no] = chunk.phones
    threading.Event().wait(nx.sandbox.control.settings()["strict_query_lag_minutes"] * 0.05 + 0.1)
    nx.sandbox.control.settings(query_min_interval_s=0.2)
    nx.sandbox.control.faults(  # and a burst of refusals the limiter cannot prevent
        {"target": "nxcloud.query", "kind": "code", "code": 88, "count": 3}
    )
    conn_json = json.loads(nx.sandbox.nxcloud_connection_json())
    conn_json["extra"].update(query_min_interval_s=0.25, push_window_s=0.25, in_doubt_margin_s=0.25)
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", json.dumps(conn_json))

    results, errors = {}, []

    def run(batch_no: str) -> None:
        try:
            results[batch_no] = reconcile({"run_key": run_key(f"run-{batch_no}")}, context(f"run-{batch_no}"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for batch_no, phones in batches.items():
        got = rows(nx.dsn, "SELECT phone FROM telco.nxcloud_number_check WHERE batch_no = %s", batch_no)
        assert sorted(p for (p,) in got) == sorted(phones)
    answers = [
        c["answer"]
        for c in nx.sandbox.control.calls(event="nxcloud.query")
        if any(b in c["body"] for b in batches)
    ]
    refusals = [a for a in answers if a.get("code") == 88]
    assert len(refusals) >= 3  # the injected ones at least
    # per batch: the vendor's date's 3 pages, each fetched once; a date tried before it (the
    # first guess is a day behind China's from 16:00 UTC) costs one empty first page
    for batch_no in batches:
        pages = query_pages_by_date(nx, batch_no)
        assert sorted(pages.pop(vendor_day(nx, batch_no))) == [(1, 100), (2, 100), (3, 100)], batch_no
        assert all(listed == [(1, 0)] for listed in pages.values()), (batch_no, pages)
    [(slots,)] = rows(nx.dsn, "SELECT calls FROM ops.nxcloud_query_slot")
    assert slots == len(answers)  # one limiter row for the key, shared by both runs


def test_a_chinese_rate_limit_refusal_never_fails_the_run(nx, run_dag):
    nx.sandbox.control.settings(query_min_interval_s=0.3)  # our connection does not space queries
    # the pushes never come, so the query API is asked for every number (3 pages, back to back)
    nx.sandbox.control.faults({"target": "push.number_check", "kind": "drop"})
    numbers = mx(250, start=16_000)
    run = run_dag(
        "nxcloud_number_check",
        conf={
            "numbers": "\n".join("+" + n for n in numbers),
            "check_level": "basic",
            "budget": 100,
            "batch_label": "zh",
            "wait_poll_seconds": 0.3,
            "wait_timeout_minutes": 0.02,
        },  # fmt: skip
    )
    assert str(getattr(run.state, "value", run.state)) == "success"
    texts = [
        c["answer"]["msg"]
        for c in nx.sandbox.control.calls(event="nxcloud.query")
        if '"batchNo":"zh-' in c["body"]
        if c["answer"]["code"] == 88
    ]
    assert texts, "the sandbox never refused: the test proves nothing"
    assert all(("频繁" in t) == (nx.profile == "strict") for t in texts)
    assert rows(nx.dsn, "SELECT count(*) FROM telco.nxcloud_number_check")[0][0] == 250


# ---- the vendor's date timezone ----------------------------------------------------------------


def test_a_batch_submitted_at_2330_utc_is_reconciled_under_either_vendor_timezone(nx):
    """Strict dates results in China time (23:30 UTC is already the next day there), default in
    UTC. Reconcile and the daily sync find the batch either way; away from the boundary (the
    default profile) reconcile looks at one date only."""
    from phonecheck.nxcloud.daily import day_batches
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook
    from phonecheck_airflow.tasks.nxcloud import reconcile
    from phonecheck_airflow.tasks.nxcloud_daily import plan_day, sync_day

    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    at = datetime(yesterday.year, yesterday.month, yesterday.day, 23, 30, tzinfo=UTC)
    nx.sandbox.control.settings(ts_window_s=2 * 86400)
    nx.sandbox.control.clock(set_ms=int(at.timestamp() * 1000))
    chunk = Chunk("late-night-MX-0000", "MX", 1, 0, tuple(mx(30, start=17_000)))
    with psycopg.connect(nx.dsn) as conn:
        submit_chunk(conn, NxCloudHook().get_client(), chunk, dr_url=None, **of_run("tz-reconcile"))
        conn.execute("UPDATE ops.number_check_submission SET submitted_at = %s WHERE batch_no = %s",
                     (at, chunk.batch_no))  # fmt: skip
        conn.commit()
    nx.sandbox.control.clock(offset_s=0)  # back to now: the rows are long listed

    result = reconcile({"run_key": run_key("tz-reconcile")}, context("tz-reconcile"))
    assert result["query_rows"] == 30
    dates = [
        c["body"] for c in nx.sandbox.control.calls(event="nxcloud.query") if chunk.batch_no in c["body"]
    ]
    vendor_day = yesterday + timedelta(days=1) if nx.profile == "strict" else yesterday
    assert len(dates) == (2 if nx.profile == "strict" else 1)  # one date when the first guess is right
    got = rows(nx.dsn, "SELECT count(*) FROM telco.nxcloud_number_check WHERE batch_no = %s", chunk.batch_no)
    assert got == [(30,)]

    # the daily sync of the vendor's day finds it too (and the other day's sync skips it quietly)
    with psycopg.connect(nx.dsn) as conn:
        conn.execute("DELETE FROM telco.nxcloud_number_check")
        conn.commit()
    tz = NxCloudHook().get_client().query_timezone
    for day in (yesterday, yesterday + timedelta(days=1)):
        plan = plan_day({"vendor_date": day.isoformat()}, context(f"tz-daily-{day}"))
        with psycopg.connect(nx.dsn) as conn:
            native, near = day_batches(conn, day, tz)  # what plan counted and sync looks up
        assert chunk.batch_no in native + near
        assert (plan["batches"], plan["boundary_batches"]) == (len(native), len(near))
        synced = sync_day(plan, context(f"tz-daily-{day}"))
        assert synced["loaded_batches"] == int(day == vendor_day)
    report = rows(nx.dsn, "SELECT vendor_date, query_rows FROM ops.query_sync_report WHERE batch_no = %s "
                  "AND query_rows > 0", chunk.batch_no)  # fmt: skip
    assert report == [(vendor_day, 30)]
    got = rows(nx.dsn, "SELECT count(*) FROM telco.nxcloud_number_check WHERE batch_no = %s", chunk.batch_no)
    assert got == [(30,)]


def test_a_submit_that_never_reached_the_vendor_is_sent_again_at_once(nx):
    """Refused before anything happened (HTTP 429 on every attempt): nothing was charged, so the
    task retry sends the batch without waiting out the in-doubt window."""
    from phonecheck.nxcloud.errors import NxCloudRateLimited
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    client = NxCloudHook(max_attempts=2, rate_limit_attempts=2, backoff_max=0.1).get_client()
    chunk = Chunk("refused-MX-0000", "MX", 1, 0, tuple(mx(4, start=18_000)))
    nx.sandbox.control.faults({"target": "nxcloud.check", "kind": "rate_limit", "count": 2})
    with psycopg.connect(nx.dsn) as conn:
        with pytest.raises(NxCloudRateLimited):
            submit_chunk(conn, client, chunk, dr_url=None)
        assert nx.sandbox.control.charges(batch_no=chunk.batch_no) == []
        outcome = submit_chunk(conn, client, chunk, dr_url=None)  # the task retry
    assert outcome.status == "submitted"
    assert charges_per_number(nx.sandbox, chunk.batch_no) == Counter(dict.fromkeys(chunk.phones, 1))
    mine = [c["event"] for c in nx.sandbox.control.calls() if chunk.batch_no in c["body"]]
    assert mine == ["nxcloud.check"] * 3  # no query probe, no wait
