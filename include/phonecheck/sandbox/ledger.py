"""What the sandbox keeps of accepted number-check submits: the query API's rows and the bill.

One compact record per accepted submit (:class:`NumberCheckBatch`: its numbers and a few fields)
instead of a row and a charge dict per number, so that a run of a million numbers costs tens of
megabytes, not gigabytes. Rows and charges are derived when asked for: outcomes are a pure
function of the number (:mod:`phonecheck.sandbox.outcomes`), and a query page builds only the
rows it returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from phonecheck.sandbox import outcomes


@dataclass(slots=True, eq=False)
class NumberCheckBatch:
    """One accepted (and charged) submit."""

    date: str  # yyyy-MM-dd of the check (sandbox clock; UTC, or Asia/Shanghai when strict)
    appkey: str
    batch_no: str
    request_id: str
    level: int
    phones: list[str]  # as submitted, in order (message ids are numbered over all of them)
    skipped: frozenset[int]  # 1-based indexes the vendor did not accept (2024 failNumber)
    visible_at: float  # sandbox clock seconds from which the query API lists the rows
    at_ms: int  # when it was charged
    example_rows: bool  # strict: rows shaped like the vendor's own example

    def numbers(self) -> Iterator[tuple[str, str]]:
        """(phone, messageId) of every accepted number, in submit order."""
        size = len(self.phones)
        for index, phone in enumerate(self.phones, start=1):
            if index not in self.skipped:
                yield phone, outcomes.message_id_for(self.request_id, index, size)

    def row(self, phone: str, message_id: str) -> dict[str, Any]:
        """The query API's row for one number of this batch."""
        row = outcomes.nxcloud_query_row(phone, self.level, batch_no=self.batch_no, message_id=message_id)
        if self.example_rows:  # the vendor's own example rows: checkLevel 2, empty live flags, price 0
            row.update(checkLevel=2, validity="", reachable="", roaming="", price=0)
        return row

    def charges(self) -> Iterator[dict[str, Any]]:
        for phone, _ in self.numbers():
            yield {"vendor": "nxcloud", "batch_no": self.batch_no, "phone": phone, "check_level": self.level,
                   "at_ms": self.at_ms, "request_id": self.request_id}  # fmt: skip


def select_rows(
    batches: Iterable[NumberCheckBatch],
    *,
    date: str,
    now: float,
    batch_no: str | None,
    message_id: str | None,
    phone: str | None,
    appkey: str | None,
    page: int,
    page_size: int,
) -> tuple[list[dict[str, Any]], int]:
    """One page of the query API's rows (in submit order) and the number of rows that match."""
    start = (page - 1) * page_size
    rows: list[dict[str, Any]] = []
    total = 0
    for batch in batches:
        if (
            batch.date != date
            or batch.visible_at > now
            or (batch_no is not None and batch.batch_no != batch_no)
            or (appkey and batch.appkey != appkey)
            or (message_id is not None and not message_id.startswith(batch.request_id))
        ):
            continue
        for number, mid in batch.numbers():
            if (phone is None or number == phone) and (
                message_id is None or mid == message_id or mid.startswith(f"{message_id}-")
            ):
                if start <= total < start + page_size:
                    rows.append(batch.row(number, mid))
                total += 1
    return rows, total


class ChargeLedger:
    """The bill: one entry per number per paid call the vendor processed, answered or not.

    AccuAuth checks are appended one dict each; NXCLOUD submits as one :class:`NumberCheckBatch`
    each, expanded to one entry per number when the ledger is read."""

    def __init__(self) -> None:
        self._entries: list[dict[str, Any] | NumberCheckBatch] = []

    def append(self, entry: dict[str, Any] | NumberCheckBatch) -> None:
        self._entries.append(entry)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for entry in self._entries:
            if isinstance(entry, NumberCheckBatch):
                yield from entry.charges()
            else:
                yield entry

    def __len__(self) -> int:
        return sum(
            len(e.phones) - len(e.skipped) if isinstance(e, NumberCheckBatch) else 1 for e in self._entries
        )
