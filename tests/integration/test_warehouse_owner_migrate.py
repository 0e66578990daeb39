"""The warehouse migrates as docker-compose's warehouse owner: a login without superuser or
CREATEROLE, in a cluster where the superuser created the roles ``analyst`` and ``pii_reader``
beforehand (docker/postgres/10-warehouse.sh). The tests' own warehouses are migrated by a
superuser; the first real compose run failed here (``COMMENT ON ROLE`` needs CREATEROLE)."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from phonecheck import warehouse

pytestmark = pytest.mark.integration


def test_a_warehouse_owner_without_createrole_migrates_when_the_roles_exist(warehouse_server_dsn: str):
    owner = f"phonecheck_owner_{uuid.uuid4().hex[:10]}"
    database = f"phonecheck_owner_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(warehouse_server_dsn, autocommit=True) as admin:
        # what the compose init script does, as the superuser
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEROLE").format(sql.Identifier(owner)))
        for role in ("analyst", "pii_reader"):
            if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(owner))
        )
    try:
        params = conninfo_to_dict(warehouse_server_dsn)
        params.pop("password", None)
        owner_dsn = make_conninfo(**{**params, "user": owner, "dbname": database})
        applied = warehouse.migrate(owner_dsn)
        assert applied and applied == warehouse.list_migrations()
        with psycopg.connect(owner_dsn) as conn:
            # the analyst tier was still set up: the views are readable by analyst, raw is not
            can = conn.execute(
                "SELECT has_schema_privilege('analyst', 'analyst', 'USAGE'), "
                "has_schema_privilege('analyst', 'raw', 'USAGE')"
            ).fetchone()
        assert can == (True, False)
    finally:
        with psycopg.connect(warehouse_server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(owner)))
