"""``eval "$(make -s env)"``: the stock ``airflow`` CLI in this shell sees what ``make airflow``
sees (same ``AIRFLOW_HOME`` and metadata DB, DAG folder, connections, warehouse).

The exports are computed from files and plain Python, without importing Airflow, so the command
answers in about a second even on a fresh clone (docs/getting-started.md). What the CLI needs
besides the exports is started and left running: the embedded warehouse when ``WAREHOUSE_DSN``
is unset (its very first start, ``initdb``, is left to the set-up below, the DSN being known
beforehand). Migrating a fresh warehouse, Airflow's ``db migrate`` and ``dags reserialize`` take
seconds each (the last two start Airflow), so when they are due (:mod:`phonecheck_dev.cli_ready`) they run in a
detached process that holds ``$AIRFLOW_HOME/cli_setup.lock`` until it is done, and an
``airflow_local_settings.py`` in ``$AIRFLOW_HOME/config`` (a module every Airflow process
imports before it touches its metadata DB) makes the first ``airflow`` command wait for it.
Progress and failures go to stderr or the set-up's log; stdout is only ``export`` lines.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

from phonecheck import warehouse
from phonecheck_dev import cli_ready
from phonecheck_dev.local_env import (
    REPO_ROOT,
    SOURCE_ROOTS,
    LocalSettings,
    airflow_env,
    airflow_home,
    sandbox_connections,
    venv_bin,
    webhook_token,
)
from phonecheck_dev.local_metadata import (
    local_metadata_url,
    metadata_database,
    metadata_database_name,
    sqlalchemy_url,
)

SETUP_LOCK = "cli_setup.lock"
SETUP_FAILED = "cli_setup.failed"
SETUP_LOG = Path("logs") / "cli_setup.log"
# set for the set-up's own airflow commands: they must not wait for the lock their parent holds
SETUP_RUNNING_ENV = "PHONECHECK_CLI_SETUP_RUNNING"
SETUP_COMMANDS = (("db", "migrate"), ("dags", "reserialize"))
# set when the set-up is also to create and start the embedded warehouse (a fresh clone)
SETUP_EMBEDDED_ENV = "PHONECHECK_CLI_SETUP_EMBEDDED"
# a unix socket path must fit in sun_path (108 bytes on Linux, with its NUL)
_SOCKET_PATH_MAX = 100

WAIT_HOOK = f'''"""Written by ``make -s env`` (tools/phonecheck_dev/shell_env.py): an ``airflow`` command
started while the metadata DB set-up that ``make -s env`` began still runs waits for it."""

import fcntl
import os
import sys
from pathlib import Path


def _wait_for_make_env_setup() -> None:
    if os.environ.get("{SETUP_RUNNING_ENV}"):
        return
    home = Path(__file__).resolve().parent.parent
    lock = home / "{SETUP_LOCK}"
    if not lock.exists():
        return
    with open(lock) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                "[make env] waiting for the metadata DB set-up (airflow db migrate, dags reserialize;"
                f" log: {{home / '{SETUP_LOG}'}})",
                file=sys.stderr,
                flush=True,
            )
            fcntl.flock(handle, fcntl.LOCK_SH)
    failed = home / "{SETUP_FAILED}"
    if failed.exists():
        print(f"[make env] the metadata DB set-up failed: {{failed.read_text().strip()}}", file=sys.stderr)


_wait_for_make_env_setup()
'''


def install_wait_hook(home: Path) -> None:
    config = home / "config"
    config.mkdir(parents=True, exist_ok=True)
    hook = config / "airflow_local_settings.py"
    if not hook.exists() or hook.read_text() != WAIT_HOOK:
        hook.write_text(WAIT_HOOK)


def start_setup(home: Path, env: dict[str, str], ready: str) -> bool:
    """Start the detached set-up unless one already runs; ``True`` when this call started it.

    The lock is taken here, before the exports are printed, and handed to the child (same open
    file, so the lock is the child's once this process exits): an ``airflow`` command typed right
    after ``eval`` cannot find the lock free before the set-up has begun.
    """
    fd = os.open(home / SETUP_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # an earlier make -s env's set-up still runs; the hook waits for it
        (home / SETUP_FAILED).unlink(missing_ok=True)
        log = home / SETUP_LOG
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            subprocess.Popen(
                [sys.executable, "-m", "phonecheck_dev.shell_env", "--setup", ready],
                env={**env, SETUP_RUNNING_ENV: "1"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(fd,),
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        return True
    finally:
        os.close(fd)


def fresh_embedded_dsn() -> str | None:
    """The DSN the embedded warehouse will have, when it was never created here (a fresh clone).

    Its first start (``initdb``) takes seconds; the set-up does it in the background instead. The
    DSN is then known beforehand: pgserver puts the socket in the data folder when the path fits
    (else elsewhere: ``None``, and the server is started here as before).
    """
    pgdata = (warehouse.local_dir() / "pgdata").resolve()
    if (pgdata / "PG_VERSION").exists() or len(str(pgdata / ".s.PGSQL.5432").encode()) > _SOCKET_PATH_MAX:
        return None
    return f"postgresql://postgres:@/postgres?host={pgdata}"


def run_setup(ready: str) -> int:
    """The detached part: the embedded warehouse on a fresh clone, the warehouse migrations,
    ``airflow db migrate`` and ``airflow dags reserialize``, then the stamp."""
    home = Path(os.environ["AIRFLOW_HOME"])
    dsn = os.environ["WAREHOUSE_DSN"]
    try:
        if os.environ.get(SETUP_EMBEDDED_ENV):
            print("embedded warehouse: first start", flush=True)
            started = warehouse.start_embedded(keep_running=True).get_uri()
            if started != dsn:
                raise RuntimeError(
                    f"the embedded warehouse answers at {started}, not {dsn}: run make -s env again"
                )
            metadata_database(home, dsn)
        print("warehouse migrations", flush=True)
        warehouse.migrate(dsn)
    except Exception as exc:  # noqa: BLE001  (said in the failure file the waiting CLI prints)
        (home / SETUP_FAILED).write_text(f"warehouse set-up failed: {exc} (log: {home / SETUP_LOG})\n")
        raise
    for command in SETUP_COMMANDS:
        print(f"airflow {' '.join(command)}", flush=True)
        done = subprocess.run(
            [str(venv_bin() / "airflow"), *command], stdin=subprocess.DEVNULL, check=False, timeout=900
        )
        if done.returncode != 0:
            message = f"airflow {' '.join(command)} exited {done.returncode} (log: {home / SETUP_LOG})"
            (home / SETUP_FAILED).write_text(message + "\n")
            print(message, flush=True)
            return done.returncode
    cli_ready.mark_ready(home, ready)
    print("ready", flush=True)
    return 0


def print_shell_env(args: argparse.Namespace) -> int:
    """Print the ``export`` lines; start the embedded warehouse and, when due, the set-up."""
    # pgserver asks platformdirs for a runtime dir, which warns when XDG_RUNTIME_DIR is unset
    # (containers, CI): noise on a command whose output a shell evaluates.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    home = airflow_home()
    before = dict(os.environ)
    with contextlib.redirect_stdout(sys.stderr):
        dsn = os.environ.get("WAREHOUSE_DSN")
        embedded_later = not dsn and (dsn := fresh_embedded_dsn()) is not None
        if not dsn:
            dsn = warehouse.start_embedded(keep_running=True).get_uri()
        if embedded_later:  # the set-up creates it; the embedded server's user may create databases
            metadata_url = sqlalchemy_url(warehouse.with_database(dsn, metadata_database_name(home)))
        elif (metadata_url := metadata_database(home, dsn)) is None:
            local_metadata_url(home, dsn)  # the one thing worth saying: SQLite can lock under load
        settings = LocalSettings(
            home=home, warehouse_dsn=dsn, webhook_token=webhook_token(home), api_port=args.port,
            metadata_url=metadata_url,
        )  # fmt: skip
        env = airflow_env(settings, sandbox_connections(f"http://127.0.0.1:{args.sandbox_port}"))
        # where local input files go (its inputs/ is the folder runs may read): the docs' recipes
        # name it, so they work in a clone and with a PHONECHECK_LOCAL_DIR of one's own alike
        env["PHONECHECK_LOCAL_DIR"] = str(warehouse.local_dir().resolve())
        install_wait_hook(home)
        ready = cli_ready.fingerprint(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], SOURCE_ROOTS)
        if cli_ready.is_ready(home, ready) and not embedded_later:
            warehouse.migrate(dsn)  # a new migration file: applied here in a fraction of a second
        else:  # migrates the warehouse too (a fresh one takes seconds)
            start_setup(home, {**env, SETUP_EMBEDDED_ENV: "1"} if embedded_later else env, ready)
    for name in sorted(env):
        if before.get(name) != env[name]:
            print(f"export {name}={shlex.quote(env[name])}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--setup":
        sys.exit(run_setup(sys.argv[2]))
    sys.exit("usage: python -m phonecheck_dev.local env (this module's --setup is for its own child)")
