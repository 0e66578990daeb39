"""Airflow's metadata database for local runs: one database per ``AIRFLOW_HOME`` on the
warehouse's server (docs/deployment.md), created on first use, dropped by ``make clean-local``."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from phonecheck import warehouse


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
