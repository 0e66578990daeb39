"""Chunks within the vendor's submit limits, with deterministic ``batchNo`` values.

Vendor limits (docs/vendors/nxcloud.md): at most 5,000 numbers per submit, ``batchNo`` at most 64
characters, and in the seed-era protocol every number of a batch must be of ONE country. We
always split by country (it is also what the cost estimate and the query API reconcile use).

``batchNo`` is a pure function of (DAG id, run id, check level, region, chunk index): a retried
submit task recomputes the very same numbers, so the paid call can be made idempotent on our
side (see :mod:`.submissions`). It also starts with the user's batch label so a person reading
the vendor console recognises it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_NUMBERS_PER_SUBMIT = 5000
MAX_BATCH_NO_LENGTH = 64
_LABEL_RE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Chunk:
    """One submit: numbers of one region at one check level."""

    batch_no: str
    region_code: str
    check_level: int
    index: int  # 0-based position of the chunk within its region
    phones: tuple[str, ...]  # E.164 digits without '+', as the vendor takes them

    @property
    def size(self) -> int:
        return len(self.phones)


def label_slug(label: str | None, max_len: int = 20) -> str:
    slug = _LABEL_RE.sub("-", (label or "").strip()).strip("-")
    return (slug or "check")[:max_len].strip("-") or "check"


def batch_no_for(
    *, dag_id: str, run_id: str, check_level: int, region_code: str, index: int, label: str | None = None
) -> str:
    """``<label>-<12 hex of dag/run/level>-<region>-<index>``, at most 64 characters."""
    digest = hashlib.sha256(f"{dag_id}\x1f{run_id}\x1f{check_level}".encode()).hexdigest()[:12]
    batch_no = f"{label_slug(label)}-{digest}-{region_code}-{index:04d}"
    assert len(batch_no) <= MAX_BATCH_NO_LENGTH, batch_no
    return batch_no


def plan_chunks(
    numbers: Iterable[tuple[str, str]],
    *,
    dag_id: str,
    run_id: str,
    check_level: int,
    label: str | None = None,
    max_per_chunk: int = MAX_NUMBERS_PER_SUBMIT,
) -> list[Chunk]:
    """Split ``(digits, region_code)`` pairs into one-country chunks of at most ``max_per_chunk``.

    Regions come out in sorted order and numbers keep their input order inside a region, so
    the same input always gives the same chunks and batch numbers.
    """
    if not 1 <= max_per_chunk <= MAX_NUMBERS_PER_SUBMIT:
        raise ValueError(f"max_per_chunk must be 1..{MAX_NUMBERS_PER_SUBMIT}")
    by_region: dict[str, list[str]] = {}
    seen: set[str] = set()
    for digits, region in numbers:
        if digits in seen:
            continue
        seen.add(digits)
        by_region.setdefault(region, []).append(digits)
    chunks: list[Chunk] = []
    for region in sorted(by_region):
        phones = by_region[region]
        for index, start in enumerate(range(0, len(phones), max_per_chunk)):
            chunks.append(
                Chunk(
                    batch_no=batch_no_for(
                        dag_id=dag_id,
                        run_id=run_id,
                        check_level=check_level,
                        region_code=region,
                        index=index,
                        label=label,
                    ),
                    region_code=region,
                    check_level=check_level,
                    index=index,
                    phones=tuple(phones[start : start + max_per_chunk]),
                )
            )
    return chunks


def counts_by_region(chunks: Sequence[Chunk]) -> dict[str, int]:
    out: dict[str, int] = {}
    for chunk in chunks:
        out[chunk.region_code] = out.get(chunk.region_code, 0) + chunk.size
    return out
