"""Fault injection: deterministic rules chosen per run (``POST /_sandbox/faults``) or per call.

A rule is ``{"target", "kind", ...}``:

* ``target``: a dotted prefix of the event it applies to. Vendor calls are ``nxcloud.check``,
  ``nxcloud.query``, ``nxcloud.voice``, ``accuauth.submit``, ``accuauth.task_result``; pushes
  are ``push.number_check``, ``push.voice_receipt``, ``push.pns_call_record``,
  ``push.accuauth_callback``. ``nxcloud`` matches every NXCLOUD call, ``*`` everything.
* ``kind``:
    - ``rate_limit``: NXCLOUD answers HTTP 429 ``{"code": 429, ...}``; AccuAuth HTTP 403
      ``RATE_LIMIT_EXCEEDED``.
    - ``error``: HTTP ``status`` (default 500); NXCLOUD body ``{"code": 299, "msg": "system
      error"}``, AccuAuth ``INTERNAL_ERROR``.
    - ``code``: NXCLOUD answers HTTP 200 with vendor ``code`` (e.g. 204, 211, 288); AccuAuth
      answers ``accuauth_status`` (``KEY_EXPIRED``, ``NO_PERMISSION``, ``OUT_OF_QUOTA`` ...)
      with its documented HTTP status.
    - ``slow``: wait ``delay_s`` real seconds, then answer normally (stacks with the others).
    - ``lost`` (AccuAuth submit): the call is processed (charged, the task created, its
      callback will come) and then its answer is lost: HTTP ``status`` with an ``INTERNAL_ERROR``
      body when ``status`` is given; else the connection is dropped mid-answer, after holding it
      ``delay_s`` seconds (a client with a shorter read timeout sees a timeout).
    - ``drop`` (pushes): the push is never sent. ``duplicate`` (pushes): sent twice.
    - ``disconnect`` (``nxcloud.check``): the connection closes before the answer is complete.
    On ``nxcloud.check`` the strict profile applies ``error``, ``slow`` and ``disconnect``
    AFTER the batch was accepted and charged (the answer is lost, the charge is not).
* which events: the first ``count`` matching events after skipping ``after`` of them; or a
  ``fraction`` drawn from ``random.Random(seed)`` (reproducible); or, with neither, every event.

A single call can also carry ``X-Sandbox-Fault: <kind>[;status=N][;delay_s=S][;code=N]``.
Clock skew is not a rule: ``POST /_sandbox/clock``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

KINDS = ("rate_limit", "error", "code", "slow", "lost", "drop", "duplicate", "disconnect")


@dataclass
class FaultRule:
    target: str
    kind: str
    count: int | None = None
    after: int = 0
    fraction: float | None = None
    seed: int = 0
    status: int | None = None
    delay_s: float = 0.0
    code: int | None = None
    accuauth_status: str | None = None
    seen: int = 0
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind must be one of {KINDS}, not {self.kind!r}")
        if self.fraction is not None and not 0 <= self.fraction <= 1:
            raise ValueError("fraction must be between 0 and 1")
        self._rng = random.Random(self.seed)

    @classmethod
    def from_json(cls, spec: dict[str, Any]) -> FaultRule:
        allowed = {"target", "kind", "count", "after", "fraction", "seed", "status", "delay_s", "code"}
        allowed.add("accuauth_status")
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        return cls(**spec)

    def matches(self, event: str) -> bool:
        return self.target in ("*", "") or event == self.target or event.startswith(self.target + ".")

    def fires(self) -> bool:
        """Count one matching event and say whether the fault applies to it."""
        self.seen += 1
        if self.seen <= self.after:
            return False
        if self.count is not None:
            hit = self.seen - self.after <= self.count
        elif self.fraction is not None:
            hit = self._rng.random() < self.fraction
        else:
            hit = True
        self.fired += hit
        return hit

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


@dataclass
class Decision:
    """What the faults decided for one event: an extra delay and at most one other fault."""

    delay_s: float = 0.0
    fault: FaultRule | None = None


class Faults:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def set(self, specs: list[dict[str, Any]]) -> None:
        self.rules = [FaultRule.from_json(spec) for spec in specs]

    def add(self, specs: list[dict[str, Any]]) -> None:
        self.rules.extend(FaultRule.from_json(spec) for spec in specs)

    def decide(self, event: str, header: str | None = None) -> Decision:
        decision = Decision()
        rules = [r for r in self.rules if r.matches(event)]
        if header:
            rules.insert(0, parse_fault_header(header, event))
        for rule in rules:
            if not rule.fires():
                continue
            if rule.kind == "slow":
                decision.delay_s += rule.delay_s
            elif decision.fault is None:
                decision.fault = rule
        return decision


def parse_fault_header(value: str, event: str) -> FaultRule:
    kind, *params = [part.strip() for part in value.split(";") if part.strip()]
    spec: dict[str, Any] = {"target": event, "kind": kind}
    for param in params:
        name, _, raw = param.partition("=")
        if name in ("status", "code"):
            spec[name] = int(raw)
        elif name == "delay_s":
            spec[name] = float(raw)
        elif name == "accuauth_status":
            spec[name] = raw
        else:
            raise ValueError(f"unknown X-Sandbox-Fault parameter {name!r}")
    return FaultRule.from_json(spec)
