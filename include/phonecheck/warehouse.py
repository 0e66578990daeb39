"""Warehouse runtime: where the PostgreSQL warehouse is, how to reach it, how to migrate it.

* ``WAREHOUSE_DSN`` set → that server is used as is.
* A deployment's processes outside Airflow (the standalone receiver) read the same setting as
  Airflow: the ``warehouse`` connection in its env form ``AIRFLOW_CONN_WAREHOUSE``, or
  ``WAREHOUSE_DSN`` (:func:`deployment_dsn`).
* neither → an embedded PostgreSQL from the ``pgserver`` wheel, data under ``.local/pgdata``
  (git-ignored). It is started on first use and stopped when the process that started it
  exits (pgserver counts the processes using it, so nested users share one server).

Migrations are plain SQL files in ``phonecheck/sql/migrations`` named ``V<4 digits>__<name>.sql``.
Each is applied once, in order, inside a transaction, under an advisory lock (several
receivers and an init job may start at once), and recorded in ``ops.schema_migration``.
Files are also written to be re-runnable on their own (``IF NOT EXISTS`` everywhere).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlencode, urlparse

import psycopg
from psycopg import sql

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS_DIR = Path(__file__).resolve().parent / "sql" / "migrations"
_MIGRATION_RE = re.compile(r"^V(\d{4})__([a-z0-9_]+)\.sql$")
_ADVISORY_LOCK_KEY = 7_311_337  # arbitrary, constant: serialises concurrent migrators
WAREHOUSE_SCHEMAS = ("raw", "ops", "telco", "dq", "mart", "analyst")


def local_dir() -> Path:
    """Project-local state (embedded PG data, Airflow home for demo, spools). Git-ignored."""
    path = Path(os.environ.get("PHONECHECK_LOCAL_DIR", PROJECT_ROOT / ".local"))
    path.mkdir(parents=True, exist_ok=True)
    return path


_embedded_server = None


def start_embedded(pgdata: Path | None = None, keep_running: bool = False):
    """Start (or join) the embedded PostgreSQL and return the pgserver handle.

    ``keep_running``: leave it running when this process exits (for a shell set up by
    ``make env``); the next run that stops it (``make airflow`` on exit) does."""
    global _embedded_server
    if _embedded_server is None:
        import logging

        import pgserver  # only needed when no WAREHOUSE_DSN is given

        # pgserver logs at interpreter exit, after pytest/uvicorn closed their streams.
        logging.getLogger("pgserver").setLevel(logging.WARNING)

        _embedded_server = pgserver.get_server(
            pgdata or (local_dir() / "pgdata"), cleanup_mode=None if keep_running else "stop"
        )
    return _embedded_server


def stop_embedded() -> None:
    """Stop the embedded server if this process started it and nobody else uses it."""
    global _embedded_server
    if _embedded_server is not None:
        _embedded_server.cleanup()
        _embedded_server = None


def resolve_dsn() -> str:
    """The warehouse DSN: ``WAREHOUSE_DSN`` if set, else the embedded server's."""
    dsn = os.environ.get("WAREHOUSE_DSN")
    if dsn:
        return dsn
    return start_embedded().get_uri()


DSN_ENV = "WAREHOUSE_DSN"
CONNECTION_ENV = "AIRFLOW_CONN_WAREHOUSE"  # the `warehouse` connection as Airflow reads it from env


@cache
def libpq_keywords() -> frozenset[str]:
    """The connection parameters this libpq accepts (``sslmode``, ``connect_timeout``, ...)."""
    import psycopg.pq

    return frozenset(d.keyword.decode() for d in psycopg.pq.Conninfo.get_defaults())


#: Parts of the URI itself; an extra may not override them.
_URI_PARTS = frozenset({"host", "hostaddr", "port", "dbname", "user", "password"})


def dsn_from_parts(
    *,
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    dbname: str | None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """libpq URI of a postgres connection's fields; a host starting with ``/`` is a socket
    directory (the embedded warehouse). Extras that are libpq parameters (``sslmode``,
    ``sslrootcert``, ``connect_timeout``, ``application_name``, ``options``, ...) go into the URI,
    as ``PostgresHook.get_conn`` hands them to the driver; other extras (``cursor``, ``iam``, ...)
    are Airflow's, not libpq's."""
    user = quote(login or "postgres", safe="")
    secret = quote(password or "", safe="")
    host = host or "localhost"
    db = quote(dbname or "postgres", safe="")
    port = port or 5432
    query = {
        k: str(v) for k, v in sorted((extra or {}).items()) if k in libpq_keywords() and k not in _URI_PARTS
    }
    if host.startswith("/"):
        query = {"host": host, "port": str(port), **query}
        return f"postgresql://{user}:{secret}@/{db}?{urlencode(query, safe='/', quote_via=quote)}"
    suffix = f"?{urlencode(query, safe='/', quote_via=quote)}" if query else ""
    return f"postgresql://{user}:{secret}@{host}:{port}/{db}{suffix}"


def dsn_from_airflow_connection_env(value: str) -> str:
    """libpq URI of an ``AIRFLOW_CONN_*`` value (JSON or URI form), read without Airflow."""
    value = value.strip()
    if value.startswith("{"):
        fields = json.loads(value)
        extra = fields.get("extra") or {}
        return dsn_from_parts(
            host=fields.get("host"),
            port=int(fields["port"]) if fields.get("port") else None,
            login=fields.get("login"),
            password=fields.get("password"),
            dbname=fields.get("schema"),
            extra=json.loads(extra) if isinstance(extra, str) else extra,
        )
    url = urlparse(value)
    query = dict(parse_qsl(url.query))
    extra = json.loads(query.pop("__extra__")) if "__extra__" in query else query
    return dsn_from_parts(
        host=query.get("host") or (unquote(url.hostname) if url.hostname else None),
        port=url.port or (int(query["port"]) if query.get("port") else None),
        login=unquote(url.username) if url.username else None,
        password=unquote(url.password) if url.password else None,
        dbname=unquote(url.path.lstrip("/")) or None,
        extra=extra,
    )


def same_database(a: str, b: str) -> bool:
    """Whether two DSNs name the same database as the same user (spelling aside)."""
    from psycopg.conninfo import conninfo_to_dict

    def key(dsn: str) -> tuple:
        parts = conninfo_to_dict(dsn)
        return (
            parts.get("host") or "localhost",
            str(parts.get("port") or 5432),
            parts.get("dbname") or parts.get("user") or "postgres",
            parts.get("user") or "postgres",
        )

    return key(a) == key(b)


def pick(from_connection: str | None, from_dsn_env: str | None, connection_name: str) -> str | None:
    """The DSN of the warehouse setting's two spellings: ``WAREHOUSE_DSN`` as is when set (it may
    reach the same database another way, e.g. through a proxy), else the connection's. When they
    name different servers or databases, say so in the log: the receiver and Airflow's tasks
    may be writing to two warehouses."""
    if from_connection and from_dsn_env and not same_database(from_connection, from_dsn_env):
        import logging

        logging.getLogger(__name__).warning(
            "%s and %s name different servers or databases; using %s (the receiver and Airflow's "
            "tasks must reach the same warehouse)",
            connection_name,
            DSN_ENV,
            DSN_ENV,
        )
    return from_dsn_env or from_connection


def deployment_dsn() -> str:
    """The warehouse DSN outside Airflow, from the deployment's settings: ``WAREHOUSE_DSN``, else
    ``AIRFLOW_CONN_WAREHOUSE`` (the ``warehouse`` connection's env form), else the embedded server."""
    connection = os.environ.get(CONNECTION_ENV)
    from_connection = dsn_from_airflow_connection_env(connection) if connection else None
    dsn = pick(from_connection, os.environ.get(DSN_ENV), f"the warehouse connection ({CONNECTION_ENV})")
    return dsn or start_embedded().get_uri()


@dataclass(frozen=True)
class DsnParts:
    host: str | None
    port: int | None
    user: str | None
    password: str | None
    dbname: str | None


def parse_dsn(dsn: str) -> DsnParts:
    """Split a libpq URI (``postgresql://u:p@host:port/db?host=/socket/dir``) into parts."""
    url = urlparse(dsn)
    query = parse_qs(url.query)
    host = query.get("host", [url.hostname])[0]
    return DsnParts(
        host=host,
        port=url.port or (int(query["port"][0]) if "port" in query else None),
        user=unquote(url.username) if url.username else None,
        password=unquote(url.password) if url.password else None,
        dbname=(url.path.lstrip("/") or None),
    )


def with_database(dsn: str, dbname: str) -> str:
    """The same server, another database."""
    url = urlparse(dsn)
    return url._replace(path=f"/{dbname}").geturl()


def airflow_connection_json(dsn: str) -> str:
    """``AIRFLOW_CONN_WAREHOUSE`` value for a DSN (a socket directory works as host)."""
    parts = parse_dsn(dsn)
    conn = {
        "conn_type": "postgres",
        "host": parts.host or "localhost",
        "login": parts.user or "postgres",
        "password": parts.password or "",
        "schema": parts.dbname or "postgres",
        "port": parts.port or 5432,
    }
    return json.dumps(conn)


def connect(dsn: str | None = None, **kwargs) -> psycopg.Connection:
    return psycopg.connect(dsn or resolve_dsn(), **kwargs)


@contextlib.contextmanager
def throwaway_database(server_dsn: str, prefix: str = "phonecheck_test") -> Iterator[str]:
    """Create a fresh database on ``server_dsn``'s server, yield its DSN, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server_dsn, name)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def list_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_RE.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} does not match V<4 digits>__<name>.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise ValueError(f"duplicate migration versions in {directory}")
    return found


def migrate(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply pending migrations; return the ones applied now (empty when up to date)."""
    applied_now: list[Migration] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        try:
            conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
            conn.execute(
                """CREATE TABLE IF NOT EXISTS ops.schema_migration (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {
                row[0]: row[1] for row in conn.execute("SELECT version, checksum FROM ops.schema_migration")
            }
            for migration in list_migrations(directory):
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.path.read_text(encoding="utf-8"))
                    conn.execute(
                        "INSERT INTO ops.schema_migration (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(migration)
            restrict_database_privileges(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))
    return applied_now


def restrict_database_privileges(conn: psycopg.Connection) -> None:
    """Re-apply the database-level privileges of the analyst tier (docs/privacy.md).

    They are kept in the cluster, not in the database, so a database cloned from a migrated
    template (or restored from a dump) starts with PostgreSQL's defaults again.
    """
    exists = conn.execute(
        "SELECT to_regprocedure('ops.restrict_database_privileges()') IS NOT NULL"
    ).fetchone()
    if exists and exists[0]:
        conn.execute("SELECT ops.restrict_database_privileges()")


def list_tables(dsn: str) -> list[tuple[str, str, str]]:
    """(schema, name, kind) of every table and view in the warehouse schemas."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """SELECT table_schema, table_name, table_type FROM information_schema.tables
               WHERE table_schema = ANY(%s) ORDER BY 1, 2""",
            (list(WAREHOUSE_SCHEMAS),),
        ).fetchall()
    return [(s, n, "view" if t == "VIEW" else "table") for s, n, t in rows]
