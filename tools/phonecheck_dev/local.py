"""Local Airflow runtime: ``make airflow`` (= ``python -m phonecheck_dev.local standalone``).

Starts, in order, everything ``airflow standalone`` needs to run the project's DAGs on one
machine, and stops what it started on Ctrl-C / SIGTERM:

1. the warehouse: ``WAREHOUSE_DSN`` when set, else the embedded PostgreSQL under
   ``.local/pgdata``; pending migrations are applied;
2. the vendor sandbox (``python -m phonecheck.sandbox``) on localhost, unless both vendor
   connections are given in the environment (real credentials);
3. ``airflow standalone`` (api-server, scheduler, dag-processor, triggerer; LocalExecutor,
   SimpleAuthManager) with ``AIRFLOW_HOME=.local/airflow``, ``dags/`` as the
   DAG folder and the contract connections (``warehouse``, ``nxcloud_default``,
   ``accuauth_default``) as ``AIRFLOW_CONN_*`` JSON; the webhook receiver is served by the
   api-server under ``/telco-webhooks`` through the installed distribution's plugin entry
   point.

Airflow's metadata lives in a database of its own on the warehouse's server
(:func:`metadata_database`), not in SQLite: four components, the executor's workers and the
user's CLI all write to it at once, and SQLite's single writer lock made ``airflow backfill
create`` fail with ``database is locked`` while the scheduler was busy. When the warehouse user
may not create databases, the launcher says so and falls back to SQLite under ``AIRFLOW_HOME``.

Then it prints the UI URL and the admin login. The plugins folder is an empty directory on
purpose: the receiver plugin is registered by the ``airflow.plugins`` entry point, and pointing
``plugins_folder`` at the repository's ``plugins/`` would import the package a second time
under another name.

The functions that build the environment (:func:`airflow_env`, :func:`sandbox_connections`)
are reused by the tests that start Airflow components as separate processes.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from phonecheck import warehouse

REPO_ROOT = warehouse.PROJECT_ROOT
DAGS_FOLDER = REPO_ROOT / "dags"
RECEIVER_PREFIX = "/telco-webhooks"
DEFAULT_API_PORT = 8080
DEFAULT_SANDBOX_PORT = 8089
PASSWORD_FILE_NAME = "simple_auth_manager_passwords.json.generated"
LOCAL_USERS = "admin:admin,approver:user,requester:user"
# Vendor-specific secret names Airflow should mask in task logs, on top of its own list.
SENSITIVE_NAMES = "accessKey,accessSecret,appkey,sign,X-DF-API-SECRET"
CONNECTION_ENV = {
    "warehouse": "AIRFLOW_CONN_WAREHOUSE",
    "nxcloud_default": "AIRFLOW_CONN_NXCLOUD_DEFAULT",
    "accuauth_default": "AIRFLOW_CONN_ACCUAUTH_DEFAULT",
}


def airflow_home() -> Path:
    """``.local/airflow`` (or under ``PHONECHECK_LOCAL_DIR``): metadata DB, logs, generated login."""
    home = warehouse.local_dir() / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    return home


def venv_bin() -> Path:
    """The directory of this interpreter's ``airflow`` script (``.venv/bin``)."""
    return Path(sys.executable).parent


def sandbox_connections(sandbox_url: str) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` JSON for both vendors pointing at a running sandbox.

    The credentials are the sandbox's defaults (:class:`phonecheck.sandbox.config.SandboxConfig`):
    they are not secrets, the sandbox prints them at start.
    """
    from phonecheck.sandbox.config import SandboxConfig

    cfg = SandboxConfig()
    base = sandbox_url.rstrip("/")
    nxcloud = {
        "conn_type": "nxcloud",
        "host": f"{base}/nxcloud",
        "login": cfg.nxcloud_access_key,
        "password": cfg.nxcloud_access_secret,
        # sign_algorithm (md5) and query_timezone (UTC) are left at their defaults: Airflow hands
        # every extra value to its secrets masker, which warns about any value under 5 characters
        # ("Skipping masking for a secret as it's too short") before it looks at the key's name.
        "extra": {"appkey": cfg.nxcloud_appkey, "query_min_interval_s": cfg.query_min_interval_s},
    }
    accuauth = {
        "conn_type": "accuauth",
        "host": f"{base}/accuauth",
        "login": cfg.accuauth_api_id,
        "password": cfg.accuauth_api_secret,
    }
    return {
        CONNECTION_ENV["nxcloud_default"]: json.dumps(nxcloud),
        CONNECTION_ENV["accuauth_default"]: json.dumps(accuauth),
    }


def receiver_url(api_base_url: str, path: str, token: str) -> str:
    """A webhook URL served by the api-server's receiver mount, e.g. ``/nxcloud/voice/{token}``."""
    return api_base_url.rstrip("/") + RECEIVER_PREFIX + path.format(token=token)


def sqlalchemy_url(dsn: str, driver: str = "postgresql+psycopg2") -> str:
    """A libpq URI as a SQLAlchemy URL; a unix-socket directory goes in the query string.

    ``psycopg2`` is the driver Airflow's metadata engine is tested with.
    """
    parts = warehouse.parse_dsn(dsn)
    auth = quote(parts.user or "postgres", safe="")
    if parts.password:
        auth += ":" + quote(parts.password, safe="")
    if parts.host and parts.host.startswith("/"):
        port = f"&port={parts.port}" if parts.port else ""
        return f"{driver}://{auth}@/{parts.dbname}?host={quote(parts.host, safe='/')}{port}"
    return f"{driver}://{auth}@{parts.host or 'localhost'}:{parts.port or 5432}/{parts.dbname}"


def metadata_database_name(home: Path) -> str:
    """The metadata database of one ``AIRFLOW_HOME``: ``phonecheck_airflow_<10 hex>``.

    Derived from the home's path, so ``make airflow`` and ``eval "$(make -s env)"`` agree without
    sharing state, and two checkouts (or a test's temporary home) never share a metadata DB.
    """
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:10]
    return f"phonecheck_airflow_{digest}"


def metadata_database(home: Path, warehouse_dsn: str) -> str | None:
    """Create (once) the home's metadata database on the warehouse's server; its SQLAlchemy URL.

    ``None`` when the warehouse user may not create a database (a managed warehouse with a
    least-privilege login): the caller then keeps SQLite under ``home``.
    """
    name = metadata_database_name(home)
    try:
        with psycopg.connect(warehouse_dsn, autocommit=True, connect_timeout=10) as admin:
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.errors.InsufficientPrivilege:
        return None
    except psycopg.errors.DuplicateDatabase:
        pass  # `make env` in another shell created it between the check and the CREATE
    return sqlalchemy_url(warehouse.with_database(warehouse_dsn, name))


def drop_metadata_database(home: Path, warehouse_dsn: str) -> bool:
    """Drop the home's metadata database (``make clean-local``); ``True`` when there was one."""
    name = metadata_database_name(home)
    with psycopg.connect(warehouse_dsn, autocommit=True, connect_timeout=10) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    return True


@dataclass(frozen=True)
class LocalSettings:
    """What the local Airflow processes must agree on.

    ``metadata_url``: Airflow's metadata DB (SQLAlchemy URL); ``None`` → SQLite under ``home``
    (enough for ``dag.test()`` in one process, as ``make demo`` runs it).
    """

    home: Path
    warehouse_dsn: str
    webhook_token: str
    api_host: str = "127.0.0.1"
    api_port: int = DEFAULT_API_PORT
    metadata_url: str | None = None

    @property
    def api_base_url(self) -> str:
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "") else self.api_host  # noqa: S104
        return f"http://{host}:{self.api_port}"


def airflow_env(
    settings: LocalSettings,
    connections: Mapping[str, str],
    base_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for every local Airflow process (standalone or its components).

    ``connections``: vendor ``AIRFLOW_CONN_*`` values to set unless ``base_env`` already has
    one (a user's real vendor credentials win over the sandbox's). Paths, the metadata DB and the
    ports are always set here: they are what makes the processes agree with each other.
    """
    env = dict(os.environ if base_env is None else base_env)
    home = settings.home
    plugins = home / "plugins"  # empty on purpose: see the module docstring
    plugins.mkdir(parents=True, exist_ok=True)
    env["PATH"] = f"{venv_bin()}{os.pathsep}{env.get('PATH', '')}"  # standalone runs `airflow ...`
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": settings.metadata_url
            # SQLite's default 5 s lock wait is too short when the UI writes twice at once (unpause +
            # trigger) on a busy laptop: the unpause then fails with a 500 and the run stays queued.
            or f"sqlite:///{home / 'airflow.db'}?timeout=30",
            "AIRFLOW__API__HOST": settings.api_host,
            "AIRFLOW__API__PORT": str(settings.api_port),
            # Tasks reach the api-server's Execution API; the default assumes port 8080.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.api_base_url}/execution/",
            "AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES": SENSITIVE_NAMES,
            # The receiver mounted in the api-server (and the standalone one) read these.
            "WAREHOUSE_DSN": settings.warehouse_dsn,
            "TELCO_WEBHOOK_TOKEN": settings.webhook_token,
            "RECEIVER_SPOOL_DIR": str(home / "receiver-spool"),
            "AIRFLOW__CORE__FERNET_KEY": fernet_key(home),
            "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret(home),
        }
    )
    # Where vendors push results (drUrl / callback): the receiver mounted in the api-server. Real
    # vendors cannot reach localhost: set TELCO_WEBHOOK_BASE_URL to a public URL (tunnel) instead.
    env.setdefault("TELCO_WEBHOOK_BASE_URL", settings.api_base_url + RECEIVER_PREFIX)
    # Spend approvals (docs/operations.md): an admin, an approver, and a requester who may trigger
    # runs but not approve spending. SimpleAuthManager generates their passwords into the file below.
    env.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", LOCAL_USERS)
    env.setdefault("PHONECHECK_SPEND_APPROVERS", "approver")
    # A laptop does not need 32 LocalExecutor worker processes; the user's value wins.
    env.setdefault("AIRFLOW__CORE__PARALLELISM", "8")
    if settings.metadata_url:
        # Each component keeps its own pool on the warehouse's server (100 connections by default,
        # shared with the warehouse): Airflow's default 5 + 10 per process is more than one laptop needs.
        env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE", "3")
        env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW", "5")
    # One warehouse for the receiver (WAREHOUSE_DSN) and the tasks (the `warehouse` connection).
    env[CONNECTION_ENV["warehouse"]] = warehouse.airflow_connection_json(settings.warehouse_dsn)
    for name, value in connections.items():
        env.setdefault(name, value)
    # The test harness's unit-test switch would change Airflow's behaviour in real processes.
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    return env


def _home_secret(home: Path, name: str, make) -> str:
    """A value generated once and kept in ``$AIRFLOW_HOME/<name>`` (0600): stable across restarts."""
    path = home / name
    if path.exists():
        return path.read_text().strip()
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def fernet_key(home: Path) -> str:
    """``AIRFLOW__CORE__FERNET_KEY`` if set, else one kept in ``$AIRFLOW_HOME``: connections and
    variables stored in the local metadata DB are encrypted (and Airflow stops warning)."""
    from cryptography.fernet import Fernet

    return os.environ.get("AIRFLOW__CORE__FERNET_KEY") or _home_secret(
        home, "fernet_key", lambda: Fernet.generate_key().decode()
    )


def jwt_secret(home: Path) -> str:
    """The api-server's token signing secret for local runs: 64 random bytes (Airflow's own
    default is shorter than PyJWT wants for HS512 and says so), kept in ``$AIRFLOW_HOME``."""
    return os.environ.get("AIRFLOW__API_AUTH__JWT_SECRET") or _home_secret(
        home, "jwt_secret", lambda: secrets.token_urlsafe(64)
    )


def webhook_token(home: Path) -> str:
    """``TELCO_WEBHOOK_TOKEN`` if set, else a random token kept in ``$AIRFLOW_HOME`` (0600) so
    the webhook URLs stay the same across restarts."""
    configured = os.environ.get("TELCO_WEBHOOK_TOKEN")
    if configured:
        return configured
    path = home / "webhook_token"
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token)
    return token


def admin_password(home: Path, username: str = "admin") -> str | None:
    """The password SimpleAuthManager generated for ``username``, once it exists."""
    path = home / PASSWORD_FILE_NAME
    try:
        return json.loads(path.read_text()).get(username)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for local servers and tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host if host not in ("0.0.0.0", "") else "127.0.0.1", port)) == 0  # noqa: S104


def wait_for_http(url: str, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    """Poll ``url`` until it answers 200; fail early when ``proc`` exits."""
    import httpx

    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what or url}: process exited with {proc.returncode} before it was ready")
        try:
            last = httpx.get(url, timeout=2)
            if last.status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.3)
    raise TimeoutError(f"{what or url} not ready after {timeout:.0f} s (last: {last!r})")


def stop_process_group(
    proc: subprocess.Popen, first_signal: int = signal.SIGTERM, grace_s: float = 30, leader_only: bool = False
) -> None:
    """Stop a child started with ``start_new_session=True`` and everything it spawned.

    ``first_signal`` goes to the group (or only to the leader with ``leader_only``, for a
    supervisor that stops its own children, like ``airflow standalone``); whatever still runs
    after ``grace_s`` gets SIGTERM, then SIGKILL (the leader may be gone while its children
    still run in its group).
    """
    steps = [(first_signal, not leader_only, grace_s), (signal.SIGTERM, True, 10), (signal.SIGKILL, True, 5)]
    for sig, whole_group, wait_s in steps:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if whole_group:
                os.killpg(proc.pid, sig)
            elif proc.poll() is None:
                proc.send_signal(sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc.poll() is not None and not group_members(proc.pid):
                return
            time.sleep(0.2)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may contain spaces, split after the last ')'
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def start_sandbox(port: int, log_path: Path, voice_dr_url: str, pns_push_url: str) -> subprocess.Popen:
    """``python -m phonecheck.sandbox`` in its own process group, output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "phonecheck.sandbox",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--voice-dr-url",
                voice_dr_url,
                "--pns-push-url",
                pns_push_url,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    return proc


class AirflowApi:
    """The REST calls the UI makes to trigger a DAG, for scripts and tests.

    SimpleAuthManager: ``POST /auth/token`` with the admin login returns a JWT; then
    ``PATCH /api/v2/dags/{id}`` unpauses and ``POST /api/v2/dags/{id}/dagRuns`` with
    ``{"logical_date": null, "conf": {...params...}}`` triggers, like the params form does.
    """

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self._login = {"username": username, "password": password}
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def login(self) -> None:
        answer = self.http.post("/auth/token", json=self._login)
        answer.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def _call(self, method: str, path: str, **kwargs) -> dict:
        answer = self.http.request(method, path, **kwargs)
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {answer.status_code}: {answer.text[:500]}")
        return answer.json()

    def wait_for_dag(self, dag_id: str, timeout: float) -> dict:
        """Wait until the dag-processor has registered ``dag_id`` (404 before that)."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.http.get(f"/api/v2/dags/{dag_id}")
            if answer.status_code == 200:
                return answer.json()
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG {dag_id} not registered after {timeout:.0f} s: {answer.status_code}")
            time.sleep(0.5)

    def unpause(self, dag_id: str) -> None:
        self._call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict) -> str:
        run = self._call("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return run["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        from urllib.parse import quote

        return self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        from urllib.parse import quote

        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        return self._call("GET", path, params={"limit": 1000})["task_instances"]

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> list[dict]:
        """The structured log of one try (what the UI's log view shows), one dict per line."""
        from urllib.parse import quote

        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/logs/{try_number}"
        content = self._call("GET", path, params={"map_index": map_index, "full_content": True})["content"]
        return [line if isinstance(line, dict) else {"event": str(line)} for line in content]

    def wait_for_run(
        self, dag_id: str, run_id: str, timeout: float, on_poll=None, interval: float = 1.0
    ) -> tuple[str, dict[str, set[str]]]:
        """Poll until the run finishes; return its state and every state seen per task."""
        seen: dict[str, set[str]] = {}
        deadline = time.monotonic() + timeout
        while True:
            state = self.dag_run(dag_id, run_id)["state"]
            for ti in self.task_instances(dag_id, run_id):
                seen.setdefault(ti["task_id"], set()).add(ti["state"] or "none")
            if on_poll is not None:
                on_poll(state, seen)
            if state in ("success", "failed"):
                return state, seen
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} still {state} after {timeout:.0f} s; tasks: {seen}")
            time.sleep(interval)


class _Stop(Exception):
    """Raised by the signal handler to leave the wait loop."""


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    def handler(signum, _frame):
        raise _Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def local_metadata_url(home: Path, warehouse_dsn: str) -> str | None:
    """:func:`metadata_database`, saying where the metadata lives (on stderr: ``make env``'s
    stdout is only ``export`` lines)."""
    url = metadata_database(home, warehouse_dsn)
    where = (
        f"database {metadata_database_name(home)} on the warehouse's server"
        if url
        else "SQLite under AIRFLOW_HOME (the warehouse user may not create a database; SQLite can "
        "answer 'database is locked' under load)"
    )
    print(f"[make airflow] Airflow metadata: {where}", file=sys.stderr, flush=True)
    return url


def say(message: str) -> None:
    print(f"[make airflow] {message}", flush=True)


def run_standalone(args: argparse.Namespace) -> int:
    """Start warehouse, sandbox and ``airflow standalone``; block until stopped."""
    started = time.monotonic()
    home = airflow_home()
    if port_in_use(args.host, args.port):
        say(f"port {args.port} is already in use (another Airflow?); choose one with --port")
        return 2
    use_sandbox = not all(CONNECTION_ENV[c] in os.environ for c in ("nxcloud_default", "accuauth_default"))
    if use_sandbox and port_in_use("127.0.0.1", args.sandbox_port):
        say(f"sandbox port {args.sandbox_port} is already in use; choose one with --sandbox-port")
        return 2

    sandbox: subprocess.Popen | None = None
    airflow: subprocess.Popen | None = None
    embedded = "WAREHOUSE_DSN" not in os.environ
    exit_code = 0
    try:
        with _stop_on_signals():
            dsn = warehouse.resolve_dsn()
            applied = warehouse.migrate(dsn)
            say(
                f"warehouse: {'embedded PostgreSQL under ' + str(warehouse.local_dir() / 'pgdata') if embedded else 'WAREHOUSE_DSN'}"
                f" ({len(applied)} migration(s) applied now)"
            )
            settings = LocalSettings(
                home=home,
                warehouse_dsn=dsn,
                webhook_token=webhook_token(home),
                api_host=args.host,
                api_port=args.port,
                metadata_url=local_metadata_url(home, dsn),
            )
            connections: dict[str, str] = {}
            if use_sandbox:
                sandbox_url = f"http://127.0.0.1:{args.sandbox_port}"
                sandbox = start_sandbox(
                    args.sandbox_port,
                    home / "logs" / "sandbox.log",
                    voice_dr_url=receiver_url(
                        settings.api_base_url, "/nxcloud/voice/{token}", settings.webhook_token
                    ),
                    pns_push_url=receiver_url(
                        settings.api_base_url, "/nxcloud/call/{token}", settings.webhook_token
                    ),
                )
                wait_for_http(f"{sandbox_url}/_sandbox/health", 60, sandbox, "vendor sandbox")
                connections = sandbox_connections(sandbox_url)
                say(f"vendor sandbox: {sandbox_url} (log: {home / 'logs' / 'sandbox.log'})")
            else:
                say("vendor connections: from the environment (sandbox not started)")

            env = airflow_env(settings, connections)
            airflow = subprocess.Popen(
                [str(venv_bin() / "airflow"), "standalone"], env=env, cwd=REPO_ROOT, start_new_session=True
            )
            wait_for_http(f"{settings.api_base_url}/api/v2/version", 240, airflow, "airflow api-server")
            deadline = time.monotonic() + 30
            while admin_password(home) is None and time.monotonic() < deadline:
                time.sleep(0.2)
            password = admin_password(home)
            say(f"ready in {time.monotonic() - started:.0f} s")
            say(f"Airflow UI:   {settings.api_base_url}/")
            say(
                f"login:        admin / {password}  (generated into {home / PASSWORD_FILE_NAME})"
                if password
                else f"login:        see {home / PASSWORD_FILE_NAME}"
            )
            say(f"approver:     approver / {admin_password(home, 'approver')}  (may approve spending)")
            say(
                f"webhooks:     {settings.api_base_url}{RECEIVER_PREFIX}/... (token in {home / 'webhook_token'})"
            )
            say("paused:       new DAGs start paused, and a paused DAG's backfill runs stay Queued:")
            say("              airflow dags unpause nxcloud_number_check_daily  (docs/getting-started.md)")
            say("stop with Ctrl-C")
            exit_code = airflow.wait()
            say(f"airflow standalone exited with {exit_code}")
            exit_code = exit_code or 1  # it only exits on its own when something broke
    except _Stop as stop:
        say(f"{stop}: stopping")
    except (RuntimeError, TimeoutError) as exc:
        say(f"failed: {exc}")
        exit_code = 1
    finally:
        with _stop_on_signals_ignored():
            if airflow is not None:
                # standalone shuts its components down cleanly on SIGINT (KeyboardInterrupt).
                stop_process_group(airflow, signal.SIGINT, grace_s=40, leader_only=True)
            if sandbox is not None:
                stop_process_group(sandbox, signal.SIGTERM, grace_s=10)
            if embedded:
                warehouse.stop_embedded()
        say("stopped")
    return exit_code


@contextlib.contextmanager
def _stop_on_signals_ignored() -> Iterator[None]:
    """A second Ctrl-C must not interrupt the clean-up."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def print_shell_env(args: argparse.Namespace) -> int:
    """``eval "$(make -s env)"``: the stock ``airflow`` CLI in this shell sees what ``make
    airflow`` sees (same ``AIRFLOW_HOME`` and metadata DB, DAG folder, connections, warehouse).

    Starts only what the CLI needs and leaves it running: the embedded warehouse when
    ``WAREHOUSE_DSN`` is unset (migrated); Airflow's metadata DB is migrated and the DAGs are
    serialized into it. Vendor
    connections point at the sandbox on ``--sandbox-port`` (``make sandbox`` or ``make airflow``
    serve it) unless the environment has real ones. Progress goes to stderr; stdout is only
    ``export`` lines.
    """
    import shlex

    home = airflow_home()
    before = dict(os.environ)
    with contextlib.redirect_stdout(sys.stderr):
        dsn = os.environ.get("WAREHOUSE_DSN") or warehouse.start_embedded(keep_running=True).get_uri()
        warehouse.migrate(dsn)
        settings = LocalSettings(
            home=home,
            warehouse_dsn=dsn,
            webhook_token=webhook_token(home),
            api_port=args.port,
            metadata_url=local_metadata_url(home, dsn),
        )
        env = airflow_env(settings, sandbox_connections(f"http://127.0.0.1:{args.sandbox_port}"))
        # the metadata DB up to date, and the DAGs in it (what `dags list` and `backfill create` read)
        for command in (["db", "migrate"], ["dags", "reserialize"]):
            done = subprocess.run(
                [str(venv_bin() / "airflow"), *command], env=env, capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                print(
                    f"airflow {' '.join(command)} failed:",
                    done.stdout[-2000:],
                    done.stderr[-2000:],
                    file=sys.stderr,
                )
                return done.returncode
    for name in sorted(env):
        if before.get(name) != env[name]:
            print(f"export {name}={shlex.quote(env[name])}")
    print(
        f"# AIRFLOW_HOME={home}; vendor calls go to the sandbox at http://127.0.0.1:{args.sandbox_port} "
        "(make sandbox or make airflow) unless AIRFLOW_CONN_NXCLOUD_DEFAULT / _ACCUAUTH_DEFAULT were set"
    )
    return 0


def drop_local_metadata(_args: argparse.Namespace) -> int:
    """``make clean-local`` with ``WAREHOUSE_DSN`` set: drop this home's metadata database there
    (the embedded server's data goes with ``.local`` itself)."""
    dsn = os.environ.get("WAREHOUSE_DSN")
    if not dsn:
        return 0
    home = warehouse.local_dir() / "airflow"
    if drop_metadata_database(home, dsn):
        print(f"dropped Airflow's metadata database {metadata_database_name(home)}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m phonecheck_dev.local", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    standalone = sub.add_parser("standalone", help="airflow standalone with the project wired (make airflow)")
    standalone.add_argument("--host", default=os.environ.get("AIRFLOW_API_HOST", "127.0.0.1"))
    standalone.add_argument(
        "--port", type=int, default=int(os.environ.get("AIRFLOW_API_PORT", DEFAULT_API_PORT))
    )
    standalone.add_argument(
        "--sandbox-port", type=int, default=int(os.environ.get("SANDBOX_PORT", DEFAULT_SANDBOX_PORT))
    )
    standalone.set_defaults(func=run_standalone)
    shell_env = sub.add_parser(
        "env", help='export lines for the airflow CLI in your shell: eval "$(make -s env)"'
    )
    shell_env.add_argument(
        "--port", type=int, default=int(os.environ.get("AIRFLOW_API_PORT", DEFAULT_API_PORT))
    )
    shell_env.add_argument(
        "--sandbox-port", type=int, default=int(os.environ.get("SANDBOX_PORT", DEFAULT_SANDBOX_PORT))
    )
    shell_env.set_defaults(func=print_shell_env)
    drop = sub.add_parser("drop-metadata", help="drop make airflow's metadata database (make clean-local)")
    drop.set_defaults(func=drop_local_metadata)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
