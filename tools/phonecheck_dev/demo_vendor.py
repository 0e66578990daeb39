"""``make demo``'s vendor side: a day of voice receipts and privacy-number calls pushed by the
sandbox, and one check on a slow, partly wrong vendor (docs/getting-started.md)."""

from __future__ import annotations

import threading

from phonecheck_dev.demo_runs import INVALID_INPUTS, demo_numbers, report_run, run_dag, say

DEMO_EXT = "make-demo"  # marks the demo's voice receipts (NXCLOUD voice-receipt doc ``ext``)
# The demo's privacy-number calls carry these vendor ids (+0..11): the same in every run, whatever
# the day, so a second run is a vendor retry the receiver deduplicates.
DEMO_CALL_ID_BASE = 990_000_000


def send_voice_and_calls(sandbox_url: str, receiver_base: str, token: str, dsn: str) -> None:
    import httpx
    import psycopg

    marker = DEMO_EXT  # not the day: a second demo after midnight must not send a second day
    with psycopg.connect(dsn) as conn:
        already = conn.execute(
            "SELECT count(*) FROM telco.nxcloud_voice_receipt WHERE ext = %s", (marker,)
        ).fetchone()[0]
    from phonecheck.sandbox.config import SandboxConfig

    cfg = SandboxConfig()
    if already:
        say(f"  voice: the demo's receipts already received ({already}); not sending again")
    else:
        phones = [n[1:] for n in demo_numbers(40, offset=500) if n.startswith("+52")]
        answer = httpx.post(
            f"{sandbox_url}/nxcloud/api/voiceSms/notsend",
            data={
                "appkey": cfg.nxcloud_appkey,
                "secretkey": cfg.nxcloud_voice_secretkey,
                "phone": ",".join(p[2:] for p in phones),
                "country_code": "52",
                "show_phone": "5255000000",
                "content": "Your code is 1-2-3-4",
                "lang": "es",
                "ext": marker,
            },
            headers={"X-Sandbox-Dr-Url": f"{receiver_base}/nxcloud/voice/{token}"},
            timeout=30,
        )
        say(f"  voice: {len(phones)} notifications sent (answer code {answer.json().get('code')})")
    for i, callee in enumerate(demo_numbers(2, offset=900)[:12]):
        httpx.post(
            f"{sandbox_url}/_sandbox/pns/call",
            json={
                "caller": "85235757583",
                "callee": callee[1:],
                "did": "85235757584",
                "url": f"{receiver_base}/nxcloud/call/{token}",
                "id": DEMO_CALL_ID_BASE + i,
                "callId": str(DEMO_CALL_ID_BASE + i),
                "shape": "legList" if i % 3 == 0 else "flat",
            },
            timeout=30,
        ).raise_for_status()
    say("  calls: 12 privacy-number calls placed (call records pushed with retries)")
    httpx.post(f"{sandbox_url}/_sandbox/wait", json={"timeout_s": 60}, timeout=70)


#: Two Mexican numbers for the slow, partly wrong vendor (:func:`late_and_wrong`).
LATE_NUMBERS = ["+52 55 9876 0010", "+52 55 9876 0020"]
#: A receipt code NXCLOUD's documents do not list (docs/vendors/nxcloud.md has the documented ones).
UNDOCUMENTED_CODE = 130


def _vendor_push_with_an_undocumented_code(
    dsn: str, sandbox_url: str, receiver_base: str, token: str, phone: str, stop: threading.Event
) -> None:
    """Play the vendor for one push: once the run's batch holding ``phone`` is submitted, send its
    result push (2023 shape, the messageId the vendor gives that number) with code 130."""
    import httpx
    import psycopg

    from phonecheck.sandbox.outcomes import message_id_for

    while not stop.is_set():
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT batch_no, phones FROM ops.number_check_submission WHERE vendor = 'nxcloud' "
                "AND status = 'submitted' AND %s = ANY(phones) ORDER BY submission_id DESC LIMIT 1",
                (phone,),
            ).fetchone()
        charges = []
        if row:
            answer = httpx.get(f"{sandbox_url}/_sandbox/charges", params={"batch_no": row[0]}, timeout=10)
            charges = [c for c in answer.json() if c["phone"] == phone]
        if charges:
            batch_no, phones = row
            push = {
                "messageId": message_id_for(charges[0]["request_id"], phones.index(phone) + 1, len(phones)),
                "code": UNDOCUMENTED_CODE,
                "msg": "Number check temporarily restricted by the operator",
                "batchNo": batch_no,
                "phone": phone,
            }
            httpx.post(
                f"{receiver_base}/nxcloud/number-check/{token}", json=push, timeout=10
            ).raise_for_status()
            return
        stop.wait(0.2)


def late_and_wrong(dagbag, dsn: str, sandbox_url: str, receiver_base: str, token: str) -> None:
    """One more NXCLOUD check, of two numbers, on a day the vendor is slow and partly wrong.

    The sandbox holds this batch's pushes for an hour and, like the vendor's query API on a slow
    day, does not list the batch yet (its strict profile's query lag, docs/sandbox.md). One push
    does come, for the first number, with receipt code 130: a code NXCLOUD's documents do not
    list. The sandbox only sends documented codes, so the demo sends that push itself, to the
    receiver, as the vendor would. The run waits (a short wait here), finds the second result
    neither pushed nor listed, loads what it has and validates it: the expectation on ``code``
    fails, the run's ``validate`` task fails, the row is kept. The batch stays ``submitted``
    (waiting for its result), to be collected by a later run of the daily reconciliation.
    A second demo run finds both numbers in flight and buys nothing.
    """
    import httpx

    phones = ["".join(ch for ch in n if ch.isdigit()) for n in LATE_NUMBERS]
    settings = {"profile": "strict", "strict_query_lag_minutes": 24 * 60, "push_delay_s": 3600}
    httpx.post(f"{sandbox_url}/_sandbox/settings", json=settings, timeout=10).raise_for_status()
    stop = threading.Event()
    vendor = threading.Thread(
        target=_vendor_push_with_an_undocumented_code,
        args=(dsn, sandbox_url, receiver_base, token, phones[0], stop),
        daemon=True,
    )
    vendor.start()
    try:
        say(
            f"nxcloud_number_check, basic, a slow and partly wrong vendor: {len(LATE_NUMBERS)} numbers "
            f"(+{len(INVALID_INPUTS)} invalid); pushes held an hour, the query API lists the batch only later, "
            f"and one push (sent by the demo, as the vendor) carries receipt code {UNDOCUMENTED_CODE}, "
            "which NXCLOUD does not document"
        )
        run = run_dag(
            dagbag,
            "nxcloud_number_check",
            {"numbers": "\n".join(LATE_NUMBERS + INVALID_INPUTS), "default_region": "MX", "check_level": "basic",
             "batch_label": "demo-late", "budget": 100, "wait_poll_seconds": 1, "wait_timeout_minutes": 0.1},
            label="late",
            may_fail=("validate",),
        )  # fmt: skip
    finally:
        stop.set()
        vendor.join(timeout=15)
        httpx.post(
            f"{sandbox_url}/_sandbox/settings",
            json={"profile": "default", "strict_query_lag_minutes": 5.0, "push_delay_s": 0.1},
            timeout=10,
        ).raise_for_status()
    report_run(dsn, "nxcloud_number_check", run.run_id, "nxcloud_number_check late")
    import psycopg

    with psycopg.connect(dsn) as conn:
        waiting = conn.execute(
            "SELECT coalesce(sum(phone_count), 0) FROM ops.number_check_submission "
            "WHERE dag_id = 'nxcloud_number_check' AND run_id = %s AND status IN ('pending', 'submitted')",
            (run.run_id,),
        ).fetchone()[0]
        failures = conn.execute(
            "SELECT expectation_type, column_name, unexpected_count FROM dq.validation_result "
            "WHERE airflow_run_id = %s AND NOT success ORDER BY 1, 2",
            (run.run_id,),
        ).fetchall()
    if waiting:
        say(f"    still waiting for the vendor: {waiting} number(s) (status submitted)")
    for expectation, column, count in failures:
        say(f"    failed expectation: {expectation} on {column} ({count} row(s)); the rows are kept")
    if not failures and waiting == 0:
        say("    nothing new submitted (the numbers are in flight from an earlier run): nothing to wait for")
