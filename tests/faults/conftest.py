"""Fixtures of the fault suite: a standalone receiver on a warehouse it can lose, and
the NXCLOUD pipeline wired to the sandbox with the receiver as drUrl target.

The shared fixtures (``sandbox``, ``vendor_connections``, ``live_receiver``,
``disposable_warehouse``, ``run_dag``) come from ``tests/fixtures``; only the combinations the
fault tests need are built here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.ports import reserve_port
from tests.fixtures.receiver import PREFIX, LiveReceiver, _subprocess_server


@pytest.fixture
def outage_receiver(disposable_warehouse, receiver_token: str, tmp_path: Path) -> Iterator[LiveReceiver]:
    """``python -m phonecheck.receiver`` (what ``make receiver`` runs) on a PostgreSQL server of
    its own, which the test may stop and start again (never the shared embedded server)."""
    port = reserve_port()
    env = {
        **os.environ,
        "WAREHOUSE_DSN": disposable_warehouse.dsn,
        "TELCO_WEBHOOK_TOKEN": receiver_token,
        "RECEIVER_PORT": str(port),
        "RECEIVER_SPOOL_DIR": str(tmp_path / "spool"),
        # 10,000+ deliveries: the per-request access line is noise here (the route template only)
        "RECEIVER_ACCESS_LOG": "0",
    }
    base = f"http://127.0.0.1:{port}{PREFIX}"
    with _subprocess_server([sys.executable, "-m", "phonecheck.receiver"], env, base, 60) as output:
        yield LiveReceiver(base, receiver_token, disposable_warehouse.dsn, tmp_path / "spool", output=output)


@pytest.fixture
def nxcloud_pipeline(nxcloud_wired):
    """``(sandbox, live_receiver)`` wired for nxcloud_number_check (see tests/fixtures/pipelines.py)."""
    return nxcloud_wired
