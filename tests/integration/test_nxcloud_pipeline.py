"""NXCLOUD number check end to end: the sandbox over real HTTP, the webhook receiver
storing pushes in a real PostgreSQL warehouse, and the DAGs through ``dag.test()``.

The sandbox decides every outcome from the number (``phonecheck.sandbox.outcomes``), so every
loaded row is predicted here field by field; its wire log (``/_sandbox/calls``) shows what we
sent, with the ``ts``/``sign`` headers of each attempt.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta

import psycopg
import pytest

from phonecheck.nxcloud.planning import Chunk
from phonecheck.nxcloud.submissions import submit_chunk
from phonecheck.parsers.nxcloud import parse_number_check_push
from phonecheck.sandbox import outcomes
from tests import nxcloud_expected
from tests.fixtures.sandbox import nxcloud_vendor_day

pytestmark = pytest.mark.integration

DAG_ID = "nxcloud_number_check"
DAILY_DAG_ID = "nxcloud_number_check_daily"
FAST = {"wait_poll_seconds": 0.3, "wait_timeout_minutes": 1}
COMPARED = (
    "message_id", "check_level", "code", "msg", "pre_check", "region_code", "country_code", "national_number",
    "stand_number", "number_type", "carrier", "validity", "reachable", "roaming", "early", "answered", "response",
    "price", "currency", "e164",
)  # fmt: skip


def mx(count: int, start: int = 0) -> list[str]:
    """Valid Mexico City numbers (digits with country code 52), every last digit (= outcome)."""
    return [f"525512{start + i:06d}" for i in range(count)]


def co(count: int, start: int = 0) -> list[str]:
    return [f"573001{start + i:06d}" for i in range(count)]


def state_of(obj) -> str:
    return str(getattr(obj.state, "value", obj.state))


def task_states(run) -> dict[str, str]:
    return {ti.task_id: state_of(ti) for ti in run.get_task_instances()}


def rows(dsn: str, query: str, *args) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, args).fetchall()


def charged_phones(sandbox) -> Counter:
    """The sandbox's charge ledger: how many times each number was paid for."""
    return Counter(c["phone"] for c in sandbox.control.charges())


def submitted_phones(sandbox) -> list[str]:
    """Every number of every submit the sandbox ACCEPTED (code 0), in order."""
    phones: list[str] = []
    for call in sandbox.control.calls(event="nxcloud.check"):
        if call["status"] == 200 and isinstance(call["answer"], dict) and call["answer"].get("code") == 0:
            phones.extend(json.loads(call["body"])["phone"].split(","))
    return phones


def predicted_row(
    phone: str,
    level: int,
    batch_no: str,
    profile: str = "default",
    *,
    pushed: bool = True,
    queried: bool = True,
) -> dict:
    merged = nxcloud_expected.predicted_row(
        phone, level, batch_no, COMPARED, profile, pushed=pushed, queried=queried
    )
    merged["message_id"] = None  # depends on the vendor's request id: compared separately
    return merged


def loaded_rows(dsn: str, batch_nos: list[str]) -> dict[str, dict]:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(
            f"SELECT phone, batch_no, pushed_at IS NOT NULL AS pushed, queried_at IS NOT NULL AS queried, "  # noqa: S608
            f"{', '.join(COMPARED)} FROM telco.nxcloud_number_check "
            "WHERE batch_no = ANY(%s)",
            (batch_nos,),
        )
        names = [d.name for d in cur.description]
        return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


@pytest.fixture
def nx_env(nxcloud_wired):
    sandbox, live_receiver = nxcloud_wired
    return sandbox, live_receiver.dsn


def ui_conf(numbers: list[str], **extra) -> dict:
    return {"numbers": "\n".join(numbers), "default_region": "MX", "check_level": "basic",
            "batch_label": "it", "budget": 100, **FAST, **extra}  # fmt: skip


def assert_rows_as_predicted(
    dsn: str, batch_nos: list[str], phones: list[str], level: int, profile: str = "default"
) -> None:
    got = loaded_rows(dsn, batch_nos)
    assert sorted(got) == sorted(phones)
    for phone, row in got.items():
        expected = predicted_row(
            phone, level, row["batch_no"], profile, pushed=row["pushed"], queried=row["queried"]
        )
        assert row["message_id"]  # from the vendor (push or query)
        assert {k: row[k] for k in COMPARED if k != "message_id"} == {
            k: expected[k] for k in COMPARED if k != "message_id"
        }, phone


def run_batches(dsn: str, run) -> list[str]:
    return [
        r[0]
        for r in rows(dsn, "SELECT batch_no FROM ops.number_check_submission WHERE run_id = %s", run.run_id)
    ]


@pytest.mark.slow
def test_ui_run_of_1000_numbers_loads_the_predicted_rows_and_a_second_run_submits_nothing(
    nx_env, run_dag, vendor_profile
):
    sandbox, dsn = nx_env
    mexico, colombia = mx(850), co(100)
    fresh = mexico[::17]  # 50 numbers checked (basic) last week: not bought again
    invalid = [f"12{i}" for i in range(25)] + [f"not a number {i}" for i in range(20)] + ["+52 55 12"] * 1
    invalid += ["+999 123456789", "+52 1", "0", "++"]
    entries = [
        f"+{n}" if i % 2 else f"{n[2:4]} {n[4:8]} {n[8:]}" for i, n in enumerate(mexico)
    ]  # +E.164 / national
    entries += [f"+57 {n[2:5]} {n[5:]}" for n in colombia] + invalid
    assert len(entries) == 1000
    with psycopg.connect(dsn) as db:
        for phone in fresh:
            db.execute(
                "INSERT INTO telco.nxcloud_number_check (batch_no, phone, e164, check_level, code, source, pushed_at) "
                "VALUES ('earlier', %s, %s, 1, 0, 'push', now() - interval '7 days')",
                (phone, "+" + phone),
            )

    run = run_dag(DAG_ID, conf=ui_conf(entries))
    assert state_of(run) == "success", task_states(run)

    expected = [n for n in mexico + colombia if n not in fresh]
    sent = submitted_phones(sandbox)
    assert sorted(sent) == sorted(expected)  # never the invalid ones, never the fresh ones, never twice
    assert charged_phones(sandbox) == Counter(dict.fromkeys(expected, 1))
    batches = run_batches(dsn, run)
    assert len(batches) == 2  # one country per chunk
    assert_rows_as_predicted(dsn, batches, expected, level=1, profile=vendor_profile)
    assert rows(dsn, "SELECT count(*) FROM ops.rejected_number WHERE run_id = %s", run.run_id)[0][0] == len(
        set(invalid)
    )
    assert rows(dsn, "SELECT DISTINCT status FROM ops.number_check_submission") == [("complete",)]
    estimated = rows(dsn, "SELECT sum(estimated_cost), min(currency) FROM ops.number_check_submission")[0]
    assert estimated == (
        sum(outcomes.nxcloud_price(r, 1)[0] * k for r, k in (("MX", 800), ("CO", 100))),
        "USD",
    )

    calls_before = len(sandbox.control.calls(event="nxcloud.check"))
    table_before = rows(dsn, "SELECT count(*), max(updated_at) FROM telco.nxcloud_number_check")
    rerun = run_dag(DAG_ID, conf=ui_conf(entries))
    assert state_of(rerun) == "success", task_states(rerun)
    assert len(sandbox.control.calls(event="nxcloud.check")) == calls_before  # nothing submitted
    assert charged_phones(sandbox) == Counter(dict.fromkeys(expected, 1))  # a rerun buys nothing
    assert run_batches(dsn, rerun) == []
    assert rows(dsn, "SELECT count(*), max(updated_at) FROM telco.nxcloud_number_check") == table_before


def test_injected_5xx_and_429_still_load_every_row_and_every_retry_is_signed_anew(
    nx_env, run_dag, vendor_profile
):
    """Under the strict profile a 5xx on a submit comes after the vendor charged: the batch is
    in doubt and settled by its pushes, never sent again; the charge ledger proves it."""
    sandbox, dsn = nx_env
    sandbox.control.faults(
        {"target": "nxcloud", "kind": "error", "status": 503, "fraction": 0.1, "seed": 4},
        {"target": "nxcloud", "kind": "rate_limit", "fraction": 0.1, "seed": 7},
    )
    numbers = mx(200, start=5000)
    run = run_dag(DAG_ID, conf=ui_conf(["+" + n for n in numbers], max_per_chunk=20))
    assert state_of(run) == "success", task_states(run)

    calls = sandbox.control.calls()
    vendor_calls = [c for c in calls if c["event"] in ("nxcloud.check", "nxcloud.query")]
    statuses = [c["status"] for c in vendor_calls]
    assert statuses.count(503) >= 1 and statuses.count(429) >= 1, statuses  # the faults did happen
    assert (statuses.count(503) + statuses.count(429)) / len(statuses) > 0.1
    by_body: dict[str, list[dict]] = defaultdict(list)
    for call in vendor_calls:
        by_body[call["event"] + call["body"]].append(call)
    retried = [attempts for attempts in by_body.values() if len(attempts) > 1]
    assert retried, "no call was retried"
    for attempts in retried:  # a retry repeats the same body bytes with a new ts and signature
        assert len({c["headers"]["ts"] for c in attempts}) == len(attempts)
        assert len({c["headers"]["sign"] for c in attempts}) == len(attempts)
    all_ts = [c["headers"]["ts"] for c in vendor_calls]
    assert len(set(all_ts)) == len(all_ts)
    assert charged_phones(sandbox) == Counter(dict.fromkeys(numbers, 1))  # every number paid exactly once
    assert len(run_batches(dsn, run)) == 10
    assert_rows_as_predicted(dsn, run_batches(dsn, run), numbers, level=1, profile=vendor_profile)


def test_the_wait_defers_until_late_pushes_arrive(nx_env, run_dag, caplog, capfd):
    sandbox, dsn = nx_env
    # Pushes come well after the sensor's first poke (submit → poke takes ~1-2 s; 8 s leaves room
    # for a loaded machine), so the poke finds nothing and the sensor must defer.
    sandbox.control.settings(push_delay_s=8.0)
    numbers = mx(30, start=9000)
    with caplog.at_level("INFO"):
        run = run_dag(DAG_ID, conf=ui_conf(["+" + n for n in numbers]))
    text = caplog.text + "".join(capfd.readouterr())
    assert state_of(run) == "success", task_states(run)
    # The trigger only runs when the sensor deferred; it first saw no result, then all of them.
    # (Asserted on the trigger's module logger: the sensor's task-logger lines are not captured
    # reliably once other dag.test() runs in the session have configured Airflow's logging.)
    assert "NXCLOUD results: 0/30 numbers have a result" in text
    assert "NXCLOUD results: 30/30 numbers have a result" in text
    assert (
        rows(dsn, "SELECT count(*) FROM telco.nxcloud_number_check WHERE raw_event_id IS NOT NULL")[0][0]
        == 30
    )
    assert_rows_as_predicted(dsn, run_batches(dsn, run), numbers, level=1)


def test_pushes_that_never_come_time_out_softly_and_the_query_api_fills_in(
    nx_env, run_dag, caplog, capfd, vendor_profile
):
    sandbox, dsn = nx_env
    sandbox.control.faults({"target": "push.number_check", "kind": "drop"})  # every push lost
    numbers = mx(20, start=9500)
    with caplog.at_level("INFO"):
        run = run_dag(DAG_ID, conf=ui_conf(["+" + n for n in numbers], wait_timeout_minutes=0.03))
    text = caplog.text + "".join(capfd.readouterr())
    assert state_of(run) == "success", task_states(run)
    assert "only 0/20 numbers have a result" in text
    assert "20 push(es) never arrived" in text
    got = loaded_rows(dsn, run_batches(dsn, run))
    assert sorted(got) == sorted(numbers) and all(r["code"] is None for r in got.values())  # query rows only
    assert {r["check_level"] for r in got.values()} == {1}  # the level we submitted, whatever the rows say


def test_over_budget_and_dry_run_spend_nothing(nx_env, run_dag, caplog, capfd):
    sandbox, dsn = nx_env
    numbers = ["+" + n for n in mx(40, start=7000)]
    with caplog.at_level("INFO"):
        over = run_dag(DAG_ID, conf=ui_conf(numbers, budget=0.05))
    out, err = capfd.readouterr()
    assert state_of(over) == "failed"
    assert task_states(over)["estimate"] == "failed"
    assert "over budget: estimated cost 0.1600 USD" in caplog.text + out + err
    dry = run_dag(DAG_ID, conf=ui_conf(numbers, dry_run=True))
    states = task_states(dry)
    assert states["estimate"] == "success" and states["submit"] == "skipped" and states["load"] == "skipped"
    assert sandbox.control.calls(event="nxcloud.check") == []
    assert rows(dsn, "SELECT count(*) FROM ops.number_check_submission")[0][0] == 0


def test_a_retry_after_a_lost_answer_finds_the_batch_and_does_not_pay_twice(nx_env, vendor_profile):
    """The submit reached the vendor but we crashed before recording the answer: the row is
    still ``pending``. The retry sends nothing and makes the batch in doubt; the in-doubt wait
    asks the query API, finds the batch, and it is never submitted again."""
    from phonecheck.nxcloud.in_doubt import act_on_evidence, wait_for_evidence
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    def run_in_doubt_of(conn):
        rows = conn.execute(
            "SELECT batch_no, in_doubt_since FROM ops.number_check_submission WHERE status = 'in_doubt'"
        )
        return rows.fetchall()

    sandbox, dsn = nx_env
    hook = NxCloudHook().get_client()
    chunk = Chunk("crash-test-MX-0000", "MX", 1, 0, tuple(mx(5, start=8000)))
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO ops.number_check_submission (vendor, batch_no, check_level, region_code, phones, "
            "phone_count, status) VALUES ('nxcloud', %s, 1, 'MX', %s, 5, 'pending')",
            (chunk.batch_no, list(chunk.phones)),
        )
        conn.commit()
        hook.submit_numbers(chunk.phones, batch_no=chunk.batch_no, check_level=1)  # the "lost" call
        outcome = submit_chunk(conn, hook, chunk, dr_url=None)  # in doubt: sends nothing
        [(batch_no, since)] = [(b, s) for b, s in run_in_doubt_of(conn) if b == chunk.batch_no]
        event = wait_for_evidence(conn, hook, [(batch_no, since)], poll_s=0.05)
        settled = act_on_evidence(conn, hook, [batch_no], event["listed"], event["unlisted"], None, True)
        again = submit_chunk(conn, hook, chunk, dr_url=None)
    assert (outcome.status, settled.recovered, again.status) == ("in_doubt", [batch_no], "already_submitted")
    assert len(sandbox.control.calls(event="nxcloud.check")) == 1
    assert charged_phones(sandbox) == Counter(dict.fromkeys(chunk.phones, 1))
    assert rows(dsn, "SELECT status FROM ops.number_check_submission") == [("submitted",)]


def test_a_wrong_secret_fails_clearly_and_leaks_nothing(nx_env, monkeypatch, caplog):
    from phonecheck.nxcloud.errors import NxCloudAuthError
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    sandbox, _ = nx_env
    secret = "wrong-secret-91c4e7a2d0"
    conn = json.loads(sandbox.nxcloud_connection_json())
    conn["password"] = secret
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_WRONG", json.dumps(conn))
    with caplog.at_level("DEBUG"), pytest.raises(NxCloudAuthError) as raised:
        NxCloudHook("nxcloud_wrong").get_client().submit_numbers(
            ["525512000001"], batch_no="leak-1", check_level=1
        )
    text = str(raised.value)
    assert "code 1003 (signature mismatch)" in text
    sent_sign = sandbox.control.calls(event="nxcloud.check")[0]["headers"]["sign"]
    for leak in (secret, sent_sign, conn["extra"]["appkey"]):
        assert leak not in text and leak not in caplog.text and leak not in repr(raised.value)


def test_a_10000_number_batch_takes_the_minimum_100_query_calls(nx_env, capsys):
    from phonecheck.nxcloud.client import QueryStats
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    sandbox, _ = nx_env
    hook = NxCloudHook().get_client()
    phones = mx(10_000, start=100_000)
    for i in range(2):
        hook.submit_numbers(phones[i * 5000 : (i + 1) * 5000], batch_no=f"big-{i}", check_level=1)
    seen: list[str] = []
    for i in range(2):
        stats = QueryStats()
        day = nxcloud_vendor_day(sandbox.control, f"big-{i}")
        for page in hook.iter_query_results(f"big-{i}", day, stats=stats, concurrency=4):
            seen.extend(r["phone"] for r in page)
        assert (stats.pages, stats.rows, stats.api_calls) == (50, 5000, 50)
    assert sorted(seen) == sorted(phones)
    assert hook.api_calls["query"] == 100
    with capsys.disabled():
        print(f"\nquery API calls for a 10,000-number batch (2 x 5,000): {hook.api_calls['query']}")


def test_concurrent_paging_respects_the_vendor_query_interval(nx_env, monkeypatch):
    """The sandbox refuses queries closer than 0.2 s (code 88 "too frequent"); 4 threads share
    the hook's 0.25 s spacing, so every page still arrives exactly once."""
    from phonecheck.nxcloud.client import QueryStats
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    sandbox, _ = nx_env
    conn = json.loads(sandbox.nxcloud_connection_json())
    conn["extra"]["query_min_interval_s"] = 0.25
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_SPACED", json.dumps(conn))
    hook = NxCloudHook("nxcloud_spaced", query_concurrency=4).get_client()
    phones = mx(1000, start=300_000)
    hook.submit_numbers(phones, batch_no="spaced", check_level=1)
    sandbox.control.settings(query_min_interval_s=0.2)
    stats = QueryStats()
    day = nxcloud_vendor_day(sandbox.control, "spaced")
    got = [r["phone"] for page in hook.iter_query_results("spaced", day, stats=stats) for r in page]
    assert sorted(got) == sorted(phones) and stats.pages == 10


# ---- daily reconciliation ----------------------------------------------------------------------


def submit_on_past_day(
    sandbox, dsn: str, receiver_dr_url: str, today: date, days_ago: int, phones: list[str]
) -> str:
    """A batch submitted ``days_ago`` days before ``today``, at 04:00 UTC (noon in China: the same
    vendor day in either profile): the sandbox clock is set to that moment (its ts window widened
    so our real-time ``ts`` is still accepted), our submission row is dated the same, and the
    pushes land in the inbox now. Fixed moments: the test holds whenever 00:00 or 16:00 UTC falls."""
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    submitted_at = datetime.combine(today - timedelta(days=days_ago), time(4), UTC)
    sandbox.control.settings(ts_window_s=20 * 86400)
    sandbox.control.clock(set_ms=int(submitted_at.timestamp() * 1000))
    chunk = Chunk(f"daily-{days_ago}d-MX-0000", "MX", 5, 0, tuple(phones))
    with psycopg.connect(dsn) as conn:
        submit_chunk(
            conn,
            NxCloudHook().get_client(),
            chunk,
            dr_url=receiver_dr_url,
            dag_id="test",
            run_id=f"d{days_ago}",
        )
        conn.execute(
            "UPDATE ops.number_check_submission SET submitted_at = %s WHERE batch_no = %s",
            (submitted_at, chunk.batch_no),
        )
        conn.commit()
    sandbox.control.wait_pushes()
    sandbox.control.clock(offset_s=0)
    return chunk.batch_no


def run_daily_for(run_dag, day):
    """The daily DAG for vendor date ``day``: ``dag.test(logical_date=T)`` infers a manual run's
    interval, the day before T, so T is midnight after ``day`` (the data interval [day, day+1)
    that the scheduler and backfills give the run of logical date ``day``)."""
    after = day + timedelta(days=1)
    # no grace after the day: yesterday's run must not wait until 04:00 when the suite runs at night
    return run_dag(
        DAILY_DAG_ID,
        conf={"late_push_grace_hours": 0},
        logical_date=datetime(after.year, after.month, after.day, tzinfo=UTC),
    )


def test_daily_backfill_over_3_days_loads_the_pushed_rows_and_flags_a_dropped_push(
    nx_env, live_receiver, run_dag
):
    from phonecheck.webhook_urls import NXCLOUD_NUMBER_CHECK, webhook_url

    sandbox, dsn = nx_env
    dr_url = webhook_url(NXCLOUD_NUMBER_CHECK, base_url=live_receiver.base_url, token=live_receiver.token)
    today = datetime.now(UTC).date()
    batches = {}
    for days_ago in (3, 2, 1):
        if days_ago == 2:
            sandbox.control.faults({"target": "push.number_check", "kind": "drop", "count": 1})
        batches[days_ago] = submit_on_past_day(
            sandbox, dsn, dr_url, today, days_ago, mx(12, start=days_ago * 1000)
        )
        sandbox.control.faults()
    dropped = [p for p in sandbox.control.pushes(kind="number_check") if p["outcome"] == "dropped"]
    assert len(dropped) == 1 and dropped[0]["batch_no"] == batches[2]
    assert rows(dsn, "SELECT count(*) FROM telco.nxcloud_number_check")[0][0] == 0  # nothing loaded yet
    submission_states = "SELECT batch_no, status FROM ops.number_check_submission ORDER BY batch_no"
    assert rows(dsn, submission_states) == sorted((b, "submitted") for b in batches.values())

    # the backfill: one dag.test() per logical date (what `airflow backfill create` schedules)
    for days_ago in (3, 2, 1):
        run = run_daily_for(run_dag, today - timedelta(days=days_ago))
        assert state_of(run) == "success", task_states(run)

    report = rows(
        dsn,
        "SELECT vendor_date, batch_no, query_rows, pages_fetched, missing_push_count, missing_push_phones "
        "FROM ops.query_sync_report ORDER BY vendor_date",
    )
    # only the day with a dropped push asked the query API (one page holds its 12 rows); the
    # days whose pushes all arrived are complete from the inbox at no query call
    assert report == [
        (today - timedelta(days=3), batches[3], 0, 0, 0, []),
        (today - timedelta(days=2), batches[2], 12, 1, 1, [dropped[0]["phone"]]),
        (today - timedelta(days=1), batches[1], 0, 0, 0, []),
    ]
    queried = {json.loads(c["body"])["batchNo"] for c in sandbox.control.calls(event="nxcloud.query")}
    assert queried == {batches[2]}
    # every number of each batch is listed now: none of them is still waiting (the page's count)
    assert rows(dsn, submission_states) == sorted((b, "complete") for b in batches.values())
    # the rows the daily sync loaded (pushes from the inbox, query rows) are the rows the pushes carried
    with psycopg.connect(dsn) as conn:
        pushes = [
            parse_number_check_push(p)
            for (p,) in conn.execute(
                "SELECT payload FROM raw.webhook_event WHERE endpoint = 'nxcloud_number_check'"
            )
        ]
    assert len(pushes) == 35
    loaded = loaded_rows(dsn, list(batches.values()))
    assert len(loaded) == 36
    for push in pushes:
        row = loaded[push["phone"]]
        carried = {
            k: v for k, v in push.items() if k in COMPARED and v is not None and k not in ("code", "msg")
        }
        assert carried and {k: row[k] for k in carried} == carried, push["phone"]
        assert row["check_level"] == 5
    lost = loaded[dropped[0]["phone"]]
    assert lost["code"] is None and lost["message_id"]  # known from the query API only


def test_a_day_15_days_back_fails_fast_with_the_14_day_message(nx_env, run_dag, caplog, capfd):
    sandbox, _ = nx_env
    today = datetime.now(UTC).date()
    day = today - timedelta(days=15)
    with caplog.at_level("INFO"):
        run = run_daily_for(run_dag, day)
    out, err = capfd.readouterr()
    # the run reads its own clock: 16 days old when 00:00 UTC fell since `today`
    ages = {15, (datetime.now(UTC).date() - day).days}
    assert state_of(run) == "failed"
    assert task_states(run)["plan"] == "failed"
    text = caplog.text + out + err
    assert any(
        f"vendor date {day} is {age} days old: the NXCLOUD query API only keeps the last 14 days" in text
        for age in ages
    ), text
    assert "we hold 0 submission(s) from that day" in text
    assert sandbox.control.calls(event="nxcloud.query") == []  # failed fast: no vendor call


def test_the_connection_test_button_signs_one_free_query(nx_env, monkeypatch):
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    sandbox, _ = nx_env
    assert NxCloudHook().test_connection() == (True, "credentials and signature accepted")
    conn = json.loads(sandbox.nxcloud_connection_json())
    conn["password"] = "not-the-secret"
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_BAD", json.dumps(conn))
    ok, message = NxCloudHook("nxcloud_bad").test_connection()
    assert not ok and "code 1003" in message and "not-the-secret" not in message
    assert [c["event"] for c in sandbox.control.calls()] == [
        "nxcloud.query",
        "nxcloud.query",
    ]  # never a submit
