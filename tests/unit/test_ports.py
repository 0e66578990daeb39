"""Test ports: a port reserved by one test process is never handed to another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.fixtures import ports

ROOT = Path(__file__).resolve().parents[2]


def test_a_port_another_process_holds_is_skipped_and_one_it_released_is_not():
    held = [ports.reserve_port() for _ in range(5)]
    released = [ports.reserve_port() for _ in range(5)]
    for port in released:  # as when that process exits
        os.close(ports._held.pop(port))
    child = textwrap.dedent(
        f"""
        import json
        from tests.fixtures import ports
        ports.PORT_RANGE = {held + released!r}
        got = [ports.reserve_port() for _ in range(5)]
        try:
            ports.reserve_port()
        except RuntimeError:
            got.append("exhausted")
        print(json.dumps(got))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    got = json.loads(out)
    assert sorted(got[:5]) == sorted(released)
    assert got[5] == "exhausted"
    assert set(held).isdisjoint(got[:5])
    assert len(set(held + released)) == 10 and all(p < 32768 for p in held + released)
