"""NXCLOUD answers mapped to exceptions.

Messages carry the action, the vendor code, its documented meaning and the vendor's own text,
never a header, the body we sent (it holds the webhook token in ``drUrl``), the secret or the
signature. Every class derives from :class:`phonecheck.vendor_errors.VendorError`, so
:func:`phonecheck.vendor_errors.classify` sorts them into final / transient / maybe-charged the
same way as AccuAuth's:

* transient (:class:`NxCloudTransientError`): HTTP 5xx, timeouts, connection errors, HTTP 429
  and the vendor's rate-limit answers (code 429, and code 88 unless its text names a permanent
  error), and vendor codes 206/299 ("internal check-service call failed" / "system error");
* everything else is final: auth 1001-1005, bad request (201, 203, 205, 207, 212, 202, 210, and
  88 whose text names the date, its format or range, or a parameter), balance (204, 211), and
  unknown codes.

Code 88 is the query API's one refusal code for everything: a bad date, a missing parameter,
and (newer documents) calling more often than once every 3 s. Its text is free-form and may be
Chinese, so we do not wait for the word "frequent": a code 88 is a refusal worth retrying with
backoff unless the text names a permanent error in English or Chinese
(docs/vendors/nxcloud.md, "Codes").
"""

from __future__ import annotations

from phonecheck.enums import NXCLOUD_AUTH_CODE, NXCLOUD_QUERY_CODE, NXCLOUD_SUBMIT_CODE
from phonecheck.vendor_errors import VendorError

AUTH_CODES = frozenset(NXCLOUD_AUTH_CODE.values)
BALANCE_CODES = frozenset({204, 211})
BAD_REQUEST_CODES = frozenset({88, 201, 202, 203, 205, 207, 210, 212, 288})
SERVER_CODES = frozenset({206, 299})
RATE_LIMIT_CODES = frozenset({429})
#: Words of a code 88 text that make it permanent (a retry sends the same wrong request).
PERMANENT_88_WORDS = (
    "date", "format", "param", "range", "empty", "required", "invalid", "illegal", "must be",
    "日期", "格式", "参数", "范围", "不能为空", "为空", "必填", "不合法", "非法",
)  # fmt: skip


def code_meaning(code: int | None) -> str:
    for codes in (NXCLOUD_AUTH_CODE, NXCLOUD_SUBMIT_CODE, NXCLOUD_QUERY_CODE):
        meaning = codes.meaning(code)
        if meaning:
            return meaning
    if code in RATE_LIMIT_CODES:
        return "rate limited"
    return "undocumented code"


class NxCloudError(VendorError):
    """An NXCLOUD call failed. ``code`` is the vendor code (None for HTTP-level failures)."""

    def __init__(self, action: str, message: str, *, code: int | None = None, http_status: int | None = None):
        self.action = action
        self.code = code
        self.http_status = http_status
        super().__init__(message)


class NxCloudAuthError(NxCloudError):
    """1001-1005: credentials, signature, clock (``ts``) or permissions; retrying will not help."""


class NxCloudBadRequestError(NxCloudError):
    """The vendor refused the request's content (parameters, appkey, date, batchNo...)."""


class NxCloudBalanceError(NxCloudError):
    """204 / 211: charging failed or the balance is too low. Top up, then run again."""


class NxCloudUnknownError(NxCloudError):
    """A code the documents do not list, or an answer we cannot read."""


class NxCloudTransientError(NxCloudError):
    """Worth retrying with a fresh signature: 5xx, timeouts, connection errors, rate limits."""

    retryable = True


class NxCloudRateLimited(NxCloudTransientError):
    """HTTP 429 or a vendor rate-limit code: the call was not processed."""

    rate_limited = True


class NxCloudServerError(NxCloudTransientError):
    """HTTP 5xx, vendor 206/299, a timeout or a broken connection."""


def is_permanent_88(msg: str | None) -> bool:
    """Whether a code 88 text names an error a retry cannot fix (date, format, parameters)."""
    text = (msg or "").lower()
    return any(word in text for word in PERMANENT_88_WORDS)


def is_rate_limit_answer(code: int | None, msg: str | None) -> bool:
    if code in RATE_LIMIT_CODES:
        return True
    return code == 88 and not is_permanent_88(msg)


def error_for_code(
    action: str, code: int | None, msg: str | None, *, http_status: int | None = None
) -> NxCloudError:
    """The exception for a non-zero vendor ``code`` (``msg`` is the vendor's text)."""
    text = (msg or "").strip()[:300]
    detail = f"NXCLOUD {action}: code {code} ({code_meaning(code)})" + (f": {text}" if text else "")
    if is_rate_limit_answer(code, msg):
        return NxCloudRateLimited(action, detail, code=code, http_status=http_status)
    if code in AUTH_CODES:
        hint = {
            1003: " - check the access secret and the signing algorithm of the connection",
            1004: " - the worker clock is more than 60 s off the vendor's: sync it (NTP)",
            1005: " - check the access key and the account's number-check permission",
        }.get(code, "")
        return NxCloudAuthError(action, detail + hint, code=code, http_status=http_status)
    if code in BALANCE_CODES:
        return NxCloudBalanceError(
            action, detail + " - top up the NXCLOUD account", code=code, http_status=http_status
        )
    if code in SERVER_CODES:
        err = NxCloudServerError(action, detail, code=code, http_status=http_status)
        err.may_have_landed = True  # the vendor answered: it may have charged before failing
        return err
    if code in BAD_REQUEST_CODES:
        return NxCloudBadRequestError(action, detail, code=code, http_status=http_status)
    return NxCloudUnknownError(action, detail, code=code, http_status=http_status)
