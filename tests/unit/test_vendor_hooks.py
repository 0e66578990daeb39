"""The vendor hook base (``phonecheck_airflow.hooks.base``): base URL from host, schema and port;
extras parsed once; ``get_conn`` returns the vendor client for both hooks (no network)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from phonecheck_airflow.hooks.accuauth import AccuAuthHook
from phonecheck_airflow.hooks.base import connection_base_url, connection_extras
from phonecheck_airflow.hooks.nxcloud import NxCloudHook


def conn(host, schema=None, port=None, extra=None):
    return SimpleNamespace(host=host, schema=schema, port=port, extra_dejson=extra or {})


@pytest.mark.parametrize(
    ("host", "schema", "port", "url"),
    [
        ("api.example", None, None, "https://api.example"),  # https when the schema is empty
        ("api.example", "", 8443, "https://api.example:8443"),
        ("api.example", "http", 8080, "http://api.example:8080"),  # schema and port honoured
        ("api.example/nx/", "http", 8080, "http://api.example:8080/nx"),  # port goes before the path
        ("https://api.example/v1/", None, None, "https://api.example/v1"),
        (
            "http://127.0.0.1:9000/nxcloud",
            "https",
            1234,
            "http://127.0.0.1:9000/nxcloud",
        ),  # the URL's own wins
        ("  api.example  ", None, 443, "https://api.example:443"),
    ],
)
def test_base_url_from_host_schema_and_port(host, schema, port, url):
    assert connection_base_url(conn(host, schema, port)) == url


def test_a_connection_without_a_host_is_named_in_the_error():
    with pytest.raises(ValueError, match="'nx_empty'.*host"):
        connection_base_url(conn(""), conn_id="nx_empty")


def test_extras_plain_or_prefixed_plain_wins_empties_dropped():
    extras = connection_extras(
        conn("h", extra={"extra__nxcloud__appkey": "old", "appkey": "new", "extra__nxcloud__sign_algorithm": "sha256", "query_timezone": ""}),
        "nxcloud",
    )  # fmt: skip
    assert extras == {"appkey": "new", "sign_algorithm": "sha256"}


def _env_conn(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def test_nxcloud_hook_honours_schema_and_port(monkeypatch):
    _env_conn(
        monkeypatch, "nx_plain", conn_type="nxcloud", host="nx.example", schema="http", port=8080,
        login="key", password="secret", extra={"extra__nxcloud__appkey": "app"},
    )  # fmt: skip
    hook = NxCloudHook("nx_plain")
    assert hook.settings.base_url == "http://nx.example:8080" and hook.settings.appkey == "app"
    assert hook.nxcloud_conn_id == hook.conn_id == "nx_plain"
    client = hook.get_conn()
    assert client is hook.get_client() is hook.get_conn()  # built once per hook
    assert client.settings.base_url == "http://nx.example:8080"


def test_accuauth_hook_get_conn_returns_the_client(monkeypatch):
    _env_conn(
        monkeypatch, "aa_plain", conn_type="accuauth", host="aa.example", port=8443,
        login="id", password="s3cr3t", extra={"timeout_s": "7", "allowed_country_codes": "52,57"},
    )  # fmt: skip
    hook = AccuAuthHook("aa_plain")
    client = hook.get_conn()
    assert client.base_url == "https://aa.example:8443" and client.timeout_s == 7.0
    assert client is hook.get_client()
    assert hook.allowed_country_codes() == ("52", "57")
    assert "s3cr3t" not in repr(client)
    client.close()


def test_hook_contract_names_stay():
    assert (NxCloudHook.conn_type, NxCloudHook.hook_name, NxCloudHook.default_conn_name) == (
        "nxcloud", "NXCLOUD (signed API)", "nxcloud_default",
    )  # fmt: skip
    assert (AccuAuthHook.conn_type, AccuAuthHook.hook_name, AccuAuthHook.default_conn_name) == (
        "accuauth", "AccuAuth", "accuauth_default",
    )  # fmt: skip
    assert (
        NxCloudHook.conn_name_attr == "nxcloud_conn_id" and AccuAuthHook.conn_name_attr == "accuauth_conn_id"
    )


def test_test_connection_reports_a_broken_connection_without_raising(monkeypatch):
    _env_conn(monkeypatch, "nx_nokey", conn_type="nxcloud", host="nx.example", login="", password="")
    ok, message = NxCloudHook("nx_nokey").test_connection()
    assert not ok and "access key" in message
