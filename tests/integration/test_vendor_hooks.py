"""Both vendor hooks' "Test" button against the sandbox over real HTTP: one free call, the secret
never in the message (NXCLOUD's is also covered in test_nxcloud_pipeline.py)."""

from __future__ import annotations

import json


def test_accuauth_test_connection_polls_once_and_names_a_wrong_secret(vendor_connections, monkeypatch):
    from phonecheck_airflow.hooks.accuauth import AccuAuthHook

    sandbox = vendor_connections
    assert AccuAuthHook().test_connection() == (True, "credentials accepted")
    conn = json.loads(sandbox.accuauth_connection_json())
    conn["password"] = "not-the-secret"
    monkeypatch.setenv("AIRFLOW_CONN_ACCUAUTH_BAD", json.dumps(conn))
    ok, message = AccuAuthHook("accuauth_bad").test_connection()
    assert not ok and "UNAUTHORIZED" in message and "not-the-secret" not in message
    assert [c["event"] for c in sandbox.control.calls()] == ["accuauth.task_result"] * 2  # never a submit


def test_nxcloud_test_connection_honours_a_bare_host_with_schema_and_port(vendor_connections, monkeypatch):
    """The sandbox reached through host + schema + port fields instead of one URL."""
    from urllib.parse import urlsplit

    from phonecheck_airflow.hooks.nxcloud import NxCloudHook

    sandbox = vendor_connections
    conn = json.loads(sandbox.nxcloud_connection_json())
    url = urlsplit(conn["host"])
    conn.update(host=f"{url.hostname}{url.path}", schema=url.scheme, port=url.port)
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_FIELDS", json.dumps(conn))
    hook = NxCloudHook("nxcloud_fields")
    assert hook.settings.base_url == sandbox.nxcloud_host
    assert hook.test_connection() == (True, "credentials and signature accepted")
    assert [c["event"] for c in sandbox.control.calls()] == ["nxcloud.query"]
