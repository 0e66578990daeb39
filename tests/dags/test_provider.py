"""The installed distribution registers the two vendor connection types with their form fields."""

from __future__ import annotations

import subprocess
import sys


def test_connection_types_and_form_fields_are_registered():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    pm = ProvidersManager()  # the UI's connection form: widgets and field behaviours
    hooks = ProvidersManagerTaskRuntime().hooks  # where tasks look a connection type's hook up
    assert hooks["nxcloud"].hook_class_name == "phonecheck_airflow.hooks.nxcloud.NxCloudHook"
    assert hooks["accuauth"].hook_class_name == "phonecheck_airflow.hooks.accuauth.AccuAuthHook"

    widgets = pm.connection_form_widgets
    assert {
        "extra__nxcloud__appkey",
        "extra__nxcloud__sign_algorithm",
        "extra__nxcloud__query_timezone",
    } <= set(widgets)
    assert widgets["extra__nxcloud__appkey"].is_sensitive is True
    assert widgets["extra__nxcloud__sign_algorithm"].is_sensitive is False

    behaviours = pm.field_behaviours
    assert behaviours["nxcloud"]["relabeling"] == {
        "host": "Base URL",
        "login": "Access key",
        "password": "Access secret",
    }
    assert behaviours["accuauth"]["relabeling"] == {
        "host": "Base URL",
        "login": "API id",
        "password": "API secret",
    }


def test_airflow_cli_lists_both_hooks():
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "hooks", "-o", "plain"],
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    ).stdout
    assert "phonecheck_airflow.hooks.nxcloud.NxCloudHook" in out
    assert "phonecheck_airflow.hooks.accuauth.AccuAuthHook" in out
