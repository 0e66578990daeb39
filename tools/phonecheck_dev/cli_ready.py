"""Whether ``make -s env`` may skip ``airflow db migrate`` and ``airflow dags reserialize``.

Both take seconds (each starts Airflow) and are only needed when something they depend on
changed: the Airflow version, the metadata DB, or the DAG files and the project code they
import. A fingerprint of those is kept in ``$AIRFLOW_HOME`` after they succeeded; the next
``make -s env`` with the same fingerprint prints the exports at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from importlib.metadata import version
from pathlib import Path

STAMP_NAME = "cli_env_ready"


def _sources(roots: Iterable[Path]) -> Iterable[Path]:
    for root in roots:
        yield from sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def fingerprint(metadata_url: str, roots: Iterable[Path]) -> str:
    """Airflow's version, the metadata DB and every source file's path, size and mtime."""
    digest = hashlib.sha256(f"{version('apache-airflow')}\n{metadata_url}\n".encode())
    for path in _sources(roots):
        stat = path.stat()
        digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def is_ready(home: Path, current: str) -> bool:
    stamp = home / STAMP_NAME
    return stamp.exists() and stamp.read_text().strip() == current


def mark_ready(home: Path, current: str) -> None:
    (home / STAMP_NAME).write_text(current + "\n")
