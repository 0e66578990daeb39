"""A run's answers as a file: one row per input line, in input order (``results_uri``).

Teams that hand a list in as a file (a CRM export, a batch of loan applications) want the
answers back the same way. :func:`result_rows` reads the run's input again, line by line, and
joins each line to what the warehouse holds, :data:`BLOCK_SIZE` lines at a time, so memory does
not grow with the list:

* a line that cannot be a number: ``rejected`` with the same reason ``ops.rejected_number``
  has (the same offline :func:`~phonecheck.numbers.normalise`);
* a repeat of an earlier line's number: ``duplicate`` (the reason names that line);
* a number checked within the freshness window by an earlier run: ``checked_earlier`` with
  that result; a number this run checked: ``checked`` (this run's answer); sent, no answer yet:
  ``waiting``; not sent because the run stopped first (budget, approval): ``not_submitted``;
* a dry run: ``estimate`` with the price one check would cost (``fresh``: nothing to pay).

Which line came first and which numbers were fresh comes from ``ops.run_number`` (position of
each number's first line, ``fresh`` flag), so no set of seen numbers is kept in memory.
:func:`write_rows` writes CSV or Parquet (pyarrow, one row group per block) to any binary
file object, e.g. one opened through Airflow's ``ObjectStoragePath``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import IO, Any

import psycopg

from phonecheck.intake import ACCUAUTH, NXCLOUD
from phonecheck.numbers import Rejected, normalise, storable

#: Lines read, joined and written at a time (one warehouse round trip each, one Parquet row group).
BLOCK_SIZE = 5000

COMMON_COLUMNS = ("line", "input", "e164", "region_code", "status", "reason", "checked_at")
VENDOR_COLUMNS = {
    NXCLOUD: (
        "code",
        "msg",
        "number_type",
        "carrier",
        "validity",
        "reachable",
        "ported",
        "active",
        "price",
        "currency",
    ),  # fmt: skip
    ACCUAUTH: ("vendor_status", "phone_status", "vendor_reason"),
}
ESTIMATE_COLUMNS = ("estimated_price", "currency")
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

#: ``(price, currency)`` of one check in a region (dry run), None when unknown.
PriceOf = Callable[[str], tuple[Decimal, str] | None]


class ResultsFileError(ValueError):
    """A results file that cannot be written as asked (unknown format)."""


def results_format(name: str) -> str:
    """``csv`` or ``parquet`` from the file name's extension."""
    for suffix, fmt in FORMATS.items():
        if name.lower().endswith(suffix):
            return fmt
    raise ResultsFileError(
        f"results file {name!r}: name it .csv or .parquet (the format is chosen by the extension)"
    )


def columns_for(vendor: str, *, dry_run: bool) -> tuple[str, ...]:
    return COMMON_COLUMNS + (ESTIMATE_COLUMNS if dry_run else VENDOR_COLUMNS[vendor])


_RUN_NUMBERS = "SELECT e164, position, fresh FROM ops.run_number WHERE run_key = %s AND e164 = ANY(%s)"

# The best answer we hold per number at the run's level: this run's batches first, then an
# answer with a receipt code over one without (a poorer later answer does not hide a better one),
# then the newest.
_NXCLOUD_RESULTS = """
SELECT DISTINCT ON (t.e164) t.e164, (s.dag_id = %(dag_id)s AND s.run_id = %(run_id)s) IS TRUE,
       COALESCE(t.pushed_at, t.queried_at, t.updated_at),
       t.code, t.msg, t.number_type, t.carrier, t.validity, t.reachable, t.ported, t.active, t.price, t.currency
FROM telco.nxcloud_number_check t
LEFT JOIN ops.number_check_submission s ON s.vendor = 'nxcloud' AND s.batch_no = t.batch_no
WHERE t.e164 = ANY(%(numbers)s) AND COALESCE(t.check_level, s.check_level) = %(level)s
ORDER BY t.e164, (s.dag_id = %(dag_id)s AND s.run_id = %(run_id)s) IS TRUE DESC, t.code IS NULL,
         COALESCE(t.pushed_at, t.queried_at, t.updated_at) DESC
"""

_ACCUAUTH_RESULTS = """
SELECT DISTINCT ON (t.e164) t.e164, (s.dag_id = %(dag_id)s AND s.run_id = %(run_id)s) IS TRUE,
       COALESCE(t.completed_at, t.submitted_at, t.updated_at), t.status, t.phone_status, t.reason
FROM telco.accuauth_phone_check t
LEFT JOIN ops.number_check_submission s ON s.submission_id = t.submission_id
WHERE t.e164 = ANY(%(numbers)s)
ORDER BY t.e164, (s.dag_id = %(dag_id)s AND s.run_id = %(run_id)s) IS TRUE DESC, t.status = 'PENDING',
         COALESCE(t.completed_at, t.submitted_at, t.updated_at) DESC
"""

# The numbers of the block this run sent to the vendor (both vendors keep the digits per submission).
# Run without a prepared statement: a generic plan cannot hash the block's array, and matched each
# of the run's numbers against the whole block (35 s a block of 5,000 in a 100,000-number run).
_SUBMITTED = """
SELECT DISTINCT '+' || p.phone FROM ops.number_check_submission s, unnest(s.phones) AS p(phone)
WHERE s.vendor = %(vendor)s AND s.dag_id = %(dag_id)s AND s.run_id = %(run_id)s AND '+' || p.phone = ANY(%(numbers)s)
"""

# Whether the run sent every number it meant to buy (each kept number not fresh is in one of its
# submissions): the usual case, in one pass over the run, so no block needs _SUBMITTED (which reads
# all of the run's submitted numbers for every block: quadratic in the run's size).
_ALL_SUBMITTED = """
SELECT NOT EXISTS (
    SELECT r.e164 FROM ops.run_number r WHERE r.run_key = %(run_key)s AND NOT r.fresh
    EXCEPT
    SELECT '+' || p.phone FROM ops.number_check_submission s, unnest(s.phones) AS p(phone)
    WHERE s.vendor = %(vendor)s AND s.dag_id = %(dag_id)s AND s.run_id = %(run_id)s
)
"""


def _all_submitted(conn: psycopg.Connection, vendor: str, run_key: str) -> bool:
    dag_id, _, run_id = run_key.partition("/")
    args = {"run_key": run_key, "dag_id": dag_id, "run_id": run_id, "vendor": vendor}
    return bool(conn.execute(_ALL_SUBMITTED, args).fetchone()[0])


def _outcomes(
    conn: psycopg.Connection,
    vendor: str,
    numbers: list[str],
    run_key: str,
    level: int | None,
    all_submitted: bool,
):
    """``e164 -> (from this run?, checked_at, vendor columns...)`` for the numbers we hold an
    answer for, and the set of the numbers this run submitted (None: every number it meant to)."""
    if not numbers:
        return {}, set()
    dag_id, _, run_id = run_key.partition("/")
    args = {"numbers": numbers, "level": level, "dag_id": dag_id, "run_id": run_id, "vendor": vendor}
    rows = conn.execute(_NXCLOUD_RESULTS if vendor == NXCLOUD else _ACCUAUTH_RESULTS, args)
    answers = {row[0]: row[1:] for row in rows}
    if all_submitted:
        return answers, None
    return answers, {row[0] for row in conn.execute(_SUBMITTED, args, prepare=False)}


def result_rows(
    conn: psycopg.Connection,
    *,
    vendor: str,
    entries: Iterable[str],
    run_key: str,
    default_region: str | None,
    allow_vanity: bool = False,
    check_level: int | None = None,
    price_of: PriceOf | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Blocks of result rows (dicts keyed by :func:`columns_for`), one per entry, in order.

    ``entries`` must be the run's input as its prepare step read it (same order); ``price_of``
    given = a dry run: each line gets the estimate instead of an answer.
    """
    block: list[str] = []
    first_line = 1
    all_submitted = price_of is None and _all_submitted(conn, vendor, run_key)
    for raw in entries:
        block.append(raw)
        if len(block) >= BLOCK_SIZE:
            yield _rows_for_block(conn, block, first_line, vendor, run_key, default_region, allow_vanity,
                                  check_level, price_of, all_submitted)  # fmt: skip
            first_line += len(block)
            block = []
    if block:
        yield _rows_for_block(conn, block, first_line, vendor, run_key, default_region, allow_vanity,
                              check_level, price_of, all_submitted)  # fmt: skip


def _rows_for_block(
    conn: psycopg.Connection,
    block: list[str],
    first_line: int,
    vendor: str,
    run_key: str,
    default_region: str | None,
    allow_vanity: bool,
    check_level: int | None,
    price_of: PriceOf | None,
    all_submitted: bool = False,
) -> list[dict[str, Any]]:
    parsed = [normalise(raw, default_region, allow_vanity) for raw in block]
    numbers = sorted({p.e164 for p in parsed if not isinstance(p, Rejected)})
    kept = {
        e164: (position, fresh) for e164, position, fresh in conn.execute(_RUN_NUMBERS, (run_key, numbers))
    }
    answers, submitted = (
        ({}, set()) if price_of else _outcomes(conn, vendor, numbers, run_key, check_level, all_submitted)
    )
    vendor_columns = ESTIMATE_COLUMNS if price_of else VENDOR_COLUMNS[vendor]
    rows = []
    for offset, (raw, number) in enumerate(zip(block, parsed, strict=True)):
        line = first_line + offset
        row: dict[str, Any] = {"line": line, "input": storable(raw)}
        if isinstance(number, Rejected):
            rows.append({**row, "status": "rejected", "reason": number.reason})
            continue
        row.update(e164=number.e164, region_code=number.region_code)
        position, fresh = kept.get(number.e164, (None, False))
        if position is None:
            row.update(status="not_prepared", reason="the run's prepare step did not keep this number")
        elif position != line - 1:  # positions count from 0 over the same input
            row.update(status="duplicate", reason=f"same number as line {position + 1}")
        elif price_of is not None:
            quote = None if fresh else price_of(number.region_code)
            row.update(
                status="estimate",
                reason="checked recently: not bought again" if fresh else None,
                estimated_price=Decimal(0) if fresh else (quote[0] if quote else None),
                currency=quote[1] if quote else None,
            )
        else:
            answer = answers.get(number.e164)
            if not fresh and submitted is not None and number.e164 not in submitted:
                row.update(status="not_submitted", reason="the run stopped before sending it (see its estimate "
                           "and approval)")  # fmt: skip
            elif answer is None or (not fresh and not answer[0]):
                row.update(status="waiting", reason="no answer from the vendor yet")
            else:
                row.update(
                    status="checked" if answer[0] and not fresh else "checked_earlier", checked_at=answer[1]
                )
                row.update(zip(vendor_columns, answer[2:], strict=True))
        rows.append(row)
    return rows


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def write_rows(handle: IO[bytes], fmt: str, columns: tuple[str, ...], blocks: Iterable[list[dict]]) -> int:
    """Write ``blocks`` to the binary ``handle`` as ``fmt`` (``csv`` or ``parquet``); the row count.

    Every column but ``line`` is text (prices as their decimal text: no float rounding), so the
    CSV and the Parquet file say the same; one block is in memory at a time."""
    if fmt == "csv":
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text)
        writer.writerow(columns)
        count = 0
        for rows in blocks:
            writer.writerows([[_text(row.get(c)) or "" for c in columns] for row in rows])
            count += len(rows)
        text.flush()
        text.detach()  # the caller closes ``handle``
        return count
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([pa.field("line", pa.int64()), *(pa.field(c, pa.string()) for c in columns[1:])])
        count = 0
        with pq.ParquetWriter(handle, schema) as writer:
            for rows in blocks:
                data = {"line": [row["line"] for row in rows]}
                data.update({c: [_text(row.get(c)) for row in rows] for c in columns[1:]})
                writer.write_table(pa.table(data, schema=schema))
                count += len(rows)
        return count
    raise ResultsFileError(f"unknown results format {fmt!r}")
