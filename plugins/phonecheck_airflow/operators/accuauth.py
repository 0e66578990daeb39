"""The steps of ``accuauth_phone_check`` (the DAG file only wires them).

Each step reads the warehouse through the ``warehouse`` connection and the vendor through
``accuauth_default``; the plain logic lives in :mod:`phonecheck.accuauth`.
"""

from __future__ import annotations

from typing import Any

from phonecheck.privacy.masking import mask_number

ACCUAUTH_CONN_ID = "accuauth_default"
WAREHOUSE_CONN_ID = "warehouse"


def prepare(params: dict[str, Any], dag_id: str, run_id: str) -> dict:
    """Offline normalisation + freshness skip (shared with NXCLOUD: phonecheck.intake)."""
    from phonecheck.intake import ACCUAUTH, RunContext, prepare_numbers
    from phonecheck.numbers import split_input
    from phonecheck.warehouse import connect
    from phonecheck_airflow.warehouse import warehouse_dsn

    entries = split_input(params["numbers"] or "")
    if not entries:
        print("no numbers given: re-poll mode (wait for every open AccuAuth task)")
        return {"mode": "repoll", "to_check": [], "summary": {}}
    with connect(warehouse_dsn(WAREHOUSE_CONN_ID)) as conn:
        intake = prepare_numbers(
            conn,
            vendor=ACCUAUTH,
            entries=entries,
            default_region=params["default_region"],
            freshness_days=int(params["freshness_days"]),
            ctx=RunContext(dag_id=dag_id, run_id=run_id),
        )
    for rejected in intake.rejected[:50]:
        print(f"rejected offline: {mask_number(rejected.raw)}: {rejected.reason}")
    print(f"intake: {intake.summary()}")
    to_check = [
        {
            "raw": n.raw,
            "e164": n.e164,
            "region_code": n.region_code,
            "country_code": n.country_code,
            "line_type": n.line_type,
        }
        for n in intake.to_check
    ]
    return {"mode": "check", "to_check": to_check, "summary": intake.summary()}


def budget_guard(prepared: dict, params: dict[str, Any]) -> dict:
    """State the cost before spending; stop over budget; stop here on a dry run."""
    from decimal import Decimal

    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    count = len(prepared["to_check"])
    cost = Decimal(str(params["unit_price"])) * count
    message = f"{count} paid AccuAuth check(s), estimated cost {cost} {params['currency']} (budget {params['max_checks']} checks)"
    print(message)
    if count > int(params["max_checks"]):
        raise AirflowFailException(f"over budget: {message}; raise max_checks or send fewer numbers")
    if params["dry_run"]:
        raise AirflowSkipException(f"dry run, nothing submitted: {message}")
    return {"count": count, "estimated_cost": str(cost), "currency": params["currency"]}


def submit(prepared: dict, budget: dict, params: dict[str, Any], dag_id: str, run_id: str) -> dict:
    """Paid submits (bounded concurrency; at most once per number and run). Returns what to wait for."""
    from decimal import Decimal

    from airflow.sdk.exceptions import AirflowFailException

    from phonecheck.accuauth.api import FATAL_ERRORS
    from phonecheck.accuauth.store import WaitSelector, max_submission_id
    from phonecheck.accuauth.submit import submit_numbers
    from phonecheck.numbers import Normalised
    from phonecheck.warehouse import connect
    from phonecheck.webhook_urls import ACCUAUTH_PHONE_NUMBER, redact
    from phonecheck_airflow.hooks.accuauth import AccuAuthHook
    from phonecheck_airflow.warehouse import warehouse_dsn
    from phonecheck_airflow.webhooks import receiver_url

    with connect(warehouse_dsn(WAREHOUSE_CONN_ID)) as conn:
        if prepared["mode"] == "repoll":
            return WaitSelector(None, max_submission_id(conn)).to_dict()
        numbers = [Normalised(**n) for n in prepared["to_check"]]
        callback = receiver_url(ACCUAUTH_PHONE_NUMBER)
        print(f"callback: {redact(callback) or 'none configured (polling only)'}")
        concurrency = int(params["submit_concurrency"])
        with AccuAuthHook(ACCUAUTH_CONN_ID).get_client(pool_size=concurrency) as client:
            try:
                report = submit_numbers(
                    conn,
                    client,
                    numbers,
                    run_key=f"{dag_id}/{run_id}",
                    dag_id=dag_id,
                    run_id=run_id,
                    callback_url=callback,
                    max_concurrency=concurrency,
                    params={
                        k: params[k]
                        for k in (
                            "default_region",
                            "freshness_days",
                            "max_checks",
                            "unit_price",
                            "currency",
                        )
                    },
                    unit_price=Decimal(str(params["unit_price"])),
                    currency=params["currency"],
                )
            except FATAL_ERRORS as exc:
                # bad credentials / quota / wrong URL: retrying cannot help, fail with the vendor's reason
                raise AirflowFailException(str(exc)) from None
    print(f"submit: {report.summary()}")
    for e164, why in list(report.refused.items())[:50]:
        print(f"refused by AccuAuth: {e164}: {why}")
    return WaitSelector(run_id, report.max_submission_id).to_dict()


def load_results(event: dict, run_id: str) -> list[str]:
    """Upsert what the wait learnt, load callbacks from the inbox, close submissions.
    Returns the task ids whose rows this run wrote (for validation)."""
    from phonecheck.accuauth.store import (
        load_callbacks,
        load_poll_results,
        reconcile_submissions,
        run_task_ids,
    )
    from phonecheck.accuauth.waiter import WaitOutcome
    from phonecheck.warehouse import connect
    from phonecheck_airflow.warehouse import warehouse_dsn

    results = WaitOutcome.results_from_payload(event)
    with connect(warehouse_dsn(WAREHOUSE_CONN_ID)) as conn:
        polled = load_poll_results(conn, results)
        callbacks = load_callbacks(conn)
        closed = reconcile_submissions(conn)
        submitted_here = run_task_ids(conn, run_id)
    summary = {
        "polled": {"received": polled.received, "inserted": polled.inserted, "updated": polled.updated},
        "callbacks": {"received": callbacks.received, "updated": callbacks.updated},
        "submissions_closed": closed,
        "wait": event.get("stats", {}),
    }
    print(f"load: {summary}")
    waited = [r["task_id"] for r in results] + list(event.get("finished_elsewhere", []))
    return sorted(set(submitted_here) | set(waited) | set(event.get("expired", [])))


def expire_stale_tasks(loaded: list[str]) -> list[str]:
    """Tasks past their 24 h validity end as EXPIRED: never polled forever. Returns the
    task ids written by this run (loaded + expired) for validation."""
    from phonecheck.accuauth.store import expire_stale, reconcile_submissions
    from phonecheck.warehouse import connect
    from phonecheck_airflow.warehouse import warehouse_dsn

    with connect(warehouse_dsn(WAREHOUSE_CONN_ID)) as conn:
        expired = expire_stale(conn)
        closed = reconcile_submissions(conn)
    print(f"expired {len(expired)} task(s); submissions closed: {closed}")
    return sorted(set(loaded) | set(expired))
