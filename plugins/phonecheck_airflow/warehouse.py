"""Reach the warehouse from Airflow code through the ``warehouse`` connection (contract id)."""

from __future__ import annotations

from urllib.parse import quote

WAREHOUSE_CONN_ID = "warehouse"


def warehouse_dsn(conn_id: str = WAREHOUSE_CONN_ID) -> str:
    """A libpq URI for the connection; a host starting with ``/`` is a socket directory."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    user = quote(conn.login or "postgres", safe="")
    password = quote(conn.password or "", safe="")
    host = conn.host or "localhost"
    dbname = conn.schema or "postgres"
    port = conn.port or 5432
    if host.startswith("/"):
        return f"postgresql://{user}:{password}@/{dbname}?host={quote(host, safe='/')}&port={port}"
    return f"postgresql://{user}:{password}@{host}:{port}/{dbname}"
