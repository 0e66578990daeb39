"""AccuAuth phone status (Mexico), on demand: does a number ring, is it busy, empty or switched off?

Triggered from the UI with numbers: normalise offline (invalid ones are recorded with their
reason, never paid for), skip numbers checked (or still in flight) within the freshness window,
state the cost and stop over the budget, submit with bounded concurrency (each number paid at
most once per run), load answers that come at once, then wait for the ``PENDING`` tasks in ONE
deferrable trigger (no worker slot held), load the results, expire tasks older than 24 h, and
settle the spend once the wait is over (callbacks may have settled numbers in doubt by then).

The daily re-poll of open tasks is its own DAG, ``accuauth_phone_check_daily``. A task finished
through the AccuAuth callback (the receiver stores it in the inbox) is not polled again. A submit
whose answer was lost is never resent: the vendor's callback for that number settles it, else it
is listed in ``ops.accuauth_in_doubt`` (docs/vendors/accuauth.md). Budget: AccuAuth answers carry
no price, so the budget is a number of paid checks (``max_checks``); ``unit_price`` (your
contract price) only turns the count into a stated cost. Rate, concurrency, in-doubt window and
the wait's polling are extras of the ``accuauth_default`` connection (docs/pipelines.md).
"""

from __future__ import annotations

import airflow.providers.standard.operators.hitl  # noqa: F401  # named so the dag-processor pre-imports it (docs/development.md)
import pendulum
from airflow.sdk import Param, dag, task

from phonecheck_airflow.assets import ACCUAUTH_RESULTS
from phonecheck_airflow.conn_ids import ACCUAUTH_CONN_ID, ACCUAUTH_WAIT_SETTINGS, WAREHOUSE_CONN_ID
from phonecheck_airflow.notifiers import alert_notifiers
from phonecheck_airflow.number_params import ADVANCED, approval_threshold_param, numbers_params
from phonecheck_airflow.operators.spend import SpendApprovalOperator
from phonecheck_airflow.sensors.accuauth import AccuAuthTasksSensor

#: The wait's tuning, as ``submit`` handed it on (read from the connection's extras).
WAIT = "{{{{ ti.xcom_pull(task_ids='submit')['wait']['{}'] }}}}"


@dag(
    dag_id="accuauth_phone_check",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["accuauth", "phone-check", "on-demand"],
    default_args={
        "owner": "data-platform",
        "retries": 1,
        "retry_delay": pendulum.duration(seconds=30),
        "on_failure_callback": alert_notifiers("task_failed"),
    },
    doc_md=__doc__,
    params={
        **numbers_params(
            empty="Empty and no file: re-poll open tasks (this release only: accuauth_phone_check_daily does it)."
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
        "dry_run": Param(
            False,
            type="boolean",
            description="State what would be checked and its cost; submit nothing.",
        ),
        "unit_price": Param(
            0.0,
            type="number",
            minimum=0,
            section=ADVANCED,
            description="Your AccuAuth price per check (the API has no price field); used to state the cost. "
            "Never below the configured contract price.",
        ),
        "currency": Param("USD", type="string", section=ADVANCED, description="Currency of unit_price."),
        **approval_threshold_param("currency"),
    },
)
def accuauth_phone_check():
    @task
    def prepare_numbers(params=None, **context) -> dict:
        """Offline normalisation + freshness skip (shared with NXCLOUD: phonecheck.intake)."""
        from phonecheck_airflow.tasks import accuauth

        return accuauth.prepare(params, context)

    @task
    def budget_guard(prepared: dict, params=None, **context) -> dict:
        """State the cost before spending; stop over budget; stop here on a dry run."""
        from phonecheck_airflow.tasks import accuauth

        return accuauth.budget_guard(prepared, params, context)

    @task
    def submit(prepared: dict, budget: dict, params=None, **context) -> dict:
        """Paid submits (bounded concurrency; at most once per number and run)."""
        from phonecheck_airflow.tasks import accuauth

        return accuauth.submit(prepared, budget, params, context)

    @task
    def reserve_budget(budget: dict, params=None, **context) -> dict:
        """Hold the estimate against the month's budget (shared by concurrent runs)."""
        from phonecheck_airflow.tasks import spend

        return spend.reserve_spend("accuauth", budget, params, context)

    @task(trigger_rule="all_done")
    def settle_spend(**context) -> dict:
        """Replace the reservation by what the run was charged, once the wait (and the callbacks
        that settle numbers in doubt) is over."""
        from phonecheck_airflow.tasks import spend

        return spend.settle_accuauth(context)

    budget = budget_guard(prepared := prepare_numbers())
    approval = SpendApprovalOperator(
        task_id="approve_spend",
        vendor="accuauth",
        estimate=budget,
        prepared=prepared,
        currency_param="currency",
    )
    submitted = submit(prepared, budget)
    budget >> approval >> reserve_budget(budget) >> submitted

    wait = AccuAuthTasksSensor(
        task_id="wait_for_tasks",
        deferrable=True,  # Airflow's default_deferrable is False (docs/airflow.md)
        selector=submitted,
        accuauth_conn_id=ACCUAUTH_CONN_ID,
        warehouse_conn_id=WAREHOUSE_CONN_ID,
        wait_settings={k: WAIT.format(k) for k in ACCUAUTH_WAIT_SETTINGS},
    )

    @task(outlets=[ACCUAUTH_RESULTS])
    def load_results(event: dict, **context) -> dict:
        """Load what the wait left in the warehouse, callbacks included; close submissions."""
        from phonecheck_airflow.assets import announce
        from phonecheck_airflow.tasks import accuauth

        loaded = accuauth.load_results(event, context)
        announce(context, ACCUAUTH_RESULTS, loaded)  # the Asset event: run key and counts
        return loaded

    @task
    def expire_stale_tasks(loaded: dict, **context) -> dict:
        """Tasks past their 24 h validity end as EXPIRED: never polled forever."""
        from phonecheck_airflow.tasks import accuauth

        return accuauth.expire_stale_tasks(loaded, context)

    @task(on_failure_callback=alert_notifiers("dq_failed"))
    def validate(expired: dict, **context) -> dict:
        """Validate the run's rows (keys read from the warehouse) and state the run's outcome."""
        from phonecheck_airflow.tasks import accuauth

        return accuauth.validate(expired, context)

    @task(trigger_rule="all_done")
    def write_results(params=None, **context) -> dict:
        """One row per input line to the results file (results_uri, or beside numbers_uri)."""
        from phonecheck_airflow.results_output import write_run_results

        return write_run_results("accuauth", params, context)

    expired = expire_stale_tasks(load_results(wait.output))
    validate(expired)
    # after the wait: a callback may still settle a number in doubt, which then is charged (or not)
    settled = expired >> settle_spend()
    # not after validate: a leaf of its own, so a failed validation still fails the run
    settled >> write_results()


accuauth_phone_check()
