"""``make compose-test``: docker-compose.yaml run for real (docs/deployment.md, "Running the
stack for real").

Builds the stand-in base images and the project image (docker/Dockerfile, unchanged), brings the
whole stack up with the values of ``.env.example`` (every placeholder replaced by a generated
secret, as a user does), on the host network (docker/standin/docker-compose.hostnet.yaml), waits
for every healthcheck, and then, through the api-server's REST API with FAB logins:
1. ``warehouse_migrate`` runs and succeeds;
2. the requester triggers ``nxcloud_number_check`` against the vendor sandbox running beside the
   stack; ``approve_spend`` waits; the approver approves; the run succeeds with a deferral through
   the triggerer, and the valid numbers are in the compose warehouse, the invalid ones rejected;
3. with ``--scale airflow-worker=2`` and the first worker stopped, a run is executed by the
   second worker.
Everything is removed at the end (containers, volumes, images unless ``--keep-images``) and an
engine this started is stopped.

    python -m tests.deploy.compose_run [--keep-images] [--keep-stack]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import yaml

from phonecheck_dev.local import AirflowApi
from tests.deploy.compose_engine import REPO_ROOT, Engine, Images, ensure_tools, log, run
from tests.fixtures.sandbox import TEST_VENDOR_MINUTE_S, Sandbox, start_sandbox, stop_sandbox
from tests.integration.ui_trigger import (
    TARGET_DAG,
    Phases,
    PushesHeldUntilTheWaitDefers,
    UiRun,
    assert_number_check_done,
    ui_form_conf,
)

PROJECT = "phonecheck-compose-test"
OVERRIDE = "docker/standin/docker-compose.hostnet.yaml"
PROJECT_IMAGE = "telco-phonecheck-airflow:compose-test"
# The override's ports (its defaults), all on 127.0.0.1, away from 5432/6379/8080/8793/8794/8974.
PORTS = {
    "STANDIN_POSTGRES_PORT": 15432,
    "STANDIN_REDIS_PORT": 16379,
    "STANDIN_API_PORT": 18080,
    "STANDIN_RECEIVER_PORT": 18090,
    "STANDIN_SCHEDULER_HEALTH_PORT": 18974,
    "STANDIN_WORKER_LOG_PORT": 18793,
    "STANDIN_TRIGGER_LOG_PORT": 18794,
}
SERVICES = (
    "postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
    "airflow-triggerer", "airflow-worker", "receiver",
)  # fmt: skip
ASSIGNMENT_RE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def env_file_values(sandbox: Sandbox) -> dict[str, str]:
    """``.env.example`` with every placeholder replaced, the way its comments tell a user to."""
    values: dict[str, str] = {}
    for line in (REPO_ROOT / ".env.example").read_text().splitlines():
        if m := ASSIGNMENT_RE.match(line):
            values[m.group(1)] = m.group(2)
    for name, value in values.items():
        if "change-me" in value:
            values[name] = secrets.token_hex(24)
    values.update(
        {
            "PHONECHECK_IMAGE": PROJECT_IMAGE,
            "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "POSTGRES_PUBLISH_PORT": str(PORTS["STANDIN_POSTGRES_PORT"]),
            "AIRFLOW_API_PUBLISH_PORT": str(PORTS["STANDIN_API_PORT"]),
            "RECEIVER_PUBLISH_PORT": str(PORTS["STANDIN_RECEIVER_PORT"]),
            # the sandbox pushes to the receiver service, both on this machine
            "TELCO_WEBHOOK_BASE_URL": f"http://127.0.0.1:{PORTS['STANDIN_RECEIVER_PORT']}/telco-webhooks",
            "AIRFLOW_CONN_NXCLOUD_DEFAULT": sandbox.nxcloud_connection_json(),
            "AIRFLOW_CONN_ACCUAUTH_DEFAULT": sandbox.accuauth_connection_json(),
            **{name: str(port) for name, port in PORTS.items()},
        }
    )
    return values


class Stack:
    """``docker-compose -p PROJECT -f RENDERED ...``: the main file and the override merged by
    ``docker-compose config`` with the env file, minus the published ports. Compose 1.29 refuses
    ``ports`` on the host network ("network_mode is incompatible with port_bindings") and an
    override cannot remove a list of the main file (Compose v2's ``!reset`` can)."""

    def __init__(self, values: dict[str, str], workdir: Path) -> None:
        self.values = values
        env_path = workdir / "compose.env"
        # single quotes: compose 1.29 keeps JSON values verbatim (as in .env.example)
        env_path.write_text("".join(f"{k}='{v}'\n" if "{" in v else f"{k}={v}\n" for k, v in values.items()))
        env_path.chmod(0o600)
        merged = run(
            "docker-compose", "-f", "docker-compose.yaml", "-f", OVERRIDE, "--env-file", str(env_path), "config",
            cwd=REPO_ROOT, timeout=120,
        ).stdout  # fmt: skip
        env_path.unlink()
        config = yaml.safe_load(merged)
        for service in config["services"].values():
            if service.get("network_mode") == "host":
                service.pop("ports", None)
                service.pop("expose", None)
        self.rendered = workdir / "compose.rendered.yaml"
        self.rendered.write_text(yaml.safe_dump(config, sort_keys=False))
        self.rendered.chmod(0o600)  # it holds the generated secrets

    def compose(self, *args: str, timeout: float = 600, check: bool = True):
        base = ("docker-compose", "-p", PROJECT, "-f", str(self.rendered))
        return run(*base, *args, cwd=REPO_ROOT, timeout=timeout, check=check)

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).stdout.split()

    def state(self, container: str) -> dict:
        return json.loads(run("docker", "inspect", "--format", "{{json .State}}", container).stdout)

    def wait_healthy(self, services: tuple[str, ...], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            pending = {}
            for service in services:
                ids = self.containers(service)
                states = [self.state(c) for c in ids]
                health = [s.get("Health", {}).get("Status", s["Status"]) for s in states]
                if not ids or any(h != "healthy" for h in health):
                    pending[service] = health
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not healthy after {timeout:.0f} s: {pending}\n{self.logs()}")
            time.sleep(3)

    def logs(self, tail: int = 40) -> str:
        """The last lines of every service and the last healthcheck answers of unhealthy ones."""
        parts = []
        for service in ("airflow-init", *SERVICES):
            for container in self.containers(service):
                state = self.state(container)
                out = run("docker", "logs", f"--tail={tail}", container, check=False, timeout=60)
                parts.append(f"--- {service} {container[:12]} {state['Status']} exit={state['ExitCode']}")
                parts.append((out.stdout + out.stderr)[-4000:])
                health = state.get("Health") or {}
                if health.get("Status") not in (None, "healthy"):
                    parts.extend(
                        f"healthcheck: {h.get('Output', '')[-500:]}" for h in health.get("Log", [])[-2:]
                    )
        return "\n".join(parts)


def login(values: dict[str, str], who: str) -> AirflowApi:
    api = AirflowApi(
        f"http://127.0.0.1:{PORTS['STANDIN_API_PORT']}",
        values[f"AIRFLOW_{who.upper()}_USERNAME"],
        values[f"AIRFLOW_{who.upper()}_PASSWORD"],
        timeout=60,
    )
    api.login()
    return api


def run_to_end(api: AirflowApi, dag_id: str, timeout: float, stack: Stack) -> str:
    api.wait_for_dag(dag_id, timeout=180)
    api.unpause(dag_id)
    run_id = api.trigger(dag_id, {})
    state, seen = api.wait_for_run(dag_id, run_id, timeout=timeout, interval=5)
    if state != "success":
        raise AssertionError(f"{dag_id} {run_id}: {state} {seen}\n{stack.logs()}")
    return run_id


def approve_number_check(
    admin: AirflowApi,
    requester: AirflowApi,
    approver: AirflowApi,
    stack: Stack,
    pushes: PushesHeldUntilTheWaitDefers,
) -> UiRun:
    """The requester triggers over the auto-approve threshold; the approver answers Approve; the
    held pushes go once the wait has deferred."""
    admin.wait_for_dag(TARGET_DAG, timeout=180)
    admin.unpause(TARGET_DAG)
    run_id = requester.trigger(TARGET_DAG, {**ui_form_conf("compose"), "approval_threshold": 0})
    hitl = f"/api/v2/dags/{TARGET_DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/approve_spend/-1/hitlDetails"
    ti_path = hitl.rsplit("/-1/", 1)[0]
    deadline = time.monotonic() + 300
    while (state := admin.http.get(ti_path).json().get("state")) != "awaiting_input":
        if time.monotonic() > deadline or state in ("failed", "upstream_failed", "skipped"):
            raise AssertionError(f"approve_spend is {state!r}, not awaiting input\n{stack.logs()}")
        time.sleep(5)
    refused = requester.http.patch(hitl, json={"chosen_options": ["Approve"]})
    assert refused.status_code == 403, f"the requester may not approve: {refused.status_code} {refused.text}"
    answered = approver.http.patch(hitl, json={"chosen_options": ["Approve"]})
    assert answered.status_code == 200, f"approver's answer: {answered.status_code} {answered.text}"
    log(f"approve_spend answered by {answered.json()['responded_by']}")
    try:
        state, seen = admin.wait_for_run(TARGET_DAG, run_id, timeout=600, on_poll=pushes, interval=5)
    finally:
        pushes.release()
    tasks = admin.task_instances(TARGET_DAG, run_id)
    wait_ti = next(t for t in tasks if t["task_id"] == "wait_for_results")
    tries = range(1, (wait_ti["try_number"] or 0) + 1)
    wait_logs = {n: admin.task_log(TARGET_DAG, run_id, "wait_for_results", n) for n in tries}
    return UiRun(run_id, state, seen, tasks, wait_logs)


def second_worker_takes_tasks(stack: Stack, admin: AirflowApi) -> None:
    """Scale to two workers, stop the first: a run still completes, so the second took it."""
    stack.compose("up", "-d", "--no-build", "--scale", "airflow-worker=2", "airflow-worker", timeout=600)
    stack.wait_healthy(("airflow-worker",), timeout=300)
    workers = stack.containers("airflow-worker")
    assert len(workers) == 2, workers
    first, second = sorted(workers, key=lambda c: stack.state(c)["StartedAt"])
    run("docker", "stop", "--time", "30", first, timeout=120)
    run_id = run_to_end(admin, "warehouse_migrate", timeout=600, stack=stack)
    node = run("docker", "exec", second, "cat", "/tmp/celery-node-name").stdout.strip()
    worker_log = (
        run("docker", "logs", second, timeout=60).stdout + run("docker", "logs", second, timeout=60).stderr
    )
    assert run_id in worker_log or "execute_workload" in worker_log, worker_log[-3000:]
    log(f"second worker ({node}, container {second[:12]}) ran warehouse_migrate {run_id}; first was stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-images", action="store_true", help="keep the built images (faster re-runs)")
    parser.add_argument("--keep-stack", action="store_true", help="leave the stack running (debugging)")
    args = parser.parse_args(argv)
    phases = Phases()
    ensure_tools()
    phases.mark("tools")
    engine = Engine.ensure()
    images = Images(PROJECT_IMAGE)
    sandbox = stack = None
    workdir = Path(tempfile.mkdtemp(prefix="phonecheck-compose-"))
    try:
        images.build()
        phases.mark("images built")
        sandbox = start_sandbox("--vendor-minute-seconds", str(TEST_VENDOR_MINUTE_S))
        # The first poke must find nothing so that the wait is deferred to the triggerer: the
        # pushes are held until wait_for_results is seen deferred (approve_number_check).
        pushes = PushesHeldUntilTheWaitDefers(sandbox.base_url)
        values = env_file_values(sandbox)
        stack = Stack(values, workdir)
        stack.compose(
            "down", "-v", "--remove-orphans", timeout=300, check=False
        )  # an earlier run's leftovers
        stack.compose("up", "-d", "--no-build", *SERVICES, timeout=1500)
        stack.wait_healthy(SERVICES, timeout=1200)
        init = stack.state(stack.containers("airflow-init")[0])
        assert init["Status"] == "exited" and init["ExitCode"] == 0, init
        phases.mark("stack up, every healthcheck green")

        admin, requester, approver = (login(values, who) for who in ("admin", "requester", "approver"))
        run_to_end(admin, "warehouse_migrate", timeout=600, stack=stack)
        phases.mark("warehouse_migrate succeeded")
        ui_run = approve_number_check(admin, requester, approver, stack, pushes)
        warehouse = (
            f"postgresql://{values['WAREHOUSE_DB_USER']}:{values['WAREHOUSE_DB_PASSWORD']}"
            f"@127.0.0.1:{PORTS['STANDIN_POSTGRES_PORT']}/{values['WAREHOUSE_DB_NAME']}"
        )
        assert_number_check_done(ui_run, warehouse, context=stack.logs())
        with psycopg.connect(warehouse) as db:
            decided = db.execute(
                "SELECT decision, decided_by_name FROM ops.spend_approval WHERE run_id = %s", (ui_run.run_id,)
            ).fetchone()
        assert decided == ("approved", values["AIRFLOW_APPROVER_USERNAME"]), decided
        phases.mark("nxcloud_number_check approved by the approver, results in the compose warehouse")
        second_worker_takes_tasks(stack, admin)
        phases.mark("second Celery worker took a run")
        log(f"PASSED: {phases.report()}")
        return 0
    except Exception:
        if stack is not None:
            print(stack.logs(tail=80), file=sys.stderr)
        raise
    finally:
        try:
            if stack is not None and not args.keep_stack:
                stack.compose("down", "-v", "--remove-orphans", timeout=300, check=False)
                phases.mark("stack down, volumes removed")
            if sandbox is not None:
                stop_sandbox(sandbox)
            if not args.keep_images and not args.keep_stack:
                images.remove()
        finally:
            if args.keep_stack:
                log(f"stack left running: docker-compose -p {PROJECT} -f {workdir}/compose.rendered.yaml ...")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
            engine.stop()
            print(f"[phases] {phases.report()}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
