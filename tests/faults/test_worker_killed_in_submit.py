"""A worker killed in the middle of ``submit``, under the real scheduler and a Celery worker.

The Celery cluster of tests/integration/test_celery_multiprocess.py (api-server, scheduler,
dag-processor, triggerer, one Celery worker as separate processes). The sandbox plays the strict
profile (a batchNo sent again is charged again) and holds the answer of the first paid submit
(``slow``, applied after the batch was accepted and charged). While it holds it, the test kills
the worker's whole process group with SIGKILL: the paid call reached the vendor, its answer was
never recorded (the submission row is still ``pending``). A new worker is started; the scheduler
finds the task without heartbeat, its retry runs on the new worker and does not send the batch
again: it finds the batch settled by the evidence that arrived meanwhile, or waits for that
evidence (pushes or the query API: ``phonecheck.nxcloud.submissions``); in the runs seen so far the
pushes had already settled it. The run finishes, and the strict profile's charge ledger shows one
charge per number.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import psycopg
import pytest

from tests.integration.test_celery_multiprocess import COMPONENTS, celery_cluster, redis_broker

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

__all__ = ["celery_cluster", "redis_broker"]

DAG_ID = "nxcloud_number_check"
NUMBERS = [f"+52 55 19{i:06d}" for i in range(6)]
PHONES = {n.replace("+", "").replace(" ", "") for n in NUMBERS}
# A task whose worker died is found by its missing heartbeat: seconds here, not the default 5 min.
CLUSTER_ENV = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
}


def conf() -> dict:
    return {
        "numbers": "\n".join(NUMBERS), "default_region": "MX", "check_level": "basic", "batch_label": "kill",
        "freshness_days": 30, "budget": 50, "budget_currency": "USD", "dry_run": False,
        "wait_timeout_minutes": 2, "wait_poll_seconds": 1, "max_per_chunk": 5000,
    }  # fmt: skip


def submission_statuses(dsn: str, run_id: str) -> list[str]:
    with psycopg.connect(dsn) as db:
        return [
            r[0]
            for r in db.execute(
                "SELECT status FROM ops.number_check_submission WHERE vendor = 'nxcloud' AND run_id = %s",
                (run_id,),
            ).fetchall()
        ]


@pytest.mark.timeout(600)
def test_a_worker_killed_after_the_paid_call_is_retried_without_paying_twice(
    celery_cluster, sandbox, fresh_warehouse_dsn: str
) -> None:
    cluster, api, phases = celery_cluster
    sandbox.control.settings(profile="strict", push_delay_s=2.0)
    sandbox.control.faults({"target": "nxcloud.check", "kind": "slow", "delay_s": 90, "count": 1})
    api.login()
    api.wait_for_dag(DAG_ID, timeout=120)
    api.unpause(DAG_ID)
    run_id = api.trigger(DAG_ID, conf())

    deadline = time.monotonic() + 240
    while not sandbox.control.charges(vendor="nxcloud"):  # the vendor received and charged the batch
        assert time.monotonic() < deadline, f"no paid call reached the sandbox\n{cluster.tails()}"
        cluster.check_alive()
        time.sleep(0.2)
    assert submission_statuses(fresh_warehouse_dsn, run_id) == ["pending"]  # its answer not recorded
    worker = cluster.components["celery-worker"]
    os.killpg(worker.proc.pid, signal.SIGKILL)  # the worker and the task it runs, no clean-up
    worker.proc.wait(timeout=30)
    phases.mark("worker killed while the paid submit waited for its answer")
    queue = cluster.env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
    cluster.start("celery-worker", [a.format(queue=queue) for a in COMPONENTS["celery-worker"]])

    state, _ = api.wait_for_run(DAG_ID, run_id, timeout=420, on_poll=lambda *_: cluster.check_alive())
    phases.mark(f"run finished ({state})")
    tasks = {t["task_id"]: t for t in api.task_instances(DAG_ID, run_id)}
    assert state == "success", {k: (t["state"], t["try_number"]) for k, t in tasks.items()}
    assert tasks["submit"]["try_number"] == 2, tasks["submit"]  # the retry finished the run
    charges = Counter(c["phone"] for c in sandbox.control.charges(vendor="nxcloud"))
    assert set(charges) == PHONES and set(charges.values()) == {1}, charges  # one charge per number
    assert set(submission_statuses(fresh_warehouse_dsn, run_id)) <= {"submitted", "complete"}
    with psycopg.connect(fresh_warehouse_dsn) as db:
        loaded = db.execute(
            "SELECT count(DISTINCT t.phone) FROM telco.nxcloud_number_check t "
            "JOIN ops.number_check_submission s USING (batch_no) WHERE s.run_id = %s",
            (run_id,),
        ).fetchone()[0]
    assert loaded == len(NUMBERS)
