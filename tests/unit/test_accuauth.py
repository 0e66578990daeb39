"""AccuAuth pure pieces: answer classification, retry policy, secrets, webhook URLs, the trigger's
serialisation and the wait payload (no services)."""

from __future__ import annotations

import asyncio
import json

import pytest

from phonecheck.accuauth import api
from phonecheck.accuauth.waiter import RateLimiter, WaitOutcome, WaitSettings
from phonecheck.enums import ACCUAUTH_STATUS_HTTP
from phonecheck.webhook_urls import ACCUAUTH_PHONE_NUMBER, redact, webhook_url


def body(status: str, **extra) -> bytes:
    return json.dumps({"status": status, "request_id": "TID" + "a" * 32, **extra}).encode()


def test_pending_with_http_400_is_a_state_not_an_error():
    answer = api.classify(400, body("PENDING", reason="check in progress"), api.TASK_RESULT_PATH)
    assert answer.pending and answer.http_status == 400


def test_ok_with_a_result_is_returned():
    answer = api.classify(200, body("OK", result={"phone_number": "525512345678", "phone_status": "ring"}))
    assert not answer.pending and answer.payload["result"]["phone_status"] == "ring"


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        ("UNAUTHORIZED", api.AccuAuthUnauthorized, False),
        ("KEY_EXPIRED", api.AccuAuthKeyExpired, False),
        ("NO_PERMISSION", api.AccuAuthNoPermission, False),
        ("OUT_OF_QUOTA", api.AccuAuthOutOfQuota, False),
        ("INVALID_ARGUMENT", api.AccuAuthInvalidArgument, False),
        ("NOT_FOUND", api.AccuAuthNotFound, False),
        ("RATE_LIMIT_EXCEEDED", api.AccuAuthRateLimited, True),
        ("INTERNAL_ERROR", api.AccuAuthServerError, True),
    ],
)
def test_every_documented_error_has_its_own_class_with_the_vendor_reason(status, cls, retryable):
    http = ACCUAUTH_STATUS_HTTP[status]  # the documented pairing (RATE_LIMIT_EXCEEDED is a 403)
    with pytest.raises(cls) as raised:
        api.classify(http, body(status, reason=f"why {status}"), api.SUBMIT_PATH)
    exc = raised.value
    assert exc.status == status and exc.reason == f"why {status}" and exc.http_status == http
    assert api.is_retryable(exc) is retryable
    assert f"why {status}" in str(exc) and api.SUBMIT_PATH in str(exc)
    assert (cls in api.FATAL_ERRORS) is (
        status in {"UNAUTHORIZED", "KEY_EXPIRED", "NO_PERMISSION", "OUT_OF_QUOTA", "NOT_FOUND"}
    )


def test_a_5xx_without_a_vendor_body_is_retryable_and_a_4xx_one_is_not():
    with pytest.raises(api.AccuAuthServerError):
        api.classify(502, b"<html>bad gateway</html>")
    with pytest.raises(api.AccuAuthError) as raised:
        api.classify(418, b"teapot")
    assert not api.is_retryable(raised.value)


def test_ok_with_an_error_http_status_is_not_taken_as_success():
    with pytest.raises(api.AccuAuthError):
        api.classify(500, body("OK"))


def test_the_secret_is_never_in_a_repr_or_an_error():
    client = api.AccuAuthClient("https://cloudapi.example", "my-id", "s3cr3t-value")
    assert "s3cr3t-value" not in repr(client)
    aclient = api.AsyncAccuAuthClient("https://cloudapi.example", "my-id", "s3cr3t-value")
    assert "s3cr3t-value" not in repr(aclient)
    with pytest.raises(ValueError, match="API secret"):
        api.AccuAuthClient("https://cloudapi.example", "my-id", "")


def test_retry_policy_is_the_shared_one_full_jitter_and_bounded():
    from phonecheck.vendor_errors import RetryPolicy

    assert api.RetryPolicy is RetryPolicy  # one policy for both vendors' clients
    policy = api.RetryPolicy(attempts=4, multiplier_s=1.0, max_wait_s=5.0)
    kwargs = policy.kwargs(paid=False)
    assert kwargs["reraise"] is True
    assert policy.limit_for(api.AccuAuthRateLimited("RATE_LIMIT_EXCEEDED", None)) == 4
    client = api.AccuAuthClient("https://cloudapi.example", "my-id", "s3cr3t-value", retry=policy)
    assert client.retry is policy


def test_webhook_url_from_arguments_or_environment(monkeypatch):
    monkeypatch.delenv("TELCO_WEBHOOK_BASE_URL", raising=False)
    assert webhook_url(ACCUAUTH_PHONE_NUMBER) is None  # nothing configured: no callback
    url = webhook_url(ACCUAUTH_PHONE_NUMBER, base_url="https://hooks.example/telco-webhooks/", token="t/k n")
    assert url == "https://hooks.example/telco-webhooks/accuauth/phone-number/t%2Fk%20n"
    assert redact(url) == "https://hooks.example/telco-webhooks/accuauth/phone-number/***"
    monkeypatch.setenv("TELCO_WEBHOOK_BASE_URL", "https://env.example/telco-webhooks")
    monkeypatch.setenv("TELCO_WEBHOOK_TOKEN", "envtok")
    assert (
        webhook_url(ACCUAUTH_PHONE_NUMBER)
        == "https://env.example/telco-webhooks/accuauth/phone-number/envtok"
    )
    monkeypatch.setenv("TELCO_WEBHOOK_TOKEN", "")
    with pytest.raises(ValueError, match="TELCO_WEBHOOK_TOKEN"):
        webhook_url(ACCUAUTH_PHONE_NUMBER)


def test_wait_outcome_is_counts_only_whatever_the_number_of_tasks():
    outcome = WaitOutcome(finished_by_poll=9_000, ended_by_vendor=10, finished_elsewhere=900, expired=90)
    outcome.doubts_settled, outcome.doubts_unsettled, outcome.polls = 2, 1, 40_000
    stats = json.loads(json.dumps(outcome.stats()))  # what travels through the metadata DB
    assert stats["tasks"] == 10_000 and stats["doubts_unsettled"] == 1
    assert all(isinstance(v, int | float) for v in stats.values())
    assert len(json.dumps(stats)) < 400


def test_wait_settings_are_validated():
    with pytest.raises(ValueError):
        WaitSettings(poll_interval_s=10, max_poll_interval_s=5)
    with pytest.raises(ValueError):
        WaitSettings(max_requests_per_second=0)


def test_rate_limiter_spaces_call_starts():
    """With a fake clock: starts are granted 1/rate apart, whatever the burst."""
    now = [100.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))

    async def burst() -> None:
        limiter = RateLimiter(4.0, clock=lambda: now[0])
        original = asyncio.sleep
        asyncio.sleep = fake_sleep  # type: ignore[assignment]
        try:
            for _ in range(4):
                await limiter.acquire()
        finally:
            asyncio.sleep = original  # type: ignore[assignment]

    asyncio.run(burst())
    assert slept == [0.25, 0.5, 0.75]


def test_a_5xx_on_the_paid_submit_is_an_unknown_outcome_never_retried_but_on_a_poll_it_is_retried():
    raw = api.RawAnswer(
        api.SUBMIT_PATH, {"phone_number": "52"}, 500, "application/json", body("INTERNAL_ERROR")
    )
    with pytest.raises(api.AccuAuthOutcomeUnknown) as lost:
        api._classify_raw(raw, idempotent=False)
    assert not api.is_retryable(lost.value) and lost.value.raw is raw
    with pytest.raises(api.AccuAuthServerError) as polled:
        api._classify_raw(raw, idempotent=True)
    assert api.is_retryable(polled.value)
    # a refusal for rate is no processing: retried on the submit too
    limited = api.RawAnswer(api.SUBMIT_PATH, {}, 403, None, body("RATE_LIMIT_EXCEEDED"))
    with pytest.raises(api.AccuAuthRateLimited) as refused:
        api._classify_raw(limited, idempotent=False)
    assert api.is_retryable(refused.value)


def test_a_connection_that_never_opened_is_safe_to_retry_one_lost_after_sending_is_not():
    def lost(sent: bool, idempotent: bool) -> api.AccuAuthError:
        error = api.AccuAuthTransportError("TIMEOUT", "ReadTimeout", path="/p")
        error.may_have_landed = sent
        return api.maybe_charged(error, idempotent=idempotent, raw=None)

    assert type(lost(sent=False, idempotent=False)) is api.AccuAuthTransportError
    unknown = lost(sent=True, idempotent=False)
    assert type(unknown) is api.AccuAuthOutcomeUnknown and "may have been processed" in str(unknown)
    assert type(lost(sent=True, idempotent=True)) is api.AccuAuthTransportError


@pytest.mark.parametrize(
    ("echo", "e164"),
    [
        ("00525512345678", "+525512345678"),
        ("+525512345678", "+525512345678"),
        ("525512345678", "+525512345678"),
        ("0062********", None),
        ("", None),
    ],
)
def test_an_echo_is_read_only_to_match_a_callback(echo, e164):
    from phonecheck.parsers.accuauth import echo_to_e164

    assert echo_to_e164(echo) == e164


def test_country_codes_outside_the_connection_are_rejected_with_a_reason():
    from phonecheck.accuauth.submit import parse_country_codes, split_by_country
    from phonecheck.numbers import normalise

    assert parse_country_codes(None) == ("52",)
    assert parse_country_codes("+52, 57") == ("52", "57")
    with pytest.raises(ValueError):
        parse_country_codes("MX")
    numbers = [normalise("+525512345678"), normalise("+573001234567")]
    keep, rejected = split_by_country(numbers, ("52",))
    assert [n.e164 for n in keep] == ["+525512345678"]
    assert [r.raw for r in rejected] == ["+573001234567"]
    assert "+57" in rejected[0].reason and "+52" in rejected[0].reason
