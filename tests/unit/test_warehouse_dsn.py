"""The warehouse connection's DSN keeps what the connection says, extras included, as
``PostgresHook`` does: an ``sslmode`` set on the connection must reach the driver."""

from __future__ import annotations

from types import SimpleNamespace

from psycopg.conninfo import conninfo_to_dict

from phonecheck_airflow.warehouse import dsn_from_connection


def connection(**fields) -> SimpleNamespace:
    base = {"login": "etl", "password": "p@ss:/word", "host": "db.example", "port": 6543, "schema": "dwh"}
    extra = fields.pop("extra", {})
    return SimpleNamespace(**{**base, **fields}, extra_dejson=extra)


def test_libpq_extras_reach_the_dsn_and_airflow_extras_do_not():
    extra = {
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ssl/certs/warehouse-ca.pem",
        "connect_timeout": 7,
        "application_name": "phonecheck worker",
        "cursor": "dictcursor",  # Airflow's PostgresHook option, not libpq's
        "iam": False,
        "host": "elsewhere.example",  # an extra never overrides the connection's own host
    }
    parsed = conninfo_to_dict(dsn_from_connection(connection(extra=extra)))
    assert parsed == {
        "user": "etl",
        "password": "p@ss:/word",
        "host": "db.example",
        "port": "6543",
        "dbname": "dwh",
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ssl/certs/warehouse-ca.pem",
        "connect_timeout": "7",
        "application_name": "phonecheck worker",
    }


def test_a_socket_directory_host_and_no_extras():
    parsed = conninfo_to_dict(dsn_from_connection(connection(host="/tmp/pg sock", port=None, extra={})))
    assert parsed == {
        "user": "etl", "password": "p@ss:/word", "host": "/tmp/pg sock", "port": "5432", "dbname": "dwh",
    }  # fmt: skip
    plain = conninfo_to_dict(dsn_from_connection(connection(extra={"sslmode": "disable"})))
    assert plain["sslmode"] == "disable" and plain["host"] == "db.example"


def test_the_connection_env_form_gives_the_receiver_the_same_dsn_as_airflow():
    """The standalone receiver reads ``AIRFLOW_CONN_WAREHOUSE`` without Airflow: both forms give
    what the hook gives for the same connection."""
    import json

    from phonecheck.warehouse import dsn_from_airflow_connection_env

    fields = {"conn_type": "postgres", "host": "db.example", "port": 6543, "login": "etl",
              "password": "p@ss:/word", "schema": "dwh", "extra": {"sslmode": "verify-full", "cursor": "x"}}  # fmt: skip
    as_airflow = conninfo_to_dict(dsn_from_connection(connection(extra=fields["extra"])))
    assert conninfo_to_dict(dsn_from_airflow_connection_env(json.dumps(fields))) == as_airflow
    uri = "postgresql://etl:p%40ss%3A%2Fword@db.example:6543/dwh?sslmode=verify-full&cursor=x"
    assert conninfo_to_dict(dsn_from_airflow_connection_env(uri)) == as_airflow


def test_warehouse_dsn_wins_and_two_databases_are_logged(monkeypatch, caplog):
    from phonecheck.warehouse import deployment_dsn

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", "postgresql://etl:pw@db.example:5432/dwh?sslmode=require")
    monkeypatch.setenv("WAREHOUSE_DSN", "postgresql://etl:pw@db.example/dwh")  # same database
    with caplog.at_level("WARNING"):
        assert deployment_dsn() == "postgresql://etl:pw@db.example/dwh"
    assert caplog.text == ""
    monkeypatch.delenv("WAREHOUSE_DSN")
    assert conninfo_to_dict(deployment_dsn())["sslmode"] == "require"
    monkeypatch.setenv("WAREHOUSE_DSN", "postgresql://etl:pw@proxy.example:6432/dwh")
    with caplog.at_level("WARNING"):
        assert deployment_dsn() == "postgresql://etl:pw@proxy.example:6432/dwh"
    assert "AIRFLOW_CONN_WAREHOUSE" in caplog.text and "WAREHOUSE_DSN" in caplog.text
