"""AccuAuth phone status (Mexico): does a number ring, is it busy, empty or switched off?

**Triggered from the UI** with numbers: normalise offline (invalid ones are recorded with their
reason, never paid for), skip numbers checked (or still in flight) within the freshness window,
state the cost and stop over the budget, submit with bounded concurrency (each number paid at
most once per run), load answers that come at once, then wait for the ``PENDING`` tasks in ONE
deferrable trigger (no worker slot held), load the results, expire tasks older than 24 h.

**Scheduled daily** (no numbers): re-poll every open task (e.g. from a run whose wait failed),
load, expire.

A task finished through the AccuAuth callback (the receiver stores it in the inbox) is not
polled again. Budget: AccuAuth answers carry no price, so the budget is a number of paid checks
(``max_checks``); ``unit_price`` (your contract price) only turns the count into a stated cost.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from phonecheck_airflow.operators.quality import ValidateLoadedRowsOperator
from phonecheck_airflow.sensors.accuauth import AccuAuthTasksSensor

ACCUAUTH_CONN_ID = "accuauth_default"
WAREHOUSE_CONN_ID = "warehouse"


@dag(
    dag_id="accuauth_phone_check",
    schedule="0 6 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["accuauth", "phone-check"],
    default_args={"owner": "data-platform", "retries": 1, "retry_delay": pendulum.duration(seconds=30)},
    doc_md=__doc__,
    params={
        "numbers": Param(
            "",
            type="string",
            format="multiline",
            title="Numbers",
            description="One per line (or comma separated). Empty = only re-poll open tasks.",
        ),
        "default_region": Param(
            "MX",
            type="string",
            minLength=2,
            maxLength=2,
            description="Region for numbers without +country code.",
        ),
        "freshness_days": Param(
            7,
            type="integer",
            minimum=0,
            description="Skip numbers checked (or in flight) within N days; 0 = never skip.",
        ),
        "max_checks": Param(
            1000,
            type="integer",
            minimum=0,
            title="Budget (paid checks)",
            description="Stop before spending if more checks are needed.",
        ),
        "unit_price": Param(
            0.0,
            type="number",
            minimum=0,
            description="Your AccuAuth price per check (the API has no price field); used to state the cost.",
        ),
        "currency": Param("USD", type="string", description="Currency of unit_price."),
        "dry_run": Param(
            False, type="boolean", description="State what would be checked and its cost; submit nothing."
        ),
        "submit_concurrency": Param(8, type="integer", minimum=1, maximum=64, section="Advanced"),
        "poll_interval_s": Param(30.0, type="number", minimum=0.1, section="Advanced"),
        "max_poll_interval_s": Param(900.0, type="number", minimum=0.1, section="Advanced"),
        "max_requests_per_second": Param(10.0, type="number", exclusiveMinimum=0, section="Advanced"),
    },
)
def accuauth_phone_check():
    @task
    def prepare_numbers(params=None, dag_id=None, run_id=None) -> dict:
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
            print(f"rejected offline: {rejected.raw!r}: {rejected.reason}")
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

    @task
    def budget_guard(prepared: dict, params=None) -> dict:
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

    @task
    def submit(prepared: dict, budget: dict, params=None, dag_id=None, run_id=None) -> dict:
        """Paid submits (bounded concurrency; at most once per number and run). Returns what to wait for."""
        from decimal import Decimal

        from airflow.sdk.exceptions import AirflowFailException

        from phonecheck.accuauth.api import FATAL_ERRORS
        from phonecheck.accuauth.store import WaitSelector, max_submission_id
        from phonecheck.accuauth.submit import submit_numbers
        from phonecheck.numbers import Normalised
        from phonecheck.warehouse import connect
        from phonecheck.webhook_urls import ACCUAUTH_PHONE_NUMBER, redact, webhook_url
        from phonecheck_airflow.hooks.accuauth import AccuAuthHook
        from phonecheck_airflow.warehouse import warehouse_dsn

        with connect(warehouse_dsn(WAREHOUSE_CONN_ID)) as conn:
            if prepared["mode"] == "repoll":
                return WaitSelector(None, max_submission_id(conn)).to_dict()
            numbers = [Normalised(**n) for n in prepared["to_check"]]
            callback = _callback_url(webhook_url, ACCUAUTH_PHONE_NUMBER)
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

    submitted = submit(prepared := prepare_numbers(), budget_guard(prepared))

    wait = AccuAuthTasksSensor(
        task_id="wait_for_tasks",
        selector=submitted,
        accuauth_conn_id=ACCUAUTH_CONN_ID,
        warehouse_conn_id=WAREHOUSE_CONN_ID,
        wait_settings={
            "poll_interval_s": "{{ params.poll_interval_s }}",
            "max_poll_interval_s": "{{ params.max_poll_interval_s }}",
            "max_requests_per_second": "{{ params.max_requests_per_second }}",
        },
    )

    @task
    def load_results(event: dict, run_id=None) -> list[str]:
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

    @task
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

    written = expire_stale_tasks(load_results(wait.output))
    ValidateLoadedRowsOperator(
        task_id="validate",
        table="telco.accuauth_phone_check",
        key_column="task_id",
        key_values=written,
        warehouse_conn_id=WAREHOUSE_CONN_ID,
    )


def _callback_url(webhook_url, path: str) -> str | None:
    """The receiver URL for AccuAuth callbacks: Airflow Variables ``telco_webhook_base_url`` /
    ``telco_webhook_token`` when set, else env ``TELCO_WEBHOOK_BASE_URL`` / ``TELCO_WEBHOOK_TOKEN``."""
    from airflow.sdk import Variable

    base = Variable.get("telco_webhook_base_url", default=None)
    token = Variable.get("telco_webhook_token", default=None)
    return webhook_url(path, base_url=base, token=token)


accuauth_phone_check()
