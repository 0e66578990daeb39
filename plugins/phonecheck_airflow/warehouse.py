"""Reach the warehouse from Airflow code through the ``warehouse`` connection (contract id),
read by ``PostgresHook`` (docs/development.md, "Settings: one source each")."""

from __future__ import annotations

from typing import Any

from phonecheck_airflow.conn_ids import WAREHOUSE_CONN_ID


def _hook(conn_id: str = WAREHOUSE_CONN_ID, connection: Any = None):
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    if connection is None:
        return PostgresHook(postgres_conn_id=conn_id)
    return PostgresHook(postgres_conn_id=conn_id, connection=connection)


def dsn_from_connection(conn: Any) -> str:
    """libpq URI of an Airflow postgres connection, as ``PostgresHook`` reads it: the URL parts
    from the hook's ``sqlalchemy_url`` (login, password, host, port, database, IAM token when
    configured) and the libpq extras (``sslmode``, ...) the hook's ``get_conn`` would hand the
    driver, which ``get_uri()`` drops. A host starting with ``/`` is a socket directory (the
    embedded warehouse). Works on an already-read connection, so triggers can use it after
    ``await BaseHook.aget_connection(...)``."""
    from phonecheck.warehouse import dsn_from_parts

    url = _hook(connection=conn).sqlalchemy_url
    return dsn_from_parts(
        host=url.host,
        port=url.port,
        login=url.username,
        password=url.password,
        dbname=url.database,
        extra={**dict(url.query), **(conn.extra_dejson or {})},
    )


def warehouse_dsn(conn_id: str = WAREHOUSE_CONN_ID) -> str:
    """The warehouse DSN for task code (synchronous connection lookup through ``PostgresHook``)."""
    hook = _hook(conn_id)
    return dsn_from_connection(hook.connection)


async def async_warehouse_dsn(conn_id: str = WAREHOUSE_CONN_ID) -> str:
    """The warehouse DSN for triggers (``aget_connection``: no blocking call in the event loop)."""
    from airflow.sdk import BaseHook

    return dsn_from_connection(await BaseHook.aget_connection(conn_id))
