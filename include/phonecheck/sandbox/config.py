"""Sandbox configuration: credentials, the compressed vendor clock, push and AccuAuth timing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

PushShape = Literal["2023", "2024"]
# "default": the documents' most convenient reading, fast. "strict": wherever the vendor
# documents leave a behaviour open, the sandbox plays the side that hurts a careless client
# (see docs/sandbox.md, "Strict profile").
VendorProfile = Literal["default", "strict"]


@dataclass(frozen=True)
class SandboxConfig:
    """Everything the sandbox can be told at start; most of it can be changed per run.

    ``POST /_sandbox/settings`` replaces any of these fields for the current run and
    ``POST /_sandbox/reset`` restores the values the process was started with.
    """

    # NXCLOUD signed APIs (number check): accessKey / accessSecret and the application key.
    nxcloud_access_key: str = "sandbox-access-key"
    nxcloud_access_secret: str = "sandbox-access-secret"
    nxcloud_appkey: str = "sandbox-appkey"
    # More accessKey -> accessSecret pairs accepted (e.g. the vendor's test-vector credentials).
    nxcloud_extra_credentials: dict[str, str] = field(default_factory=dict)
    # An appkey that exists but belongs to another customer: answered with code 210.
    nxcloud_foreign_appkey: str = "sandbox-foreign-appkey"
    # Legacy form APIs (voice) authenticate with appkey + secretkey form fields.
    nxcloud_voice_secretkey: str = "sandbox-voice-secretkey"
    # AccuAuth static header credentials; the expired id is answered 401 KEY_EXPIRED.
    accuauth_api_id: str = "sandbox-api-id"
    accuauth_api_secret: str = "sandbox-api-secret"
    accuauth_expired_api_id: str = "sandbox-expired-api-id"

    # Real seconds per vendor minute: the retry schedule runs on this compressed clock.
    vendor_minute_s: float = 1.0
    push_retry_minutes: int = 60  # retry every vendor minute for this many vendor minutes
    push_delay_s: float = 0.0  # real seconds between submit and the first push attempt
    # While true no push attempt starts (first attempts and retries wait, in order): a test
    # holds the pushes until the client is where it wants the results to find it, instead of
    # guessing a delay that a slow machine outruns.
    pushes_held: bool = False
    push_concurrency: int = 32  # push attempts in flight at once
    push_timeout_s: float = 10.0
    push_shape: PushShape = "2023"  # default shape of number-check pushes (per batch: header)

    ts_window_s: float = 60.0
    query_window_days: int = 14
    # Seconds between two query calls of one accessKey; a faster call is refused with code 88.
    # Default profile: this setting (0 = no limit). Strict profile: at least
    # strict_query_min_interval_s, the documented one call every 3 s (docs/vendors/nxcloud.md).
    query_min_interval_s: float = 0.0
    strict_query_min_interval_s: float = 3.0
    max_numbers_per_submit: int = 5000

    # AccuAuth pending tasks: None = per number (outcomes.accuauth_pending_polls).
    accuauth_pending_polls: int | None = None
    # A pending task also finishes (and calls back) once this many sandbox seconds have
    # passed; None = pending polls x accuauth_seconds_per_poll.
    accuauth_pending_seconds: float | None = None
    accuauth_seconds_per_poll: float = 2.0
    accuauth_task_ttl_s: float = 24 * 3600.0

    # Where voice receipts and PNS call records go (vendor side: configured on the account).
    voice_dr_url: str | None = None
    pns_push_url: str | None = None

    # Which reading of the vendor documents the sandbox plays (see VendorProfile).
    profile: VendorProfile = "default"
    # NXCLOUD, strict profile: vendor minutes between a submit and the query API listing its
    # rows (the default profile lists them at once).
    strict_query_lag_minutes: float = 5.0

    log_limit: int = 200_000  # entries kept in the call and push logs

    def replace(self, changes: dict[str, Any]) -> SandboxConfig:
        """A copy with ``changes`` applied; unknown names are a ValueError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown sandbox setting(s): {', '.join(unknown)}")
        if "push_shape" in changes and changes["push_shape"] not in ("2023", "2024"):
            raise ValueError("push_shape must be '2023' or '2024'")
        if "profile" in changes and changes["profile"] not in ("default", "strict"):
            raise ValueError("profile must be 'default' or 'strict'")
        return dataclasses.replace(self, **changes)

    def public(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
