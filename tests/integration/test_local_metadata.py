"""``make airflow``'s metadata database: one per ``AIRFLOW_HOME`` on the warehouse's server.

Airflow's components, its executor and the user's CLI write to the metadata DB at once; on
SQLite a backfill created from the shell while the scheduler worked failed with ``database is
locked``. The launcher therefore puts the metadata in PostgreSQL, next to the warehouse, and
keeps SQLite only when the warehouse login may not create a database.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy
from psycopg import sql

from phonecheck import warehouse
from phonecheck_dev import local

pytestmark = pytest.mark.integration


@pytest.fixture
def home(tmp_path: Path, warehouse_server_dsn: str) -> Iterator[Path]:
    home = tmp_path / "airflow"
    home.mkdir()
    yield home
    local.drop_metadata_database(home, warehouse_server_dsn)


def _select_one(url: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text("SELECT 1")).scalar_one()
    finally:
        engine.dispose()


def test_one_database_per_home_created_once_and_reachable_by_sqlalchemy(
    home: Path, tmp_path: Path, warehouse_server_dsn: str
) -> None:
    url = local.metadata_database(home, warehouse_server_dsn)
    assert url is not None and url.startswith("postgresql+psycopg2://")
    assert url.split("?")[0].endswith("/" + local.metadata_database_name(home))
    # make env in another shell computes the same database and finds it there
    assert local.metadata_database(home, warehouse_server_dsn) == url
    assert _select_one(url) == 1

    other = tmp_path / "another-checkout" / "airflow"
    assert local.metadata_database_name(other) != local.metadata_database_name(home)


def test_the_airflow_processes_get_the_database_and_a_small_pool(
    home: Path, warehouse_server_dsn: str
) -> None:
    url = local.metadata_database(home, warehouse_server_dsn)
    settings = local.LocalSettings(
        home=home, warehouse_dsn=warehouse_server_dsn, webhook_token="t" * 32, metadata_url=url
    )
    env = local.airflow_env(settings, {}, base_env={})
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == url
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE"] == "3"

    sqlite_settings = local.LocalSettings(
        home=home, warehouse_dsn=warehouse_server_dsn, webhook_token="t" * 32
    )
    sqlite_env = local.airflow_env(sqlite_settings, {}, base_env={})
    assert sqlite_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith(f"sqlite:///{home}/")
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE" not in sqlite_env


def test_a_login_that_may_not_create_databases_keeps_sqlite(home: Path, warehouse_server_dsn: str) -> None:
    role = f"phonecheck_nocreatedb_{secrets.token_hex(4)}"
    password = secrets.token_hex(8)
    with psycopg.connect(warehouse_server_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
    try:
        parts = warehouse.parse_dsn(warehouse_server_dsn)
        limited = psycopg.conninfo.make_conninfo(warehouse_server_dsn, user=role, password=password)
        assert parts.dbname  # the role connects to the same database, it only lacks CREATEDB
        assert local.metadata_database(home, limited) is None
    finally:
        with psycopg.connect(warehouse_server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_clean_local_drops_the_database(home: Path, warehouse_server_dsn: str) -> None:
    local.metadata_database(home, warehouse_server_dsn)
    assert local.drop_metadata_database(home, warehouse_server_dsn) is True
    assert local.drop_metadata_database(home, warehouse_server_dsn) is False
