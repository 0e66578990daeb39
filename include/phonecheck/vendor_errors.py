"""One error taxonomy and one retry policy for both vendors' clients (plain Python, no Airflow).

Every failed vendor call is one of three kinds (:class:`Failure`; docs/development.md, "Hooks,
clients and errors"):

* ``FINAL``: a retry sends the same refused request (credentials, bad input, balance, unknown
  answers). Raised at once.
* ``TRANSIENT``: the vendor did not act on the call (connection never opened, rate refusal), or
  the call is free (a query or poll): retried with full-jitter backoff.
* ``MAYBE_CHARGED``: a *paid* call went out and its answer was lost or was a server error: the
  vendor may have processed and charged it. Never retried blindly; the caller settles it
  (NXCLOUD's in-doubt batches, AccuAuth's in-doubt submits: docs/vendors/).

Each vendor's exceptions derive from :class:`VendorError` and say two things about themselves:
``retryable`` (the kind of answer is worth another attempt) and ``may_have_landed`` (the request
reached the vendor, whose answer we do not have). :func:`classify` alone turns that, and whether
the call is paid, into a :class:`Failure`; :class:`RetryPolicy` retries exactly the transient ones.
Transport failures are read by type and cause chain (:func:`never_sent`), never by message text.
"""

from __future__ import annotations

import enum
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import tenacity

log = logging.getLogger(__name__)


class Failure(enum.StrEnum):
    """What a failed vendor call means for the caller."""

    FINAL = "final"
    TRANSIENT = "transient"
    MAYBE_CHARGED = "maybe_charged"


class VendorError(Exception):
    """Base of every vendor client error (NXCLOUD, AccuAuth)."""

    #: The kind of answer is worth another attempt (rate limits, 5xx, network failures).
    retryable: ClassVar[bool] = False
    #: A refusal for rate: retried with its own attempt budget (``RetryPolicy.rate_limit_attempts``).
    rate_limited: ClassVar[bool] = False
    #: The request reached the vendor and its answer was lost or was a server error: the vendor
    #: may have acted on it. Set per exception by the client that raised it.
    may_have_landed: bool = False
    #: Seconds the vendor asked us to wait (``Retry-After``), when it said.
    retry_after: float | None = None


def classify(exc: BaseException, *, paid: bool) -> Failure:
    """The one classifier: ``exc`` raised by a call that is ``paid`` (a submit) or free."""
    if not isinstance(exc, VendorError):
        return Failure.FINAL
    if paid and exc.may_have_landed:
        return Failure.MAYBE_CHARGED
    return Failure.TRANSIENT if exc.retryable else Failure.FINAL


#: Exception types (module, names) meaning "the connection could not be opened": nothing was sent.
_NOT_SENT_TYPES = (
    ("requests", ("ConnectTimeout",)),
    ("urllib3.exceptions", ("NewConnectionError", "ConnectTimeoutError")),  # refused, DNS, connect timeout
    ("aiohttp", ("ClientConnectorError",)),
)


def _not_sent_types() -> tuple[type[BaseException], ...]:
    # Only modules already imported: an exception of a module nobody imported cannot occur, and a
    # blocking task should not pay for importing aiohttp (nor the trigger for requests).
    found: list[type[BaseException]] = []
    for module_name, names in _NOT_SENT_TYPES:
        module = sys.modules.get(module_name)
        if module is not None:
            found.extend(getattr(module, name) for name in names if hasattr(module, name))
    return tuple(found)


def never_sent(exc: BaseException) -> bool:
    """True when a transport failure happened before anything reached the vendor (connection
    refused, name not resolved, connect timeout), read from the exception and its cause chain
    (``args``, urllib3's ``reason``, ``__cause__``, ``__context__``)."""
    types = _not_sent_types()
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, types):
            return True
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        todo.extend(
            getattr(current, attr)
            for attr in ("reason", "__cause__", "__context__")
            if isinstance(getattr(current, attr, None), BaseException)
        )
    return False


def _exception(state: tenacity.RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome else None


@dataclass(frozen=True)
class RetryPolicy:
    """Full-jitter exponential backoff over :func:`classify`: attempt n waits U(0, min(max_wait_s,
    multiplier_s * 2**n)), or at least what the vendor asked (``retry_after``, capped at max_wait_s).

    :param attempts: attempts per call, the first included.
    :param multiplier_s: backoff base in seconds.
    :param max_wait_s: longest wait between two attempts.
    :param rate_limit_attempts: attempts for a call refused for its rate (default: ``attempts``).
    """

    attempts: int = 6
    multiplier_s: float = 0.5
    max_wait_s: float = 30.0
    rate_limit_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1 or (self.rate_limit_attempts is not None and self.rate_limit_attempts < 1):
            raise ValueError("attempts and rate_limit_attempts must be >= 1")

    def wait(self, state: tenacity.RetryCallState) -> float:
        """Seconds before the next attempt (a tenacity wait strategy)."""
        jitter = tenacity.wait_random_exponential(multiplier=self.multiplier_s, max=self.max_wait_s)
        seconds = jitter(state)
        retry_after = getattr(_exception(state), "retry_after", None)
        if retry_after:
            seconds = max(seconds, min(float(retry_after), self.max_wait_s))
        return seconds

    def limit_for(self, exc: BaseException | None) -> int:
        """Attempts allowed for a call whose last attempt raised ``exc``."""
        if self.rate_limit_attempts is not None and getattr(exc, "rate_limited", False):
            return self.rate_limit_attempts
        return self.attempts

    def kwargs(
        self,
        *,
        paid: bool,
        vendor: str = "vendor",
        on_retry: Callable[[BaseException | None], None] | None = None,
    ) -> dict[str, Any]:
        """Arguments of ``tenacity.Retrying`` / ``AsyncRetrying`` for one call.

        :param paid: the call is charged: a failure that may have landed is never retried.
        :param vendor: names the call in the retry log line (never a secret or a body).
        :param on_retry: told each retried failure (the clients count rate refusals and retries).
        """

        def retry(state: tenacity.RetryCallState) -> bool:
            exc = _exception(state)
            return exc is not None and classify(exc, paid=paid) is Failure.TRANSIENT

        def stop(state: tenacity.RetryCallState) -> bool:
            return state.attempt_number >= self.limit_for(_exception(state))

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = _exception(state)
            if on_retry is not None:
                on_retry(exc)
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "%s attempt %d failed: %s; retrying in %.2f s", vendor, state.attempt_number, exc, wait
            )

        return {
            "retry": retry,
            "stop": stop,
            "wait": self.wait,
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def retrying(self, **kwargs: Any) -> tenacity.Retrying:
        """A blocking ``tenacity.Retrying`` (arguments as :meth:`kwargs`)."""
        return tenacity.Retrying(**self.kwargs(**kwargs))

    def async_retrying(self, **kwargs: Any) -> tenacity.AsyncRetrying:
        """An asyncio ``tenacity.AsyncRetrying`` (arguments as :meth:`kwargs`)."""
        return tenacity.AsyncRetrying(**self.kwargs(**kwargs))
