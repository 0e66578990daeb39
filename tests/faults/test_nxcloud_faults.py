"""NXCLOUD under vendor faults: injected 5xx / 429 / slow answers during a
5,000-number ``nxcloud_number_check`` run, and a skewed clock.

The sandbox decides every outcome from the number (``phonecheck.sandbox.outcomes``), so every
loaded row is predicted field by field; its wire log (``/_sandbox/calls``) shows each attempt
with its ``ts``/``sign`` headers and the sandbox's own (skewed) time ``at_ms``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime

import psycopg
import pytest

from tests import nxcloud_expected

pytestmark = [pytest.mark.integration, pytest.mark.faults]

DAG_ID = "nxcloud_number_check"
COMPARED = (
    "check_level", "code", "msg", "pre_check", "region_code", "country_code", "national_number",
    "stand_number", "number_type", "carrier", "validity", "reachable", "roaming", "early", "answered",
    "response", "price", "currency", "e164",
)  # fmt: skip


def mx(count: int, start: int = 0) -> list[str]:
    """Valid Mexico City numbers (country code 52); the last digit picks the sandbox outcome."""
    return [f"525512{start + i:06d}" for i in range(count)]


def state_of(obj) -> str:
    return str(getattr(obj.state, "value", obj.state))


def task_states(run) -> dict[str, str]:
    return {ti.task_id: state_of(ti) for ti in run.get_task_instances()}


def predicted_row(
    phone: str, level: int, batch_no: str, profile: str, *, pushed: bool, queried: bool
) -> dict:
    return nxcloud_expected.predicted_row(
        phone, level, batch_no, COMPARED, profile, pushed=pushed, queried=queried
    )


def vendor_accepted(call: dict) -> bool:
    return call["status"] == 200 and isinstance(call["answer"], dict) and call["answer"].get("code") == 0


def vendor_answered(call: dict) -> bool:
    """Accepted, or a final answer for a query date the vendor does not serve: between 16:00
    and 24:00 UTC a batch's candidate dates include tomorrow (China time), which a UTC vendor
    refuses as out of range. That is an answer, not a call given up."""
    answer = call["answer"] if isinstance(call["answer"], dict) else {}
    out_of_range = answer.get("code") == 88 and any(
        t in str(answer.get("msg")) for t in ("out of range", "超出范围")
    )
    return vendor_accepted(call) or (call["event"] == "nxcloud.query" and out_of_range)


@pytest.mark.slow
def test_20_percent_5xx_429_and_slow_answers_still_load_5000_numbers_as_predicted(
    nxcloud_pipeline, run_dag, vendor_profile, inputs_dir
):
    """Under the strict profile a 5xx or slow answer to a submit comes after the vendor charged:
    those batches are settled by their pushes, never sent again (the charge ledger says so)."""
    sandbox, receiver = nxcloud_pipeline
    dsn = receiver.dsn
    # one vendor call in five refused (half 503, half 429), one in five answered late
    sandbox.control.faults(
        {"target": "nxcloud", "kind": "error", "status": 503, "fraction": 0.1, "seed": 91},
        {"target": "nxcloud", "kind": "rate_limit", "fraction": 0.1, "seed": 92},
        {"target": "nxcloud", "kind": "slow", "delay_s": 0.5, "fraction": 0.2, "seed": 93},
        # half the pushes never come: every batch needs the query API (only for what is missing)
        {"target": "push.number_check", "kind": "drop", "fraction": 0.5, "seed": 94},
    )
    numbers = mx(5000, start=40_000)
    listing = inputs_dir / "faults.txt"  # 5,000 lines: more than the form's field takes
    listing.write_text("\n".join("+" + n for n in numbers) + "\n")
    conf = {
        "numbers_uri": f"file://{listing}",
        "check_level": "basic",
        "batch_label": "faults",
        "budget": 100,
        "max_per_chunk": 500,  # 10 batches: 10 submits + up to 50 query pages, all under faults
        "wait_poll_seconds": 0.3,
        "wait_timeout_minutes": 0.2,  # the dropped pushes never come: do not wait long for them
    }
    run = run_dag(DAG_ID, conf=conf)
    assert state_of(run) == "success", task_states(run)

    # the faults happened, at the rate asked for
    fired = {r["kind"]: r["fired"] for r in sandbox.control.http.get("/faults").json()["rules"]}
    calls = [c for c in sandbox.control.calls() if c["event"] in ("nxcloud.check", "nxcloud.query")]
    statuses = [c["status"] for c in calls]
    refused = statuses.count(503) + statuses.count(429)
    assert statuses.count(503) >= 3 and statuses.count(429) >= 3, (fired, statuses)
    assert fired["slow"] >= 3, fired
    assert 0.1 < refused / len(calls) < 0.35, (fired, len(calls))

    # every refused call was retried: same body bytes, a new ts and signature each time
    by_body: dict[str, list[dict]] = defaultdict(list)
    for call in sorted(calls, key=lambda c: c["seq"]):
        by_body[call["event"] + call["body"]].append(call)
    retried = [attempts for attempts in by_body.values() if len(attempts) > 1]
    assert len(retried) >= refused // 2, "refused calls were not retried"
    for attempts in retried:
        stamps = [int(c["headers"]["ts"]) for c in attempts]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), stamps
        assert len({c["headers"]["sign"] for c in attempts}) == len(attempts)
    for attempts in by_body.values():  # nothing given up: the last attempt of each call succeeded
        lost_after_charging = vendor_profile == "strict" and attempts[-1]["status"] == 503
        assert vendor_answered(attempts[-1]) or lost_after_charging, attempts[-1]["answer"]

    # every batch paid exactly once, every number exactly once (the sandbox's charge ledger)
    ledger = sandbox.control.charges()
    batches = {c["batch_no"] for c in ledger}
    assert len(batches) == 10
    assert sorted(c["phone"] for c in ledger) == sorted(numbers)

    with psycopg.connect(dsn) as conn:
        cur = conn.execute(
            f"SELECT phone, batch_no, message_id, pushed_at IS NOT NULL AS pushed, "  # noqa: S608
            f"queried_at IS NOT NULL AS queried, {', '.join(COMPARED)} FROM telco.nxcloud_number_check"
        )
        names = [d.name for d in cur.description]
        loaded = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        statuses_db = conn.execute("SELECT DISTINCT status FROM ops.number_check_submission").fetchall()
    assert sorted(r["phone"] for r in loaded) == sorted(numbers)  # complete, none twice
    assert set(r["batch_no"] for r in loaded) == set(batches)
    wrong = [
        r["phone"]
        for r in loaded
        if not r["message_id"]
        or {k: r[k] for k in COMPARED}
        != predicted_row(
            r["phone"], 1, r["batch_no"], vendor_profile, pushed=r["pushed"], queried=r["queried"]
        )
    ]
    assert wrong == [], f"{len(wrong)} rows differ from the sandbox's prediction, e.g. {wrong[:5]}"
    assert statuses_db == [("complete",)]


def sandbox_date(sandbox) -> str:
    return datetime.fromtimestamp(sandbox.control.clock()["now_ms"] / 1000, UTC).date().isoformat()


@pytest.mark.parametrize("skew_s", [50, -50])
def test_a_clock_50_s_off_is_still_inside_the_signing_window(vendor_connections, skew_s):
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    sandbox = vendor_connections
    sandbox.control.clock(offset_s=skew_s)  # the vendor's clock runs skew_s ahead of ours
    hook = NxCloudHook(max_attempts=1).get_client()  # no retry may hide a refusal
    phones = mx(20, start=70_000)
    answer = hook.submit_numbers(phones, batch_no=f"skew{skew_s:+d}", check_level=1)
    assert answer["code"] == 0
    page = hook.query_page(date=date.fromisoformat(sandbox_date(sandbox)), batch_no=f"skew{skew_s:+d}")
    assert sorted(r["phone"] for r in page.rows) == sorted(phones)

    calls = sandbox.control.calls()
    assert [c["event"] for c in calls] == ["nxcloud.check", "nxcloud.query"]
    for call in calls:
        assert vendor_accepted(call), call["answer"]
        offset_ms = call["at_ms"] - int(call["headers"]["ts"])  # vendor time minus our signing time
        assert abs(offset_ms - skew_s * 1000) < 5000, offset_ms  # the skew was really there


@pytest.mark.parametrize("skew_s", [61, -61])
def test_a_clock_61_s_off_is_refused_with_1004_and_a_clear_auth_error(vendor_connections, caplog, skew_s):
    from phonecheck.nxcloud.errors import NxCloudAuthError
    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    sandbox = vendor_connections
    sandbox.control.clock(offset_s=skew_s)
    with pytest.raises(NxCloudAuthError) as raised:
        NxCloudHook().get_client().submit_numbers(mx(3, start=71_000), batch_no="skew-refused", check_level=1)
    message = str(raised.value)
    assert "code 1004" in message and "ts outside the ±60 s window" in message
    assert "clock is more than 60 s off" in message and "NTP" in message
    for secret in (sandbox.credentials.nxcloud_access_secret, sandbox.credentials.nxcloud_appkey):
        assert secret not in message and secret not in caplog.text
    [call] = sandbox.control.calls(event="nxcloud.check")  # an auth refusal is never retried
    assert call["answer"]["code"] == 1004
