"""Login setup for a deployment: ``python -m phonecheck_airflow.auth_setup write-passwords-file``.

Shipped in the image (docker-compose's ``airflow-init`` runs it); the local launcher lives in the
``phonecheck_dev`` package, which the image does not ship.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def write_passwords_file(args: argparse.Namespace) -> int:
    """Write SimpleAuthManager's passwords file from the environment (docker-compose init).

    ``AIRFLOW_ADMIN_USERNAME`` / ``AIRFLOW_ADMIN_PASSWORD`` -> ``{"<user>": "<password>"}`` at
    ``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE``, mode 0600, replaced atomically. The
    password is never printed.
    """
    username = os.environ.get("AIRFLOW_ADMIN_USERNAME", "")
    password = os.environ.get("AIRFLOW_ADMIN_PASSWORD", "")
    target = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", "")
    if not (username and password and target):
        print(
            "write-passwords-file needs AIRFLOW_ADMIN_USERNAME, AIRFLOW_ADMIN_PASSWORD and "
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
            file=sys.stderr,
        )
        return 2
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({username: password}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    print(f"login for {username!r} written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m phonecheck_airflow.auth_setup", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    passwords = sub.add_parser(
        "write-passwords-file",
        help="SimpleAuthManager passwords file from AIRFLOW_ADMIN_* (docker-compose init)",
    )
    passwords.set_defaults(func=write_passwords_file)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
