"""Full size or tiny size: one switch for every benchmark.

``make bench`` runs each benchmark at its full size. ``python -m bench --tiny`` (what ``.ci/run``
does) sets ``BENCH_TINY=1`` and every benchmark shrinks to a size that runs in seconds: the same
code paths end to end, so a change that breaks a benchmark fails CI, but no figure is meaningful
and no target is judged (the ``FIGURE`` lines say ``tiny``).
"""

from __future__ import annotations

import os

TINY_ENV = "BENCH_TINY"


def tiny() -> bool:
    """Whether this run is the tiny smoke run (``BENCH_TINY=1``)."""
    return os.environ.get(TINY_ENV, "") == "1"


def pick(full: int, small: int, env: str | None = None) -> int:
    """``env``'s value if set, else ``small`` in a tiny run, else ``full``."""
    if env and os.environ.get(env):
        return int(os.environ[env].replace("_", ""))
    return small if tiny() else full


def note() -> str:
    """A suffix for FIGURE lines: says the figure is from a tiny run and means nothing."""
    return " [TINY RUN: smoke test only, figures not meaningful]" if tiny() else ""
