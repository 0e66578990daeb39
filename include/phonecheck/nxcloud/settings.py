"""NXCLOUD number-check constants and the client settings read from a connection (no Airflow).

The hook (:mod:`phonecheck_airflow.hooks.nxcloud`) builds :class:`NxCloudSettings`; the client
(:mod:`phonecheck.nxcloud.client`) and the query calls (:mod:`phonecheck.nxcloud.query`) read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from phonecheck.signing import SignAlgorithm

NUMBER_CHECK_BIZ_TYPE = "1"
NUMBER_CHECK_ACTION = "numbercheck"
SUBMIT_PATH = "/api/number/check"
QUERY_PATH = "/api/number/query"
MAX_PAGE_SIZE = 100
#: The vendor refuses a ``ts`` further than this from its clock (code 1004, docs/vendors/nxcloud.md).
TS_WINDOW_S = 60.0
#: How many days back the query API answers (docs/vendors/nxcloud.md, "Query API").
QUERY_WINDOW_DAYS = 14
#: The vendor does not say in which timezone the query API's ``date`` is. These are the
#: candidates we look a batch up under (docs/vendors/nxcloud.md, "what the vendor leaves open").
CANDIDATE_TIMEZONES = ("UTC", "Asia/Shanghai")
#: Results are pushed "10 s to 5 min" after a submit (docs/vendors/nxcloud.md, "Result push").
PUSH_WINDOW_S = 300.0
#: What we add to that window before a batch in doubt is submitted again.
IN_DOUBT_MARGIN_S = 300.0
#: Share of the query interval added to our spacing of query calls (3 %: 90 ms at the 3 s limit).
QUERY_ARRIVAL_MARGIN = 0.03


@dataclass(frozen=True)
class NxCloudSettings:
    """What the client needs from a connection. ``repr`` never shows the secret."""

    base_url: str
    access_key: str = field(repr=False)
    access_secret: str = field(repr=False)
    appkey: str | None = field(default=None, repr=False)
    sign_algorithm: SignAlgorithm = "md5"
    query_timezone: str = "UTC"
    query_min_interval_s: float = 3.0
    push_window_s: float = PUSH_WINDOW_S
    in_doubt_margin_s: float = IN_DOUBT_MARGIN_S

    @property
    def query_spacing_s(self) -> float:
        """Seconds our limiter leaves between two query calls: the vendor's interval plus
        :data:`QUERY_ARRIVAL_MARGIN`. The vendor can only measure when calls arrive; calls sent
        exactly one interval apart arrive closer than that about half the time (network and
        scheduling jitter), and each refused call costs a slot of its own."""
        return self.query_min_interval_s * (1 + QUERY_ARRIVAL_MARGIN)

    @property
    def in_doubt_after_s(self) -> float:
        """Seconds after a lost submit answer before that batch may be submitted again."""
        return self.push_window_s + self.in_doubt_margin_s


class Limiter(Protocol):
    """Spaces calls: ``acquire`` blocks until the next call may start."""

    def acquire(self) -> float: ...
