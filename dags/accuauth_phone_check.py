"""AccuAuth phone status (Mexico): does a number ring, is it busy, empty or switched off?

**Triggered from the UI** with numbers: normalise offline (invalid ones are recorded with their
reason, never paid for), skip numbers checked (or still in flight) within the freshness window,
state the cost and stop over the budget, submit with bounded concurrency (each number paid at
most once per run), load answers that come at once, then wait for the ``PENDING`` tasks in ONE
deferrable trigger (no worker slot held), load the results, expire tasks older than 24 h.

**Scheduled daily** (no numbers): re-poll every open task (e.g. from a run whose wait failed),
load, expire.

A task finished through the AccuAuth callback (the receiver stores it in the inbox) is not
polled again. A submit whose answer was lost is never resent: the vendor's callback for that
number settles it, else it is listed in ``ops.accuauth_in_doubt`` (docs/vendors/accuauth.md). Budget: AccuAuth answers carry no price, so the budget is a number of paid checks
(``max_checks``); ``unit_price`` (your contract price) only turns the count into a stated cost.
"""

from __future__ import annotations

import airflow.providers.standard.operators.hitl  # noqa: F401  # named so the dag-processor pre-imports it (docs/development.md)
import pendulum
from airflow.sdk import Param, dag, task

from phonecheck_airflow.conn_ids import ACCUAUTH_CONN_ID, WAREHOUSE_CONN_ID
from phonecheck_airflow.notifiers import alert_notifiers
from phonecheck_airflow.number_params import numbers_file_params, numbers_params
from phonecheck_airflow.operators.spend import SpendApprovalOperator
from phonecheck_airflow.sensors.accuauth import AccuAuthTasksSensor


@dag(
    dag_id="accuauth_phone_check",
    schedule="0 6 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["accuauth", "phone-check"],
    default_args={
        "owner": "data-platform",
        "retries": 1,
        "retry_delay": pendulum.duration(seconds=30),
        "on_failure_callback": alert_notifiers("task_failed"),
    },
    doc_md=__doc__,
    params={
        **numbers_params(empty="Empty (and no file) = only re-poll open tasks."),
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
        **numbers_file_params(section="Advanced"),
        "approval_threshold": Param(
            None,
            type=["null", "number"],
            minimum=0,
            title="Auto-approve up to",
            description="Above this estimated cost (currency) the run waits for an approver; empty = the "
            "configured threshold (docs/operations.md).",
        ),
        "approval_timeout_minutes": Param(1440, type="number", minimum=1, section="Advanced"),
        "submit_concurrency": Param(8, type="integer", minimum=1, maximum=64, section="Advanced"),
        "poll_interval_s": Param(30.0, type="number", minimum=0.1, section="Advanced"),
        "max_poll_interval_s": Param(900.0, type="number", minimum=0.1, section="Advanced"),
        "max_requests_per_second": Param(10.0, type="number", exclusiveMinimum=0, section="Advanced"),
        "warehouse_check_interval_s": Param(30.0, type="number", minimum=0.05, section="Advanced"),
        "in_doubt_window_s": Param(
            1800.0,
            type="number",
            minimum=0,
            section="Advanced",
            description="How long to wait for the callback of a submit whose answer was lost.",
        ),
    },
)
def accuauth_phone_check():
    @task
    def prepare_numbers(params=None, dag=None, run_id=None) -> dict:
        """Offline normalisation + freshness skip (shared with NXCLOUD: phonecheck.intake)."""
        from phonecheck_airflow.tasks import accuauth

        return accuauth.prepare(params, dag.dag_id, run_id)

    @task
    def budget_guard(prepared: dict, params=None) -> dict:
        """State the cost before spending; stop over budget; stop here on a dry run."""
        from phonecheck_airflow.tasks import accuauth

        return accuauth.budget_guard(prepared, params)

    @task
    def submit(prepared: dict, budget: dict, params=None, dag=None, run_id=None) -> dict:
        """Paid submits (bounded concurrency; at most once per number and run)."""
        from phonecheck_airflow.tasks import accuauth

        # the task context has no "dag_id": the DAG object carries it
        return accuauth.submit(prepared, budget, params, dag.dag_id, run_id)

    @task
    def reserve_budget(budget: dict, params=None, **context) -> dict:
        """Hold the estimate against the month's budget (shared by concurrent runs)."""
        from phonecheck_airflow.tasks import spend

        return spend.reserve_spend("accuauth", budget, params, context)

    @task(trigger_rule="all_done")
    def settle_spend(**context) -> dict:
        """Replace the reservation by what the run was charged."""
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
    submitted >> settle_spend()

    wait = AccuAuthTasksSensor(
        task_id="wait_for_tasks",
        selector=submitted,
        accuauth_conn_id=ACCUAUTH_CONN_ID,
        warehouse_conn_id=WAREHOUSE_CONN_ID,
        wait_settings={
            "poll_interval_s": "{{ params.poll_interval_s }}",
            "max_poll_interval_s": "{{ params.max_poll_interval_s }}",
            "max_requests_per_second": "{{ params.max_requests_per_second }}",
            "warehouse_check_interval_s": "{{ params.warehouse_check_interval_s }}",
        },
    )

    @task
    def load_results(event: dict) -> dict:
        """Load what the wait left in the warehouse, callbacks included; close submissions."""
        from phonecheck_airflow.tasks import accuauth

        return accuauth.load_results(event)

    @task
    def expire_stale_tasks(loaded: dict) -> dict:
        """Tasks past their 24 h validity end as EXPIRED: never polled forever."""
        from phonecheck_airflow.tasks import accuauth

        return accuauth.expire_stale_tasks(loaded)

    @task(on_failure_callback=alert_notifiers("dq_failed"))
    def validate(expired: dict, params=None, run_id=None, **context) -> dict:
        """Validate the run's rows (keys read from the warehouse) and state the run's outcome."""
        from phonecheck_airflow.tasks import accuauth

        return accuauth.validate(expired, params, run_id, context)

    validate(expire_stale_tasks(load_results(wait.output)))


accuauth_phone_check()
