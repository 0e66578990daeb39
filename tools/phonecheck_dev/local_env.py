"""The environment every local Airflow process shares: paths, connections, kept secrets.

``make airflow``, ``make -s env``, ``make demo`` and the tests that start Airflow components as
separate processes build their environment here (:func:`airflow_env`), so they agree on
``AIRFLOW_HOME``, the DAG folder, the metadata DB, the connections and the secrets kept in
``$AIRFLOW_HOME`` (generated once, 0600). Nothing here imports Airflow: ``make -s env`` must
answer fast (docs/getting-started.md).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from phonecheck import warehouse

REPO_ROOT = warehouse.PROJECT_ROOT
DAGS_FOLDER = REPO_ROOT / "dags"
# what the serialized DAGs depend on (make -s env re-serializes when one of them changed)
SOURCE_ROOTS = (DAGS_FOLDER, REPO_ROOT / "plugins", REPO_ROOT / "include")
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
