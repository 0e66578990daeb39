"""Airflow's distributed engine on one machine: CeleryExecutor, every component its own process.

What the docker-compose deployment runs, without Docker: PostgreSQL metadata (a throw-away
database on the warehouse server), Redis as the Celery broker (127.0.0.1:6379), and
``airflow api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and ``celery worker``
as separate processes sharing one environment (the same JWT secret, fernet key and
Execution API URL, as docs/airflow.md requires). A DAG is triggered through the REST API
the way the UI's params form does it and must finish with success, its tasks executed by the
Celery worker.

Every process runs in its own process group, stopped at teardown even when the test fails;
per-phase timings are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from phonecheck import warehouse
from phonecheck_dev import local
from tests.fixtures.ports import reserve_port
from tests.integration.ui_trigger import (
    Phases,
    PushesHeldUntilTheWaitDefers,
    assert_number_check_done,
    trigger_like_the_ui,
)

pytestmark = pytest.mark.integration

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
COMPONENTS = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--port", "{api_port}"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer"],
    "celery-worker": ["celery", "worker", "--queues", "{queue}", "--concurrency", "2"],
}


def _redis_unavailable_reason(host: str = REDIS_HOST, port: int = REDIS_PORT) -> str | None:
    """None when a Redis server answers PING on host:port, else why not (the skip reason)."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            answer = sock.recv(64)
    except OSError as exc:
        return f"no Redis server on {host}:{port} ({exc}); the Celery test needs one as its broker"
    if not answer.startswith(b"+PONG"):
        return f"{host}:{port} did not answer PING like Redis: {answer[:40]!r}"
    return None


@dataclass
class Component:
    name: str
    proc: subprocess.Popen
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class AirflowCluster:
    """Airflow components as separate processes with one shared environment."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.components: dict[str, Component] = {}

    def airflow(self, *args: str, timeout: float = 180) -> str:
        out = subprocess.run(
            [str(local.venv_bin() / "airflow"), *args],
            env=self.env,
            cwd=local.REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
        if out.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
            )
        return out.stdout

    def start(self, name: str, args: list[str]) -> Component:
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [str(local.venv_bin() / "airflow"), *args],
                env=self.env,
                cwd=local.REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: teardown reaches its children
            )
        self.components[name] = Component(name, proc, log_path)
        return self.components[name]

    def check_alive(self) -> None:
        dead = {n: c.proc.returncode for n, c in self.components.items() if c.proc.poll() is not None}
        if dead:
            raise AssertionError(f"component(s) exited early: {dead}\n{self.tails()}")

    def tails(self, chars: int = 2500) -> str:
        return "\n".join(f"----- {n} -----\n{c.output()[-chars:]}" for n, c in self.components.items())

    def stop(self) -> None:
        for component in self.components.values():  # signal all first: they stop in parallel
            with contextlib.suppress(ProcessLookupError):
                os.killpg(component.proc.pid, 15)
        for component in self.components.values():
            local.stop_process_group(component.proc, grace_s=20)
        leftovers = {n: local.group_members(c.proc.pid) for n, c in self.components.items()}
        assert not any(leftovers.values()), f"processes left behind: {leftovers}"


def _forget_queue(broker_url: str, queue: str) -> None:
    """Remove the keys Celery (kombu) kept for this run's queue from the shared Redis."""
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        keys = [key for key in client.scan_iter(match=f"*{queue}*", count=1000)]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_broker() -> str:
    reason = _redis_unavailable_reason()
    if reason:
        pytest.skip(reason)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture
def celery_cluster(
    request, redis_broker: str, warehouse_server_dsn: str, fresh_warehouse_dsn: str, sandbox, tmp_path: Path
) -> Iterator[tuple[AirflowCluster, local.AirflowApi, Phases]]:
    """The cluster; a test module may add Airflow settings with a module-level ``CLUSTER_ENV``."""
    phases = Phases()
    home = tmp_path / "airflow-home"
    home.mkdir()
    api_port = reserve_port()
    token = "tok-" + secrets.token_urlsafe(16)
    queue = f"phonecheck-test-{secrets.token_hex(4)}"  # isolates this run on a shared Redis
    password = secrets.token_urlsafe(12)
    password_file = home / "passwords.json"
    password_file.write_text(json.dumps({"admin": password}))
    from cryptography.fernet import Fernet

    with warehouse.throwaway_database(warehouse_server_dsn, prefix="phonecheck_airflow_meta") as meta_dsn:
        settings = local.LocalSettings(
            home=home,
            warehouse_dsn=fresh_warehouse_dsn,
            webhook_token=token,
            api_port=api_port,
            metadata_url=local.sqlalchemy_url(meta_dsn, "postgresql+psycopg"),
        )
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        nxcloud = json.loads(sandbox.nxcloud_connection_json())
        nxcloud["extra"]["query_min_interval_s"] = 0  # the sandbox does not rate-limit by default
        connections = {
            "AIRFLOW_CONN_NXCLOUD_DEFAULT": json.dumps(nxcloud),
            "AIRFLOW_CONN_ACCUAUTH_DEFAULT": sandbox.accuauth_connection_json(),
        }
        # The receiver is the api-server's plugin mount: drUrl = TELCO_WEBHOOK_BASE_URL + token.
        env = local.airflow_env(settings, connections=connections, base_env=base_env)
        env.update(
            {
                # the test server is shared with other tests: keep each process's pool small
                "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "2",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "4",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": redis_broker,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + settings.metadata_url,
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
                # identical in every process: the api-server signs task tokens, workers present them
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(reserve_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(reserve_port()),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
                **getattr(request.module, "CLUSTER_ENV", {}),
            }
        )
        cluster = AirflowCluster(env, tmp_path)
        api = local.AirflowApi(settings.api_base_url, "admin", password)
        try:
            cluster.airflow("db", "migrate")
            phases.mark("airflow db migrate (PostgreSQL metadata)")
            for name, args in COMPONENTS.items():
                cluster.start(name, [a.format(api_port=api_port, queue=queue) for a in args])
            local.wait_for_http(
                f"{settings.api_base_url}/api/v2/version",
                120,
                cluster.components["api-server"].proc,
                "api-server",
            )
            cluster.check_alive()
            phases.mark("5 components started, api-server answering")
            yield cluster, api, phases
        finally:
            api.close()
            try:
                cluster.stop()
            finally:
                _forget_queue(redis_broker, queue)
                phases.mark("stopped every process")
                print(f"[phases] {phases.report()}", flush=True)


def test_without_redis_the_skip_reason_says_so():
    port = reserve_port()  # reserved, and nothing listens there
    reason = _redis_unavailable_reason("127.0.0.1", port)
    assert reason is not None and f"no Redis server on 127.0.0.1:{port}" in reason


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_celery_executor_runs_nxcloud_number_check_triggered_like_the_ui(
    celery_cluster, sandbox, fresh_warehouse_dsn: str
) -> None:
    cluster, api, phases = celery_cluster
    pushes = PushesHeldUntilTheWaitDefers(sandbox.base_url)

    def on_poll(state: str, seen: dict[str, set[str]]) -> None:
        cluster.check_alive()
        pushes(state, seen)

    try:
        run = trigger_like_the_ui(
            api, "celery", timeout=150, log_dir=Path(cluster.env["AIRFLOW_HOME"]) / "logs", on_poll=on_poll
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{cluster.tails()}") from None
    finally:
        pushes.release()
    phases.mark(f"nxcloud_number_check run finished ({run.state})")
    assert_number_check_done(run, fresh_warehouse_dsn, context=cluster.tails())

    # Executed by the Celery worker, not by a local executor inside the scheduler: every task
    # went through this run's queue, and the worker's log shows the workloads it ran.
    queue = cluster.env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
    assert {t["queue"] for t in run.tasks} == {queue}, [(t["task_id"], t["queue"]) for t in run.tasks]
    worker_log = cluster.components["celery-worker"].output()
    assert worker_log.count("execute_workload") >= len(run.tasks), worker_log[-3000:]
