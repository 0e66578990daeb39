"""Erase phone numbers everywhere we hold them (a data subject's request to be forgotten).

**Triggered from the UI** with a params form: the numbers (one per line), the reason (the
request's reference) and *dry run* (count only). Typed results about the number are deleted;
every other place that holds it (raw inbox bodies and query strings, vendor answers, ops
tables, dq samples, the receiver's spool and quarantine, the Data Docs pages) is redacted.
``ops.erasure_log`` records what was erased where, by pseudonym. Running it again changes nothing.

The numbers you type stay in this run's configuration in the Airflow metadata database: clear
old runs with ``airflow db clean`` (docs/privacy.md), or use ``python -m phonecheck.cli erase``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from phonecheck_airflow.operators.privacy import PhoneDataErasureOperator


@dag(
    dag_id="phone_data_erasure",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["privacy"],
    default_args={"owner": "data-platform", "retries": 1, "retry_delay": pendulum.duration(seconds=30)},
    doc_md=__doc__,
    params={
        "numbers": Param(
            "",
            type="string",
            format="multiline",
            minLength=6,
            title="Numbers",
            description="One per line, E.164 preferred (+525512345678); national numbers need their country code.",
        ),
        "reason": Param(
            "",
            type="string",
            minLength=3,
            title="Reason",
            description="Why: e.g. the data subject's request reference. Stored in the erasure log.",
        ),
        "dry_run": Param(
            True,
            type="boolean",
            title="Dry run",
            description="Only count what would be erased (the default: untick to erase).",
        ),
    },
)
def phone_data_erasure():
    PhoneDataErasureOperator(
        task_id="erase",
        numbers="{{ params.numbers }}",
        reason="{{ params.reason }}",
        dry_run="{{ params.dry_run }}",
    )


phone_data_erasure()
