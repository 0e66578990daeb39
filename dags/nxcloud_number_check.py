"""NXCLOUD number check, on demand: paste numbers in the trigger form, get verified rows.

prepare (offline normalisation, rejects recorded, fresh numbers skipped) → estimate (cost per
country and level; over budget stops here; a dry run stops after it) → approve_spend (waits for
an approver when the estimate is above the auto-approve threshold) → reserve_budget (the
monthly budget shared by all runs) → submit (one country and
at most 5,000 numbers per batch, deterministic batchNo, recorded before the paid call so a retry
never pays twice, drUrl = the webhook receiver; a batch whose answer was lost is recorded in
doubt, never waited for here) → settle_in_doubt (deferrable: the triggerer waits for a push, a
row or the query API listing each batch in doubt; only after the push window plus a margin
brought nothing is it sent again) → wait_for_results (deferrable: pokes once, then
a trigger counts the pushes in the warehouse) → reconcile (every page of the query API) → load
(the pushes from the inbox) → validate (Great Expectations over the loaded batches) and
settle_spend (the ledger keeps the charges instead of the estimate; docs/operations.md).

Results land in ``telco.nxcloud_number_check`` (one row per batch_no, phone); submissions in
``ops.number_check_submission``; rejected inputs in ``ops.rejected_number``. See
docs/pipelines.md, "NXCLOUD number check".
"""

from __future__ import annotations

import airflow.providers.standard.operators.hitl  # noqa: F401  # named so the dag-processor pre-imports it (docs/development.md)
import airflow.sdk.bases.sensor  # noqa: F401  # the sensor's base, pre-imported the same way
import pendulum
from airflow.sdk import Param, dag, task

from phonecheck_airflow.assets import NXCLOUD_RESULTS
from phonecheck_airflow.notifiers import alert_notifiers
from phonecheck_airflow.number_params import ADVANCED, approval_threshold_param, numbers_params
from phonecheck_airflow.operators.nxcloud import NxCloudSettleInDoubtOperator
from phonecheck_airflow.operators.spend import SpendApprovalOperator
from phonecheck_airflow.sensors.nxcloud import NxCloudResultsSensor

#: The wait's tuning, as ``submit`` handed it on (read from the connection's extras).
WAIT = "{{{{ ti.xcom_pull(task_ids='submit')['wait']['{}'] }}}}"


@dag(
    dag_id="nxcloud_number_check",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    tags=["nxcloud", "number-check", "on-demand"],
    default_args={
        "owner": "telco-data",
        "retries": 1,
        "retry_delay": pendulum.duration(seconds=30),
        "on_failure_callback": alert_notifiers("task_failed"),
    },
    doc_md=__doc__,
    params={
        **numbers_params(empty="Empty: give a Numbers file."),
        "default_region": Param(
            "MX",
            type=["null", "string"],
            title="Default region",
            description="ISO country (e.g. MX) for numbers written without a country code.",
        ),
        "check_level": Param(
            "basic",
            enum=["basic", "hlr", "call"],
            title="Check level",
            values_display={
                "basic": "Basic (format, type, carrier)",
                "hlr": "HLR (live status)",
                "call": "Call",
            },
        ),
        "batch_label": Param(
            "ui",
            type="string",
            maxLength=20,
            pattern="^[A-Za-z0-9_-]*$",
            title="Batch label",
            description="Prefix of the vendor batchNo (letters, digits, - and _).",
        ),  # fmt: skip
        "freshness_days": Param(
            30,
            type="integer",
            minimum=0,
            title="Freshness window (days)",
            description="Skip numbers already checked at this level within so many days (0 = check again).",
        ),  # fmt: skip
        "budget": Param(
            50,
            type=["null", "number"],
            minimum=0,
            title="Budget",
            description="Stop before submitting when the estimated cost is higher (empty = no limit).",
        ),  # fmt: skip
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Estimate, record the approval decision; submit nothing.",
        ),
        "budget_currency": Param(
            "USD", type="string", minLength=3, maxLength=3, section=ADVANCED, title="Budget currency"
        ),
        **approval_threshold_param("budget_currency"),
    },
)
def nxcloud_number_check():
    @task
    def prepare(params=None, **context) -> dict:
        from phonecheck_airflow.tasks import nxcloud

        return nxcloud.prepare(params, context)

    @task
    def estimate(prepared: dict, params=None, **context) -> dict:
        from phonecheck_airflow.tasks import nxcloud

        return nxcloud.estimate(prepared, params, context)

    @task
    def submit(prepared: dict, cost: dict, params=None, **context) -> dict:
        from phonecheck_airflow.tasks import nxcloud

        return nxcloud.submit(prepared, cost, params, context)

    @task
    def reconcile(submitted: dict, waited: dict, **context) -> dict:
        from phonecheck_airflow.tasks import nxcloud

        return nxcloud.reconcile(submitted, context)

    @task(outlets=[NXCLOUD_RESULTS])
    def load(prepared: dict, submitted: dict, reconciled: dict, **context) -> dict:
        from phonecheck_airflow.assets import announce
        from phonecheck_airflow.tasks import nxcloud

        loaded = nxcloud.load(prepared, submitted, reconciled, context)
        announce(context, NXCLOUD_RESULTS, loaded)  # the Asset event: run key and counts
        return loaded

    @task(on_failure_callback=alert_notifiers("dq_failed"))
    def validate(loaded: dict, **context) -> dict:
        """Great Expectations over the run's batches (read from the warehouse by run key)."""
        from phonecheck_airflow.tasks import nxcloud

        return nxcloud.validate(loaded, context)

    @task
    def reserve_budget(cost: dict, params=None, **context) -> dict:
        from phonecheck_airflow.tasks import spend

        return spend.reserve_spend("nxcloud", cost, params, context)

    @task(trigger_rule="all_done")
    def settle_spend(**context) -> dict:
        from phonecheck_airflow.tasks import spend

        return spend.settle_nxcloud(context)

    @task(trigger_rule="all_done")
    def write_results(params=None, **context) -> dict:
        """One row per input line to the results file (results_uri, or beside numbers_uri)."""
        from phonecheck.enums import SUBMITTABLE_CHECK_LEVELS
        from phonecheck_airflow.results_output import write_run_results

        level = SUBMITTABLE_CHECK_LEVELS[params["check_level"]]
        return write_run_results("nxcloud", params, context, check_level=level)

    prepared = prepare()
    cost = estimate(prepared)
    approval = SpendApprovalOperator(
        task_id="approve_spend", vendor="nxcloud", estimate=cost, prepared=prepared
    )
    reserved = reserve_budget(cost)
    submitted = submit(prepared, cost)
    cost >> approval >> reserved >> submitted
    settled = NxCloudSettleInDoubtOperator(
        task_id="settle_in_doubt",
        run_key=submitted["run_key"],
        poll_interval=WAIT.format("wait_poll_seconds"),
    )
    waited = NxCloudResultsSensor(
        task_id="wait_for_results",
        deferrable=True,  # Airflow's default_deferrable is False (docs/airflow.md)
        run_key=submitted["run_key"],
        poke_interval=WAIT.format("wait_poll_seconds"),
        timeout=WAIT.format("wait_timeout_s"),
    )
    settled >> waited
    reconciled = reconcile(submitted, waited.output)
    loaded = load(prepared, submitted, reconciled)
    settled = settle_spend()
    loaded >> settled
    validate(loaded)
    # not after validate: a leaf of its own, so a failed validation still fails the run
    [loaded, settled] >> write_results()


nxcloud_number_check()
