"""AccuAuth where the vendor documents leave a behaviour open, under both sandbox profiles
(``vendor_profile``): the ``accuauth_phone_check`` DAG through ``dag.test()``, the sandbox over
real HTTP, the real receiver taking the vendor's callbacks, a real PostgreSQL warehouse.

* a submit whose answer is lost after the vendor charged (dropped connection, read timeout,
  HTTP 500) is never resent: the vendor's callback for that number settles it; without a
  callback the number stays in doubt (``ops.accuauth_in_doubt``), bought once (charge ledger);
* a number the vendor echoes as ``00`` + country code keeps the e164 of what we sent;
* a ``+57`` number never reaches AccuAuth Mexico;
* an unknown task id ends only that task;
* a rerun buys nothing.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qsl

import psycopg
import pytest

from phonecheck.sandbox import outcomes
from tests.integration import test_accuauth_pipeline as pipeline
from tests.integration.test_accuauth_pipeline import _submit_directly, rows, state_of, task_states

pytestmark = pytest.mark.integration

DAG_ID = "accuauth_phone_check"
FAST_WAIT = {
    "poll_interval_s": 0.1,
    "max_poll_interval_s": 0.3,
    "max_requests_per_second": 500.0,
    "warehouse_check_interval_s": 0.2,
}


def conf(numbers: list[str], **extra) -> dict:
    return pipeline.conf(numbers, **FAST_WAIT, **extra)


def sent_numbers(sandbox) -> list[str]:
    return [
        dict(parse_qsl(c["body"]))["phone_number"] for c in sandbox.control.calls(event="accuauth.submit")
    ]


def charges(sandbox) -> Counter:
    return Counter(c["phone"] for c in sandbox.control.charges(vendor="accuauth"))


def pick(count: int, *, pending: bool, start: int) -> list[str]:
    pool = [f"525513{start + i:06d}" for i in range(200)]
    return [n for n in pool if (outcomes.accuauth_pending_polls(n) > 0) == pending][:count]


def test_a_lost_submit_answer_costs_one_charge_and_a_rerun_buys_nothing(
    accuauth_wired, vendor_profile, run_dag
):
    sandbox, receiver = accuauth_wired
    dsn = receiver.dsn
    lost_pending = pick(3, pending=True, start=0)  # the vendor made a task: its callback will come
    lost_at_once = pick(1, pending=False, start=0)  # answered at once: no task, no callback, ever
    normal = pick(3, pending=True, start=100) + pick(3, pending=False, start=100)
    numbers = lost_pending + lost_at_once + normal
    sandbox.control.faults(  # submits go out in input order (concurrency 1)
        {"target": "accuauth.submit", "kind": "lost", "count": 1},  # connection dropped mid-answer
        {"target": "accuauth.submit", "kind": "lost", "status": 500, "after": 1, "count": 1},
        {"target": "accuauth.submit", "kind": "lost", "delay_s": 2.0, "after": 2, "count": 1},  # read timeout
        {"target": "accuauth.submit", "kind": "lost", "status": 502, "after": 3, "count": 1},
    )

    run = run_dag(DAG_ID, conf=conf(numbers, submit_concurrency=1, in_doubt_window_s=4.0))
    assert state_of(run) == "success", task_states(run)

    # exactly one charge per number, lost answers included: nothing was resent
    assert charges(sandbox) == Counter(numbers)
    assert Counter(sent_numbers(sandbox)) == Counter(numbers)
    # the lost pending submits were settled by the vendor's callback, matched on the number we sent
    found = {
        p: (status, ps, e164)
        for p, status, ps, e164 in rows(
            dsn, "SELECT phone_number, status, phone_status, e164 FROM telco.accuauth_phone_check"
        )
    }
    assert set(found) == set(lost_pending + normal)
    for n in lost_pending + normal:
        assert found[n] == ("OK", outcomes.accuauth_phone_status(n), "+" + n), n
    claims = dict(rows(dsn, "SELECT e164, state FROM ops.accuauth_submit_claim"))
    assert claims == {"+" + n: ("in_doubt" if n in lost_at_once else "submitted") for n in numbers}
    # the one without a callback is in doubt, visible in ops, with what we saw instead of an answer
    assert rows(dsn, "SELECT e164, vendor_status FROM ops.accuauth_in_doubt") == [
        ("+" + lost_at_once[0], "INTERNAL_ERROR")
    ]
    # every submit answer is kept verbatim, the lost ones recorded as such
    kept = rows(dsn, "SELECT http_status, parse_error FROM raw.vendor_answer WHERE api = 'accuauth_submit'")
    assert len(kept) == len(numbers)
    assert sorted(str(s) for s, _ in kept).count("None") == 2  # dropped connection + read timeout

    # a rerun of the same numbers buys nothing: fresh results, and the doubtful number may have
    # been paid already, so it is not bought again inside the freshness window either
    rerun = run_dag(DAG_ID, conf=conf(numbers, submit_concurrency=1, in_doubt_window_s=4.0))
    assert state_of(rerun) == "success", task_states(rerun)
    assert charges(sandbox) == Counter(numbers)


def test_a_57_number_never_reaches_accuauth_and_echoes_never_change_the_e164(
    accuauth_wired, vendor_profile, run_dag
):
    """Strict echoes every number as ``00`` + country code (submit results, poll results and
    callbacks): e164 still derives from what we sent, the echo is kept as received."""
    sandbox, receiver = accuauth_wired
    dsn = receiver.dsn
    mexican = pick(4, pending=True, start=0) + pick(4, pending=False, start=0)
    colombian = "573001234567"
    run = run_dag(DAG_ID, conf=conf([*mexican, colombian]))
    assert state_of(run) == "success", task_states(run)

    assert sorted(sent_numbers(sandbox)) == sorted(mexican)  # never sent, never charged
    assert colombian not in charges(sandbox)
    (reason,) = rows(dsn, "SELECT reason FROM ops.rejected_number WHERE raw_input = %s", "+" + colombian)[0]
    assert "+57" in reason and "+52" in reason

    echo = "00{}" if vendor_profile == "strict" else "{}"
    found = rows(
        dsn, "SELECT phone_number, e164, echoed_number, status, source FROM telco.accuauth_phone_check"
    )
    assert sorted(r[0] for r in found) == sorted(mexican)
    for phone, e164, echoed, status, source in found:
        assert (e164, echoed, status) == ("+" + phone, echo.format(phone), "OK"), (phone, source)
    # the answers the rows came from are kept verbatim and linked
    linked = rows(
        dsn,
        """SELECT count(*) FROM telco.accuauth_phone_check t JOIN raw.vendor_answer a
           ON a.answer_id = t.vendor_answer_id""",
    )[0][0]
    assert linked == len(mexican)


def test_an_unknown_task_id_ends_only_that_task(
    vendor_connections, fresh_warehouse_dsn, vendor_profile, run_dag
):
    """A task id the vendor does not know (never issued, or forgotten early) ends with the vendor's
    reason; the other tasks of the wait finish normally, and so does the run."""
    sandbox, dsn = vendor_connections, fresh_warehouse_dsn
    sandbox.control.settings(accuauth_seconds_per_poll=3600.0)  # tasks finish by polls only
    real = pick(3, pending=True, start=50)
    _submit_directly(dsn, sandbox, real, run_key="test/unknown")
    with psycopg.connect(dsn) as conn:
        conn.execute(
            """INSERT INTO ops.number_check_submission (vendor, task_id, phones, phone_count, status, run_id, submitted_at)
               VALUES ('accuauth', 'f' || repeat('0', 31), ARRAY['525513999991'], 1, 'pending', 'test/unknown', now())"""
        )
        conn.execute(
            """INSERT INTO telco.accuauth_phone_check (task_id, phone_number, e164, status, submitted_at, expires_at, source)
               VALUES ('f' || repeat('0', 31), '525513999991', '+525513999991', 'PENDING', now(),
                       now() + interval '24 hours', 'submit')"""
        )

    run = run_dag(DAG_ID, conf={"numbers": "", **FAST_WAIT})
    assert state_of(run) == "success", task_states(run)

    found = {
        p: (status, reason)
        for p, status, reason in rows(
            dsn, "SELECT phone_number, status, reason FROM telco.accuauth_phone_check"
        )
    }
    expected_unknown = (
        ("NOT_FOUND", "task not found")
        if vendor_profile == "strict"
        else ("INVALID_ARGUMENT", "argument 'task_id': no such task")
    )
    assert found.pop("525513999991") == expected_unknown
    assert found == {p: ("OK", None) for p in real}
    statuses = dict(rows(dsn, "SELECT phones[1], status FROM ops.number_check_submission"))
    assert statuses == {**{p: "complete" for p in real}, "525513999991": "failed"}
    # every poll answer is kept verbatim (strict answers some of them with HTTP 500: retried)
    polls = [c for c in sandbox.control.calls(event="accuauth.task_result") if c["body"] != "task_id="]
    kept = rows(
        dsn, "SELECT http_status FROM raw.vendor_answer WHERE api = 'accuauth_poll' AND request_ref <> ''"
    )
    assert sorted(s for (s,) in kept) == sorted(c["status"] for c in polls)


@pytest.mark.parametrize("echo", ["00525513000001", "5513000001", "0052********"])
def test_a_callback_never_replaces_the_number_we_sent(wh, echo):
    """Whatever the vendor echoes (``00`` + country code, a national form, a masked one), the row
    keeps the number we submitted and its e164; the echo is kept as received."""
    from phonecheck import loader
    from phonecheck.parsers import accuauth as aa

    sent = "525513000001"
    loader.upsert(
        wh, "telco.accuauth_phone_check", [aa.parse_submit_response({"status": "OK", "task_id": "T1"}, sent)]
    )
    params = {"request_id": "R1", "phone_number": echo, "phone_status": "ring", "task_id": "T1"}
    loader.upsert(wh, "telco.accuauth_phone_check", [aa.parse_callback(params)])
    wh.commit()
    row = wh.execute(
        "SELECT phone_number, e164, echoed_number, status FROM telco.accuauth_phone_check"
    ).fetchone()
    assert row == (sent, "+" + sent, echo, "OK")
