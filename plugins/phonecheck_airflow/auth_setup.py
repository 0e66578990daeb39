"""Logins and roles of a deployment on Airflow's FAB auth manager (docs/deployment.md, "Logins and roles").

``python -m phonecheck_airflow.auth_setup ensure-roles ensure-users`` (one process, in that
order): docker-compose's ``airflow-init`` runs it after ``airflow db migrate`` (which creates the
FAB tables when ``[core] auth_manager`` is the FAB auth manager). Both are idempotent: every start of the stack
brings the roles back to exactly the permissions below and the users to the passwords in ``.env``.

Shipped in the image; the local launcher (``make airflow``, SimpleAuthManager) lives in the
``phonecheck_dev`` package, which the image does not ship.

Who may approve spending (docs/operations.md, "Approval before spending"): Airflow lets a user answer a
HITL task (``PATCH .../taskInstances/{task}/{map}/hitlDetails``) when the FAB auth manager allows
``PUT`` on the DAG's ``HITL_DETAIL`` entity, i.e. the user's roles hold ``can_edit`` on
``HITL Detail`` AND ``can_edit`` on the DAG (``DAGs`` or ``DAG:<dag_id>``); when the task has
``assigned_users``, the user's FAB id must be one of them as well. Only the ``Approver`` role
holds ``can_edit`` on ``HITL Detail``; the ``Requester`` role may trigger the paid DAGs but not
answer their approval.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ROLE_APPROVER = "Approver"
ROLE_REQUESTER = "Requester"
ROLE_ADMIN = "Admin"  # FAB's built-in role

# The DAGs whose runs wait for a spend approval (the ``approve_spend`` task); tests/integration/
# test_fab_auth.py checks this against the DAG folder.
APPROVAL_DAG_IDS: tuple[str, ...] = ("nxcloud_number_check", "accuauth_phone_check")

# (env prefix, role): AIRFLOW_<PREFIX>_USERNAME / AIRFLOW_<PREFIX>_PASSWORD. An empty username
# skips that login (the requester is optional); more users are added in the UI (Security -> Users).
LOGINS: tuple[tuple[str, str], ...] = (
    ("ADMIN", ROLE_ADMIN),
    ("APPROVER", ROLE_APPROVER),
    ("REQUESTER", ROLE_REQUESTER),
)


def dag_resource(dag_id: str) -> str:
    """FAB's per-DAG resource name (``DAG:<dag_id>``)."""
    from airflow.providers.fab.www.security import permissions

    return permissions.resource_name(dag_id, permissions.RESOURCE_DAG)


def role_permissions(viewer: list[tuple[str, str]]) -> dict[str, set[tuple[str, str]]]:
    """The (action, resource) pairs of the project's roles, on top of FAB's ``Viewer`` pairs.

    ``Approver``: sees what a Viewer sees (DAGs, runs, task instances, logs, HITL details) and may
    answer the approvals of the paid DAGs: ``can_edit`` on ``HITL Detail`` and on each paid DAG
    (Airflow checks both for the answer; the DAG edit also allows pausing it). It cannot trigger.
    ``Requester``: a Viewer that may trigger the paid DAGs (``can_create`` on ``DAG Runs`` plus
    ``can_edit`` on the DAG), without ``can_edit`` on ``HITL Detail``: it cannot approve.
    """
    from airflow.providers.fab.www.security import permissions as p

    edit_paid_dags = {(p.ACTION_CAN_EDIT, dag_resource(dag_id)) for dag_id in APPROVAL_DAG_IDS}
    return {
        ROLE_APPROVER: {
            *viewer,
            *edit_paid_dags,
            (p.ACTION_CAN_EDIT, p.RESOURCE_HITL_DETAIL),
            (p.ACTION_CAN_ACCESS_MENU, p.RESOURCE_HITL_DETAIL),  # the "Required Actions" menu
        },
        ROLE_REQUESTER: {
            *viewer,
            *edit_paid_dags,
            (p.ACTION_CAN_CREATE, p.RESOURCE_DAG_RUN),
        },
    }


@contextmanager
def _security_manager() -> Iterator[Any]:
    """FAB's security manager, the way FAB's own ``airflow users`` / ``roles`` commands get it."""
    from airflow.configuration import conf
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    manager = conf.get("core", "auth_manager")
    if not manager.endswith("FabAuthManager"):
        raise SystemExit(
            f"[core] auth_manager is {manager!r}; these commands set up the FAB auth manager "
            "(AIRFLOW__CORE__AUTH_MANAGER=airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager)"
        )
    with get_application_builder() as appbuilder:
        yield appbuilder.sm


def ensure_roles(sm: Any) -> int:
    """FAB's built-in roles (Admin, Op, User, Viewer, Public), then ``Approver`` and ``Requester``
    with exactly :func:`role_permissions` (missing pairs added, others removed)."""
    sm.sync_roles()  # FAB's own roles and global DAG permissions, as `airflow sync-perm` does
    for name, wanted in role_permissions(list(sm.VIEWER_PERMISSIONS)).items():
        role = sm.find_role(name) or sm.add_role(name)
        for action, resource in sorted(wanted):
            sm.add_permission_to_role(role, sm.create_permission(action, resource))
        extra = [
            perm for perm in list(role.permissions) if (perm.action.name, perm.resource.name) not in wanted
        ]
        for perm in extra:
            sm.remove_permission_from_role(role, perm)
        role = sm.find_role(name)
        have = {(perm.action.name, perm.resource.name) for perm in role.permissions}
        if have != wanted:
            print(
                f"role {name}: permissions differ from the wanted set: {sorted(have ^ wanted)}",
                file=sys.stderr,
            )
            return 1
        print(f"role {name}: {len(have)} permission(s), {len(extra)} removed")
    return 0


def _login_from_env(prefix: str) -> tuple[str, str] | None:
    username = os.environ.get(f"AIRFLOW_{prefix}_USERNAME", "").strip()
    password = os.environ.get(f"AIRFLOW_{prefix}_PASSWORD", "")
    if not username:
        return None
    if not password:
        raise SystemExit(f"AIRFLOW_{prefix}_USERNAME is set but AIRFLOW_{prefix}_PASSWORD is empty")
    return username, password


def ensure_users(sm: Any) -> int:
    """Users from ``AIRFLOW_<ADMIN|APPROVER|REQUESTER>_USERNAME`` / ``_PASSWORD``, each with its role.

    A missing user is created; an existing one gets its role added (roles given in the UI stay),
    is re-activated, and gets the password from the environment when it differs (so changing
    ``.env`` and restarting changes it). Passwords are never printed; user ids are (a HITL task's
    ``assigned_users`` are FAB user ids, docs/operations.md).
    """
    logins = [(prefix, role, _login_from_env(prefix)) for prefix, role in LOGINS]
    if logins[0][2] is None:
        print("ensure-users needs AIRFLOW_ADMIN_USERNAME and AIRFLOW_ADMIN_PASSWORD", file=sys.stderr)
        return 2
    for prefix, role_name, login in logins:
        if login is None:
            print(f"{prefix.lower()}: AIRFLOW_{prefix}_USERNAME not set, skipped")
            continue
        username, password = login
        role = sm.find_role(role_name)
        if role is None:
            print(f"role {role_name} does not exist: run ensure-roles first", file=sys.stderr)
            return 1
        user = sm.find_user(username=username)
        if user is None:
            user = sm.add_user(
                username, username, role_name.lower(), f"{username}@example.com", role, password
            )
            action = "created"
        else:
            changed = []
            if role not in user.roles:
                user.roles = [*user.roles, role]
                changed.append(f"role {role_name} added")
            if not user.active:
                user.active = True
                changed.append("re-activated")
            if changed and not sm.update_user(user):
                print(f"{username}: update failed", file=sys.stderr)
                return 1
            if not sm.check_password(username, password):
                if not sm.reset_password(user.id, password):
                    print(f"{username}: password reset failed", file=sys.stderr)
                    return 1
                changed.append("password set from the environment")
            action = ", ".join(changed) or "unchanged"
        print(f"user {username!r} (id {user.id}, role {role_name}): {action}")
    return 0


COMMANDS = {"ensure-roles": ensure_roles, "ensure-users": ensure_users}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m phonecheck_airflow.auth_setup", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "commands",
        nargs="+",
        choices=list(COMMANDS),
        help="ensure-roles: FAB's roles plus Approver and Requester; ensure-users: the admin, approver "
        "and requester logins from AIRFLOW_<ADMIN|APPROVER|REQUESTER>_USERNAME / _PASSWORD",
    )
    args = parser.parse_args(argv)
    with _security_manager() as sm:  # one Flask app for all commands: it takes seconds to build
        for command in args.commands:
            code = COMMANDS[command](sm)
            if code:
                return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
