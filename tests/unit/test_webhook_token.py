"""Token rules shared by the URL builder and the receiver (docs/receiver.md, "Token rules")."""

from __future__ import annotations

import pytest

from phonecheck.webhook_urls import MIN_TOKEN_LENGTH, normalise_token, token_problem, webhook_url

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
