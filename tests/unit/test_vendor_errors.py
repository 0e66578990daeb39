"""The one error taxonomy and retry policy (``phonecheck.vendor_errors``) over both vendors' errors:
final, transient, maybe charged; transport failures read by type, not text (no services: the
transport failures are real ones against sockets of this process)."""

from __future__ import annotations

import asyncio
import socket

import pytest
import requests

from phonecheck.accuauth import api
from phonecheck.nxcloud.errors import (
    NxCloudAuthError,
    NxCloudBadRequestError,
    NxCloudRateLimited,
    NxCloudServerError,
    error_for_code,
)
from phonecheck.nxcloud.wire import transport_error
from phonecheck.vendor_errors import Failure, RetryPolicy, VendorError, classify, never_sent


def _landed(exc, landed: bool = True):
    exc.may_have_landed = landed
    return exc


@pytest.mark.parametrize(
    ("exc", "free", "paid"),
    [
        # final whatever the call
        (NxCloudAuthError("submit", "code 1003", code=1003), Failure.FINAL, Failure.FINAL),
        (NxCloudBadRequestError("query", "code 88", code=88), Failure.FINAL, Failure.FINAL),
        (api.AccuAuthUnauthorized("UNAUTHORIZED", None), Failure.FINAL, Failure.FINAL),
        (api.AccuAuthInvalidArgument("INVALID_ARGUMENT", None), Failure.FINAL, Failure.FINAL),
        (ValueError("not a vendor error"), Failure.FINAL, Failure.FINAL),
        # refused for rate or never sent: the vendor did nothing, retried even when paid
        (NxCloudRateLimited("submit", "HTTP 429"), Failure.TRANSIENT, Failure.TRANSIENT),
        (api.AccuAuthRateLimited("RATE_LIMIT_EXCEEDED", None), Failure.TRANSIENT, Failure.TRANSIENT),
        (_landed(NxCloudServerError("submit", "refused"), False), Failure.TRANSIENT, Failure.TRANSIENT),
        (_landed(api.AccuAuthTransportError("TRANSPORT", "x"), False), Failure.TRANSIENT, Failure.TRANSIENT),
        # reached the vendor, answer lost or 5xx: free calls retried, paid ones maybe charged
        (_landed(NxCloudServerError("submit", "HTTP 502")), Failure.TRANSIENT, Failure.MAYBE_CHARGED),
        (error_for_code("submit", 299, "system error"), Failure.TRANSIENT, Failure.MAYBE_CHARGED),
        (api.AccuAuthServerError("INTERNAL_ERROR", None), Failure.TRANSIENT, Failure.MAYBE_CHARGED),
        (_landed(api.AccuAuthTransportError("TIMEOUT", "x")), Failure.TRANSIENT, Failure.MAYBE_CHARGED),
        (api.AccuAuthOutcomeUnknown("TIMEOUT", "x"), Failure.FINAL, Failure.MAYBE_CHARGED),
    ],
)
def test_one_classifier_for_both_vendors(exc, free, paid):
    assert classify(exc, paid=False) is free
    assert classify(exc, paid=True) is paid


@pytest.fixture
def refusing_port():
    """A port this process holds bound but not listening: connecting to it is refused, and no
    other process can take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_a_refused_connection_was_never_sent_and_a_silent_server_may_have_been(request, refusing_port):
    with pytest.raises(requests.ConnectionError) as refused:
        requests.post(f"http://127.0.0.1:{refusing_port}/x", data=b"{}", timeout=5)
    assert never_sent(refused.value)
    assert not transport_error("submit", refused.value, 5).may_have_landed

    silent = socket.socket()  # accepts (kernel backlog) and never answers: the request went out
    request.addfinalizer(silent.close)
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    with pytest.raises(requests.ReadTimeout) as lost:
        requests.post(f"http://127.0.0.1:{silent.getsockname()[1]}/x", data=b"{}", timeout=(5, 0.2))
    assert not never_sent(lost.value)
    err = transport_error("submit", lost.value, 0.2)
    assert err.may_have_landed and classify(err, paid=True) is Failure.MAYBE_CHARGED


def test_aiohttp_refusals_are_read_the_same_way(refusing_port):
    import aiohttp

    async def refused() -> BaseException:
        async with aiohttp.ClientSession() as session:
            try:
                await session.post(f"http://127.0.0.1:{refusing_port}/x", data=b"{}")
            except aiohttp.ClientError as exc:
                return exc
        raise AssertionError("the connection was not refused")

    exc = asyncio.run(refused())
    assert isinstance(exc, aiohttp.ClientConnectorError) and never_sent(exc)


class _Flaky:
    """Raises the given errors in turn, then answers."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "answer"


NO_WAIT = {"multiplier_s": 0.0, "max_wait_s": 0.0}


def test_the_policy_retries_transient_failures_and_never_a_paid_call_that_may_have_landed():
    policy = RetryPolicy(attempts=3, **NO_WAIT)
    free = _Flaky(_landed(NxCloudServerError("query", "HTTP 502")), NxCloudRateLimited("query", "429"))
    assert policy.retrying(paid=False)(free) == "answer" and free.calls == 3

    paid = _Flaky(_landed(NxCloudServerError("submit", "HTTP 502")))
    with pytest.raises(NxCloudServerError):
        policy.retrying(paid=True)(paid)
    assert paid.calls == 1  # never blindly repeated

    final = _Flaky(NxCloudAuthError("query", "code 1003", code=1003))
    with pytest.raises(NxCloudAuthError):
        policy.retrying(paid=False)(final)
    assert final.calls == 1


def test_rate_refusals_have_their_own_budget_and_the_async_loop_is_the_same_policy():
    policy = RetryPolicy(attempts=2, rate_limit_attempts=4, **NO_WAIT)
    limited = _Flaky(*(NxCloudRateLimited("query", "429") for _ in range(5)))
    retried: list[BaseException | None] = []
    with pytest.raises(NxCloudRateLimited):
        policy.retrying(paid=False, on_retry=retried.append)(limited)
    assert limited.calls == 4 and len(retried) == 3

    server = _Flaky(*(api.AccuAuthServerError("INTERNAL_ERROR", None) for _ in range(5)))

    async def call() -> str:
        return server()

    with pytest.raises(api.AccuAuthServerError):
        asyncio.run(policy.async_retrying(paid=False)(call))
    assert server.calls == 2


def test_vendor_errors_share_one_base():
    assert issubclass(api.AccuAuthError, VendorError) and issubclass(NxCloudServerError, VendorError)
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
