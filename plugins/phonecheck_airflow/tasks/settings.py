"""Vendor limits and operator tuning, read in one place: the vendor connection's extras.

A vendor's limits are per account (one rate and one concurrency for every run of the access
key), so they live on the connection, not in each run's form (docs/pipelines.md, "Settings").
:func:`run_settings` reads them for a run:

1. the connection's extra of that name, else the default below;
2. the same name given in the run's conf (the params these settings had before they moved to
   the connection, kept for one release): a *limit* (``tighten="min"``) is only ever lowered by
   it, never raised; plain tuning (poll intervals, waits) is replaced by it.

The result is a small dict of numbers (fit for XCom and for the sensors' templates).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from phonecheck_airflow.conn_ids import ACCUAUTH_CONN_ID, NXCLOUD_CONN_ID

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setting:
    name: str
    default: float
    #: "min": a run may lower the account's value, never raise it; None: a run may replace it.
    tighten: str | None = None
    integer: bool = False
    #: the value the vendor documents as the most it accepts (a connection cannot exceed it).
    ceiling: float | None = None

    def cast(self, value: Any) -> float | int:
        number = float(value)
        if self.ceiling is not None:
            number = min(number, self.ceiling)
        return int(number) if self.integer else number


#: Per vendor: the extras (and, for one release, the conf names) a run's settings come from.
SETTINGS: dict[str, tuple[Setting, ...]] = {
    "accuauth": (
        Setting("submit_concurrency", 8, tighten="min", integer=True, ceiling=64),
        Setting("max_requests_per_second", 10.0, tighten="min"),
        Setting("poll_interval_s", 30.0),
        Setting("max_poll_interval_s", 900.0),
        Setting("warehouse_check_interval_s", 30.0),
        Setting("in_doubt_window_s", 1800.0),
        Setting("approval_timeout_minutes", 1440),
    ),
    "nxcloud": (
        Setting("max_per_chunk", 5000, tighten="min", integer=True, ceiling=5000),
        Setting("wait_poll_seconds", 10.0),
        Setting("wait_timeout_minutes", 75.0),
        Setting("approval_timeout_minutes", 1440),
    ),
}

DEFAULT_CONN_IDS = {"accuauth": ACCUAUTH_CONN_ID, "nxcloud": NXCLOUD_CONN_ID}


def connection_extras(conn_id: str) -> dict[str, Any]:
    """The connection's extras, read as the vendor hooks read them (plain or
    ``extra__<conn_type>__`` names, empty values dropped); ``{}`` when the connection does not
    exist (the paid call fails later with its own message)."""
    from airflow.sdk import BaseHook

    from phonecheck_airflow.hooks.base import connection_extras as parsed_extras

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - a missing connection is reported by the hook that needs it
        return {}
    return parsed_extras(conn, conn.conn_type or "")


def run_settings(vendor: str, params: dict[str, Any] | None, conn_id: str | None = None) -> dict[str, Any]:
    """The run's limits and tuning for ``vendor`` (see the module doc for the order)."""
    conn_id = conn_id or DEFAULT_CONN_IDS[vendor]
    extras = connection_extras(conn_id)
    params = params or {}
    settings: dict[str, Any] = {}
    for s in SETTINGS[vendor]:
        value = s.cast(extras[s.name]) if extras.get(s.name) not in (None, "") else s.cast(s.default)
        given = params.get(s.name)
        if given not in (None, ""):
            asked = s.cast(given)
            if s.tighten == "min" and asked > value:
                log.warning(
                    "%s=%s in the run's conf cannot raise the account's limit %s (extra of %s): kept %s",
                    s.name, asked, value, conn_id, value,
                )  # fmt: skip
            else:
                value = asked
            log.info("%s=%s from the run's conf (deprecated: set the extra on %s)", s.name, value, conn_id)
        settings[s.name] = value
    return settings
