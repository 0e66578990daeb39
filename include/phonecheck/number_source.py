"""Numbers from a file: CSV or one number per line, read as a stream.

The caller opens the file (the Airflow side does it through ``ObjectStoragePath``, so any
storage a provider supports works) and hands over a binary stream; nothing here holds more than
one line at a time, so a list of millions of numbers costs no more memory than a short one.

Format (``fmt``):

* ``"lines"``: one number per line; blank lines are skipped.
* ``"csv"``: comma-separated (``"tsv"``: tab-separated), quoting as Excel writes it.
* ``"auto"`` (default): ``csv`` for names ending in ``.csv``, ``tsv`` for ``.tsv``, else ``lines``.

Column choice (CSV/TSV only, ``column``):

* empty: the first column;
* a number ``n``: the n-th column (1-based);
* anything else: the column with that header (case and surrounding spaces ignored).

With a header name, the first row is the header. Without one, the first row is taken as a
header (and skipped) when its chosen cell has no digit in it (``phone``, ``msisdn``...).

Bytes that are not UTF-8 are not an error here: they reach the number check as lone
surrogates (``surrogateescape``) and are rejected there with a reason, like any other odd line.
A byte-order mark at the start is dropped.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from typing import BinaryIO

FORMATS = ("auto", "lines", "csv", "tsv")
#: A line longer than this is cut (and then rejected as too long): memory stays bounded even
#: for a file without line breaks.
MAX_LINE_CHARS = 4096
_DIGIT = re.compile(r"\d")


class NumberSourceError(ValueError):
    """The file cannot be read as asked (unknown column, broken CSV): a message for the user."""


def resolve_format(fmt: str | None, name: str = "") -> str:
    fmt = (fmt or "auto").lower()
    if fmt not in FORMATS:
        raise NumberSourceError(f"unknown numbers format {fmt!r}: one of {', '.join(FORMATS)}")
    if fmt != "auto":
        return fmt
    lowered = name.lower().split("?", 1)[0]
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith(".tsv"):
        return "tsv"
    return "lines"


def read_numbers(
    stream: BinaryIO, *, fmt: str | None = "auto", column: str | None = None, name: str = ""
) -> Iterator[str]:
    """Yield the entries of ``stream`` (stripped; blank lines and blank rows skipped)."""
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline="")
    lines = _bounded_lines(text)
    kind = resolve_format(fmt, name)
    if kind == "lines":
        for line in lines:
            entry = line.strip()
            if entry:
                yield entry
        return
    yield from _csv_entries(lines, "\t" if kind == "tsv" else ",", (column or "").strip(), name)


def _bounded_lines(text: io.TextIOWrapper) -> Iterator[str]:
    first = True
    while True:
        line = text.readline(MAX_LINE_CHARS)
        if not line:
            return
        if first:
            line = line.removeprefix(codecs.BOM_UTF8.decode())
            first = False
        if len(line) >= MAX_LINE_CHARS and not line.endswith("\n"):
            rest = text.readline(MAX_LINE_CHARS)  # drop the remainder of the over-long line
            while rest and not rest.endswith("\n"):
                rest = text.readline(MAX_LINE_CHARS)
            line += "\n"
        yield line


def _csv_entries(lines: Iterator[str], delimiter: str, column: str, name: str) -> Iterator[str]:
    reader = csv.reader(lines, delimiter=delimiter)
    index: int | None = int(column) - 1 if column.isdigit() else (0 if not column else None)
    if index is not None and index < 0:
        raise NumberSourceError(f"numbers column {column!r}: columns count from 1")
    try:
        header = next(reader, None)
        if header is None:
            return
        if index is None:  # a header name
            wanted = column.casefold()
            names = [cell.strip().casefold() for cell in header]
            if wanted not in names:
                raise NumberSourceError(
                    f"{name or 'the file'}: no column {column!r} in the header row "
                    f"(columns: {', '.join(cell.strip() for cell in header[:20])})"
                )
            index = names.index(wanted)
        else:
            cell = header[index] if index < len(header) else ""
            if _DIGIT.search(cell):  # no header: the first row is data
                yield cell.strip()
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            yield (row[index] if index < len(row) else "").strip()
    except csv.Error as exc:
        raise NumberSourceError(f"{name or 'the file'}: line {reader.line_num}: {exc}") from None


def describe_uri(uri: str) -> str:
    """``uri`` without credentials or query string, for logs and ``ops.run_intake.source``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
