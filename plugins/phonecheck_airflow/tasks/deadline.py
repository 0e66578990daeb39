"""The daily reconciliation's deadline, checked by a task (``nxcloud_number_check_daily_deadline``).

The scheduled run of ``nxcloud_number_check_daily`` for vendor day D is queued when D ends
(00:00 UTC), waits a 4 h grace for late pushes and is due by 08:00 UTC. At 08:00 UTC a run of
the deadline DAG asks Airflow (through the Task SDK, no metadata-DB access) for the daily run
of D: finished successfully → nothing to say; there and not successful (still running, queued,
failed) → ``deadline_missed`` is posted to the alerts webhook and the check fails, so the miss
is red in the UI too; no run at all (DAG paused, or not scheduled yet) → nothing was due.

Why a task and not an Airflow ``DeadlineAlert``: Airflow 3.3.2's ``dag.test()`` (so ``airflow
dags test``) cannot finish a successful run of a DAG that carries one (docs/airflow.md, "Known
Airflow 3.3.2 limits"); a check task runs the same under the scheduler, ``dag.test()`` and the CLI.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

log = logging.getLogger(__name__)

DAILY_DAG_ID = "nxcloud_number_check_daily"
DUE_AT_UTC = time(8, 0)
DEADLINE_TEXT = (
    "Phone checks: the daily NXCLOUD reconciliation of {day} has not finished by {due:%H:%M} UTC "
    "(its run is {state})"
)


def watched_day(context: Any) -> datetime:
    """The logical date of the daily run due now: the UTC day before this check's own date."""
    when = context.get("logical_date") or context["dag_run"].run_after
    day = when.astimezone(UTC).date() - timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def check_daily_deadline(context: Any, *, daily_dag_id: str = DAILY_DAG_ID) -> dict[str, Any]:
    """Post ``deadline_missed`` and fail when the daily run of the watched day exists but has
    not succeeded; returns the day and what was found (small, for XCom)."""
    from phonecheck_airflow.notifiers.alerts import WebhookNotifier

    ti = context["ti"]
    day = watched_day(context)
    runs = ti.get_dr_count(dag_id=daily_dag_id, logical_dates=[day])
    succeeded = ti.get_dr_count(dag_id=daily_dag_id, logical_dates=[day], states=["success"])
    found = {"day": day.date().isoformat(), "runs": runs, "succeeded": succeeded}
    if runs == 0:
        log.info("SUMMARY deadline: no %s run for %s (paused or not scheduled): nothing was due", daily_dag_id,
                 found["day"])  # fmt: skip
        return found
    if succeeded:
        log.info("SUMMARY deadline: %s of %s finished in time", daily_dag_id, found["day"])
        return found
    text = DEADLINE_TEXT.format(day=found["day"], due=DUE_AT_UTC, state="not successful")
    WebhookNotifier(text=text, event="deadline_missed").notify(context)
    raise AirflowFailException(text)
