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

The pieces live in modules of one job each, and are importable from here as well (tests, bench
and scripts use ``from phonecheck_dev import local``): :mod:`phonecheck_dev.local_env` (the
environment and the secrets kept in ``AIRFLOW_HOME``), :mod:`phonecheck_dev.local_metadata`
(the metadata database), :mod:`phonecheck_dev.processes` (ports, waiting, stopping),
:mod:`phonecheck_dev.rest_api` (a REST client), :mod:`phonecheck_dev.shell_env` (``make -s env``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from phonecheck import warehouse
from phonecheck_dev.local_env import (  # noqa: F401  (re-exported: the public names of this module)
    CONNECTION_ENV,
    DAGS_FOLDER,
    DEFAULT_API_PORT,
    DEFAULT_SANDBOX_PORT,
    LOCAL_USERS,
    PASSWORD_FILE_NAME,
    RECEIVER_PREFIX,
    REPO_ROOT,
    SENSITIVE_NAMES,
    SOURCE_ROOTS,
    LocalSettings,
    admin_password,
    airflow_env,
    airflow_home,
    fernet_key,
    jwt_secret,
    receiver_url,
    sandbox_connections,
    venv_bin,
    webhook_token,
)
from phonecheck_dev.local_metadata import (  # noqa: F401
    drop_metadata_database,
    local_metadata_url,
    metadata_database,
    metadata_database_name,
    sqlalchemy_url,
)
from phonecheck_dev.processes import (  # noqa: F401
    _Stop,
    _stop_on_signals,
    _stop_on_signals_ignored,
    free_port,
    group_members,
    port_in_use,
    start_sandbox,
    stop_process_group,
    wait_for_http,
)
from phonecheck_dev.rest_api import AirflowApi  # noqa: F401
from phonecheck_dev.shell_env import print_shell_env


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
            for user, role in (
                ("approver", "may approve spending"),
                ("requester", "may trigger runs, not approve"),
            ):
                if (secret := admin_password(home, user)) is not None:  # users of SIMPLE_AUTH_MANAGER_USERS
                    say(f"{user + ':':13s} {user} / {secret}  ({role})")
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
