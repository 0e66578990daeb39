"""The on-demand forms keep what a requester decides; limits and tuning come from the connection."""

from __future__ import annotations

import json

import pytest

ON_DEMAND = ("nxcloud_number_check", "accuauth_phone_check")
#: Params that moved to connection extras: no longer form fields (a conf may still give them).
MOVED = (
    "submit_concurrency", "max_requests_per_second", "poll_interval_s", "max_poll_interval_s",
    "warehouse_check_interval_s", "in_doubt_window_s", "approval_timeout_minutes", "max_per_chunk",
    "wait_poll_seconds", "wait_timeout_minutes",
)  # fmt: skip


def top_level_fields(dag) -> list[str]:
    """What the trigger form shows at its top level: each field without a section, and each
    section once (a section starts collapsed, so it counts as one)."""
    shown: list[str] = []
    for name, param in dag.params.items():
        section = param.schema.get("section") if hasattr(param, "schema") else None
        entry = f"[{section}]" if section else name
        if entry not in shown:
            shown.append(entry)
    return shown


@pytest.mark.parametrize("dag_id", ON_DEMAND)
def test_each_on_demand_form_has_at_most_10_top_level_fields(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    shown = top_level_fields(dag)
    assert len(shown) <= 10, shown
    assert {"numbers", "numbers_uri", "results_uri", "freshness_days", "dry_run"} <= set(shown)
    assert not set(MOVED) & set(dag.params.keys())


def test_accuauth_on_demand_and_daily_re_poll_are_two_dags(dagbag):
    on_demand = dagbag.dags["accuauth_phone_check"]
    daily = dagbag.dags["accuauth_phone_check_daily"]
    assert on_demand.schedule is None and daily.schedule == "0 6 * * *"
    assert "submit" in on_demand.task_ids and "settle_spend" in on_demand.task_ids
    assert "submit" not in daily.task_ids and "settle_spend" not in daily.task_ids
    # the spend settles after the wait, so a callback that settles an in-doubt number counts
    assert "wait_for_tasks" in on_demand.get_task("settle_spend").get_flat_relative_ids(upstream=True)


def _connection(monkeypatch, conn_id: str, extra: dict) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "accuauth", "host": "h", "extra": extra})
    )


def test_a_conf_may_lower_an_account_limit_never_raise_it(monkeypatch):
    from phonecheck_airflow.tasks.settings import run_settings

    _connection(monkeypatch, "accuauth_forms_test", {"max_requests_per_second": 20, "poll_interval_s": 5})
    base = run_settings("accuauth", {}, "accuauth_forms_test")
    assert base["max_requests_per_second"] == 20 and base["poll_interval_s"] == 5
    assert base["submit_concurrency"] == 8  # not set on the connection: the default
    lowered = run_settings(
        "accuauth", {"max_requests_per_second": 2, "submit_concurrency": 1}, "accuauth_forms_test"
    )
    assert lowered["max_requests_per_second"] == 2 and lowered["submit_concurrency"] == 1
    raised = run_settings(
        "accuauth", {"max_requests_per_second": 500, "submit_concurrency": 64}, "accuauth_forms_test"
    )
    assert raised["max_requests_per_second"] == 20 and raised["submit_concurrency"] == 8
    tuned = run_settings("accuauth", {"poll_interval_s": 0.1}, "accuauth_forms_test")
    assert tuned["poll_interval_s"] == 0.1  # tuning, not a limit: the old param still replaces it


def test_settings_read_extras_as_the_hooks_do(monkeypatch):
    """A value saved by the connection form (``extra__<conn_type>__`` name) counts like a plain one."""
    from phonecheck_airflow.tasks.settings import run_settings

    _connection(monkeypatch, "accuauth_forms_test", {"extra__accuauth__max_requests_per_second": 3})
    assert run_settings("accuauth", {}, "accuauth_forms_test")["max_requests_per_second"] == 3


def test_the_vendor_ceiling_holds_even_on_the_connection(monkeypatch):
    from phonecheck_airflow.tasks.settings import run_settings

    monkeypatch.setenv(
        "AIRFLOW_CONN_NXCLOUD_FORMS_TEST",
        json.dumps({"conn_type": "nxcloud", "host": "h", "extra": {"max_per_chunk": 9000}}),
    )
    assert run_settings("nxcloud", {}, "nxcloud_forms_test")["max_per_chunk"] == 5000
    assert run_settings("nxcloud", {"max_per_chunk": 20}, "nxcloud_forms_test")["max_per_chunk"] == 20
