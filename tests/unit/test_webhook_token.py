"""Token rules shared by the URL builder and the receiver (docs/receiver.md, "Token rules")."""

from __future__ import annotations

import pytest

from phonecheck.webhook_urls import (
    MIN_TOKEN_LENGTH,
    WebhookSettings,
    WebhookSettingsError,
    normalise_token,
    resolve,
    token_problem,
    webhook_url,
)

GOOD = "k3Jx9-Qm2_vP8rT4wZ6yB1nH5dF7gL0s"


def test_both_sides_normalise_the_token_the_same_way():
    assert normalise_token(f"  {GOOD}\n") == GOOD
    url = webhook_url("/nxcloud/call/{token}", base_url="https://h/telco-webhooks", token=f"{GOOD}\n")
    assert url == f"https://h/telco-webhooks/nxcloud/call/{GOOD}"


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (None, "not set"),
        ("   ", "not set"),
        ("change-me-webhook-token", "sample value"),
        ("x" * (MIN_TOKEN_LENGTH - 1), "shorter than 24"),
    ],
)
def test_missing_sample_and_short_tokens_are_refused(token, why):
    assert why in token_problem(token)


def test_a_long_random_token_is_accepted():
    assert token_problem(GOOD) is None and token_problem(f" {GOOD} ") is None


def test_every_refusal_names_both_spellings_of_the_setting():
    for token in (None, "change-me-webhook-token", "short"):
        problem = token_problem(token)
        assert "telco_webhook_token" in problem and "TELCO_WEBHOOK_TOKEN" in problem


def test_the_variable_env_form_and_the_contract_env_var_are_one_setting(monkeypatch):
    for name in ("TELCO_WEBHOOK_BASE_URL", "TELCO_WEBHOOK_TOKEN"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv("AIRFLOW_VAR_" + name, raising=False)
    assert resolve() == WebhookSettings(base_url=None, token=None, token_from=None)

    monkeypatch.setenv("AIRFLOW_VAR_TELCO_WEBHOOK_TOKEN", f"{GOOD}\n")
    monkeypatch.setenv("AIRFLOW_VAR_TELCO_WEBHOOK_BASE_URL", "https://h/telco-webhooks/")
    settings = resolve()
    assert (settings.base_url, settings.token) == ("https://h/telco-webhooks", GOOD)
    assert settings.token_from == "Airflow Variable telco_webhook_token"
    assert webhook_url("/nxcloud/call/{token}") == f"https://h/telco-webhooks/nxcloud/call/{GOOD}"

    monkeypatch.setenv("TELCO_WEBHOOK_TOKEN", f" {GOOD} ")  # the same value, spelled twice: fine
    assert resolve().token == GOOD
    monkeypatch.delenv("AIRFLOW_VAR_TELCO_WEBHOOK_TOKEN")
    assert resolve().token_from == "TELCO_WEBHOOK_TOKEN"


def test_two_spellings_with_different_values_are_refused_naming_both(monkeypatch):
    monkeypatch.setenv("TELCO_WEBHOOK_TOKEN", GOOD)
    seen = {"telco_webhook_token": GOOD[::-1]}  # as Airflow's Variable.get would answer
    with pytest.raises(WebhookSettingsError) as refused:
        resolve(seen.get)
    message = str(refused.value)
    assert "telco_webhook_token" in message and "TELCO_WEBHOOK_TOKEN" in message
    assert GOOD not in message and GOOD[::-1] not in message  # a secret never goes into a message
