"""Reach the warehouse from Airflow code through the ``warehouse`` connection (contract id)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from phonecheck_airflow.conn_ids import WAREHOUSE_CONN_ID


def dsn_from_connection(conn: Any) -> str:
    """libpq URI of an Airflow postgres connection; a host starting with ``/`` is a socket
    directory (the embedded warehouse). Works on an already-read connection, so triggers can
    use it after ``await BaseHook.aget_connection(...)``."""
    user = quote(conn.login or "postgres", safe="")
    password = quote(conn.password or "", safe="")
    host = conn.host or "localhost"
    dbname = conn.schema or "postgres"
    port = conn.port or 5432
    if host.startswith("/"):
        return f"postgresql://{user}:{password}@/{dbname}?host={quote(host, safe='/')}&port={port}"
    return f"postgresql://{user}:{password}@{host}:{port}/{dbname}"


def warehouse_dsn(conn_id: str = WAREHOUSE_CONN_ID) -> str:
    """The warehouse DSN for task code (synchronous connection lookup)."""
    from airflow.sdk import BaseHook

    return dsn_from_connection(BaseHook.get_connection(conn_id))


async def async_warehouse_dsn(conn_id: str = WAREHOUSE_CONN_ID) -> str:
    """The warehouse DSN for triggers (``aget_connection``: no blocking call in the event loop)."""
    from airflow.sdk import BaseHook

    return dsn_from_connection(await BaseHook.aget_connection(conn_id))
