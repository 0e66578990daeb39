"""The steps of ``accuauth_phone_check`` and ``accuauth_phone_check_daily`` (the DAG files only wire them).

Same signature as the NXCLOUD steps (:mod:`phonecheck_airflow.tasks.common`): what the steps
before handed on, ``params`` when the step reads the form, the task ``context``, then the
connection ids (``conns``, keyword). Limits and
tuning come from the connection (:mod:`phonecheck_airflow.tasks.settings`); the plain logic lives
in :mod:`phonecheck.accuauth`. What travels between
steps (XCom) is keys and counts only: a selector of the run's tasks, never the numbers' results.
Logs are short ``SUMMARY`` lines, one fact each, with masked numbers.
"""

from __future__ import annotations

import logging
from typing import Any

from phonecheck.privacy.masking import mask_number
from phonecheck_airflow.conn_ids import ACCUAUTH_WAIT_SETTINGS
from phonecheck_airflow.tasks import spend
from phonecheck_airflow.tasks.common import CONNS, ConnIds, connect, run_ids
from phonecheck_airflow.tasks.settings import run_settings

log = logging.getLogger(__name__)


REPOLL_MOVED = (
    "accuauth_phone_check without numbers (or with mode=repoll) re-polls open tasks for one more "
    "release only: the daily re-poll is now the DAG accuauth_phone_check_daily (docs/pipelines.md)"
)


def prepare(params: dict[str, Any], context: Any, *, conns: ConnIds = CONNS) -> dict:
    """Offline normalisation + freshness skip (shared with NXCLOUD: phonecheck.intake); the
    numbers stay in ``ops.run_number``, the run key and counts travel on."""
    from airflow.sdk.exceptions import AirflowFailException

    from phonecheck.intake import ACCUAUTH
    from phonecheck_airflow.number_input import log_intake, prepare_run

    dag_id, run_id = run_ids(context)
    mode = params.get("mode")  # the old switch, accepted for one release
    if mode not in (None, "", "check", "repoll"):
        raise AirflowFailException(f"mode={mode!r}: this DAG checks numbers; {REPOLL_MOVED}")
    intake = None
    if mode != "repoll":
        intake = prepare_run(
            vendor=ACCUAUTH, params=params, dag_id=dag_id, run_id=run_id, warehouse_conn_id=conns.warehouse
        )
    if intake is None:
        log.warning("%s", REPOLL_MOVED)
        log.info("SUMMARY accuauth prepare: no numbers given: re-poll open tasks")
        return {"mode": "repoll", "run_key": None, "summary": {"to_check": 0}}
    log_intake(intake, "accuauth")
    return {"mode": "check", "run_key": intake.run_key, "summary": intake.summary()}


def _numbers(prepared: dict, conn) -> list:
    """The run's numbers to check, from ``ops.run_number`` (the one place that reads them)."""
    from phonecheck.intake import prepared_numbers

    return list(prepared_numbers(conn, prepared["run_key"]))


def _split_allowed(numbers: list, hook: Any) -> tuple[list, list]:
    from phonecheck.accuauth.submit import split_by_country

    return split_by_country(numbers, hook.allowed_country_codes())


def budget_guard(prepared: dict, params: dict[str, Any], context: Any, *, conns: ConnIds = CONNS) -> dict:
    """State the cost before spending; stop over budget; stop here on a dry run. Numbers the
    connection does not accept (country code) are not counted: they will never be sent."""

    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from phonecheck_airflow.hooks.accuauth import AccuAuthHook

    count = 0
    if prepared["mode"] != "repoll":
        with connect(conns.warehouse) as conn:
            numbers = _numbers(prepared, conn)
        count = len(_split_allowed(numbers, AccuAuthHook(conns.accuauth))[0])
    unit_price, price_source = spend.accuauth_unit_price(params, accuauth_conn_id=conns.accuauth)
    cost = unit_price * count
    message = f"{count} paid AccuAuth check(s), estimated cost {cost} {params['currency']} at {unit_price} ({price_source}; budget {params['max_checks']} checks)"
    log.info("SUMMARY budget: %s", message)
    if count > int(params["max_checks"]):
        raise AirflowFailException(f"over budget: {message}; raise max_checks or send fewer numbers")
    if params["dry_run"]:
        raise AirflowSkipException(f"dry run, nothing submitted: {message}")
    return {
        "count": count,
        "estimated_cost": str(cost),
        "unit_price": str(unit_price),
        "currency": params["currency"],
    }


def _selector(selector, settings: dict[str, Any]) -> dict:
    """What the wait gets: the selector, and the wait's tuning (the DAG templates it into the sensor)."""
    return {**selector.to_dict(), "wait": {k: settings[k] for k in ACCUAUTH_WAIT_SETTINGS}}


def open_tasks(context: Any, *, conns: ConnIds = CONNS) -> dict:
    """The daily re-poll's selection: every open task (of any run) submitted so far."""
    from phonecheck.accuauth.store import WaitSelector, max_submission_id

    with connect(conns.warehouse) as conn:
        selector = WaitSelector(None, max_submission_id(conn))
    log.info("SUMMARY select: open tasks submitted up to submission id %d", selector.max_submission_id)
    return _selector(selector, run_settings("accuauth", context.get("params"), conns.accuauth))


def submit(
    prepared: dict, budget: dict, params: dict[str, Any], context: Any, *, conns: ConnIds = CONNS
) -> dict:
    """Paid submits (bounded concurrency; at most once per number and run). Returns what to wait for."""
    from datetime import timedelta

    from airflow.sdk.exceptions import AirflowFailException

    from phonecheck.accuauth.api import FATAL_ERRORS
    from phonecheck.accuauth.store import WaitSelector
    from phonecheck.accuauth.submit import submit_numbers
    from phonecheck.intake import ACCUAUTH, RunContext, record_rejected
    from phonecheck.webhook_urls import ACCUAUTH_PHONE_NUMBER, redact
    from phonecheck_airflow.hooks.accuauth import AccuAuthHook
    from phonecheck_airflow.webhooks import receiver_url

    if prepared["mode"] == "repoll":
        log.info("SUMMARY submit: re-poll mode, nothing submitted")
        return open_tasks(context, conns=conns)
    dag_id, run_id = run_ids(context)
    settings = run_settings("accuauth", params, conns.accuauth)
    with connect(conns.warehouse) as conn:
        hook = AccuAuthHook(conns.accuauth)
        numbers, refused_offline = _split_allowed(_numbers(prepared, conn), hook)
        record_rejected(conn, ACCUAUTH, refused_offline, params["default_region"], RunContext(dag_id, run_id))
        conn.commit()
        for rejected in refused_offline[:20]:
            log.info("rejected offline: %s", rejected.reason)
        callback = receiver_url(ACCUAUTH_PHONE_NUMBER)
        log.info("SUMMARY submit: callback %s", redact(callback) or "none configured (polling only)")
        concurrency = int(settings["submit_concurrency"])
        with hook.get_client(pool_size=concurrency) as client:
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
                        for k in ("default_region", "freshness_days", "max_checks", "unit_price", "currency")
                    },
                    unit_price=spend.accuauth_unit_price(params, accuauth_conn_id=conns.accuauth)[0],
                    currency=params["currency"],
                    doubt_window=timedelta(seconds=float(settings["in_doubt_window_s"])),
                    doubt_lookback=timedelta(days=int(params["freshness_days"])),
                )
            except FATAL_ERRORS as exc:
                # bad credentials / quota / wrong URL: retrying cannot help, fail with the vendor's reason
                raise AirflowFailException(str(exc)) from None
    log.info(
        "SUMMARY submit: %d number(s) refused offline (country code; kept in ops.rejected_number)",
        len(refused_offline),
    )
    log.info("SUMMARY submit: %d answered at once, %d pending", report.answered_at_once, report.pending)
    log.info(
        "SUMMARY submit: %d already submitted by an earlier attempt of this run", report.already_submitted
    )
    log.info(
        "SUMMARY submit: %d refused by AccuAuth, %d vendor call(s)", len(report.refused), report.vendor_calls
    )
    log.info(
        "SUMMARY submit: %d in doubt (answer lost after sending: never resent; ops.accuauth_in_doubt)",
        len(report.in_doubt),
    )
    for e164, why in list(report.refused.items())[:20]:
        log.info("refused by AccuAuth: %s: %s", mask_number(e164), why)
    for e164 in report.in_doubt[:20]:
        log.info("in doubt: %s", mask_number(e164))
    return _selector(WaitSelector(run_id, report.max_submission_id), settings)


def load_results(event: dict, context: Any, *, conns: ConnIds = CONNS) -> dict:
    """Load what the wait left in the warehouse (verbatim poll answers, callbacks, callbacks of
    in-doubt submits), close submissions. Returns the selector and counts."""
    from phonecheck.accuauth.store import WaitSelector, load_wait

    selector = WaitSelector.from_dict(event["selector"])
    with connect(conns.warehouse) as conn:
        loaded = load_wait(conn, selector)
    log.info(
        "SUMMARY load: %d poll answer(s) loaded (%d new, %d updated)",
        loaded.polled.received, loaded.polled.inserted, loaded.polled.updated,
    )  # fmt: skip
    log.info(
        "SUMMARY load: %d callback(s) loaded (%d updated)",
        loaded.callbacks.received,
        loaded.callbacks.updated,
    )
    log.info("SUMMARY load: %d in-doubt submit(s) settled by their callback", loaded.adopted)
    log.info("SUMMARY load: submissions closed %s", ", ".join(f"{k} {v}" for k, v in loaded.closed.items()))
    return {
        "selector": selector.to_dict(),
        "adopted": loaded.adopted,
        "polled": loaded.polled.received,
        "callbacks": loaded.callbacks.received,
    }


def expire_stale_tasks(loaded: dict, context: Any, *, conns: ConnIds = CONNS) -> dict:
    """Tasks past their 24 h validity end as EXPIRED: never polled forever."""
    from phonecheck.accuauth.closing import expire_stale
    from phonecheck.accuauth.store import reconcile_submissions

    with connect(conns.warehouse) as conn:
        expired = expire_stale(conn)
        reconcile_submissions(conn)
    log.info("SUMMARY expire: %d task(s) past their 24 h validity marked EXPIRED", len(expired))
    return {"selector": loaded["selector"], "expired": len(expired)}


def validate(expired: dict, context: Any, *, conns: ConnIds = CONNS) -> dict:
    """Validate the rows of the run's tasks (ids read from the warehouse, not from XCom), then
    state the run's outcome."""
    from phonecheck.accuauth.closing import run_summary, written_task_ids
    from phonecheck.accuauth.store import WaitSelector, in_doubt_numbers
    from phonecheck_airflow.operators.quality import validate_loaded_rows

    selector = WaitSelector.from_dict(expired["selector"])
    dag_run = context.get("dag_run")
    started = getattr(dag_run, "start_date", None)
    with connect(conns.warehouse) as conn:
        keys = written_task_ids(conn, selector, started)
        summary = run_summary(conn, selector)
        doubts = in_doubt_numbers(conn, selector.run_id) if selector.run_id else []
    result = validate_loaded_rows(
        "telco.accuauth_phone_check", "task_id", keys, warehouse_conn_id=conns.warehouse, context=context
    )
    log.info(
        "SUMMARY run: %d task(s) of this run: %d OK, %d pending, %d ended by the vendor, %d expired",
        summary["tasks"], summary["ok"], summary["pending"], summary["ended"], summary["expired"],
    )  # fmt: skip
    log.info("SUMMARY run: %d number(s) in doubt (charged maybe, no answer, not resent)", len(doubts))
    for e164 in doubts[:20]:
        log.info("in doubt: %s", mask_number(e164))
    return {"validated": len(keys), "in_doubt": len(doubts), "quality": result.get("success", result)}
