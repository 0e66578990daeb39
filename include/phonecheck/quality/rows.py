"""Reading the validated rows: the table's column types (checked against the suite), the rows
whose key is in the loaded keys (:func:`selected_rows`), the first rows read as GX's clean sample,
and the DataFrame GX validates (:func:`frame_from_rows`, pandas imported on first use)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from phonecheck.quality.suites import TEXT_SUFFIX, TableSuite

#: Clean rows handed to GX besides the suspect ones, so Data Docs show what passing rows look like.
CLEAN_SAMPLE_ROWS = 200


def ident(column: str) -> sql.Composable:
    return sql.Identifier(column)


def _column_types(conn: psycopg.Connection, table: str) -> dict[str, str]:
    schema, name = table.split(".", 1)
    rows = conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod)
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped""",
        (schema, name),
    ).fetchall()
    if not rows:
        raise ValueError(f"{table} does not exist: are the warehouse migrations applied?")
    return dict(rows)


def enforced_unique_keys(cur: psycopg.Cursor, table: str) -> list[frozenset[str]]:
    """Column sets the table's unique indexes make unique: plain-column, non-partial unique
    indexes whose columns are all NOT NULL (a NULL would let "equal" keys repeat for GX)."""
    schema, name = table.split(".", 1)
    rows = cur.execute(
        """SELECT array_agg(a.attname::text), bool_and(a.attnotnull)
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid
                            AND a.attnum = ANY((i.indkey::int2[])[0:i.indnkeyatts - 1])  -- not INCLUDE columns
           WHERE n.nspname = %s AND c.relname = %s AND i.indisunique AND i.indpred IS NULL
             AND i.indexprs IS NULL AND i.indisvalid
           GROUP BY i.indexrelid""",
        (schema, name),
    ).fetchall()
    return [frozenset(columns) for columns, not_null in rows if not_null]


def checked_column_types(conn: psycopg.Connection, suite: TableSuite, key_column: str) -> dict[str, Any]:
    """The table's column types, after checking it has the key column and every suite column."""
    types = _column_types(conn, suite.table)
    if key_column not in types:
        raise ValueError(f"{suite.table} has no column {key_column!r}")
    missing = [c for c in suite.columns if c not in types]
    if missing:
        raise ValueError(f"{suite.table} lacks column(s) {missing} the suite checks")
    return types


def selected_rows(
    suite: TableSuite, types: Mapping[str, str], key_column: str, key_values: Sequence[Any]
) -> sql.Composable:
    """``{table} WHERE {key} = ANY(keys)``: the validated rows."""
    schema, name = suite.table.split(".", 1)
    return sql.SQL("{table} WHERE {key} = ANY({keys}::{array_type})").format(
        table=sql.Identifier(schema, name),
        key=ident(key_column),
        # values as literals (escaped by psycopg): no placeholder, so a "%" in a regex or a code
        # set can never be read as one
        keys=sql.Literal(list(key_values)),
        # the type name comes from the catalogue, not from the caller
        array_type=sql.SQL(types[key_column] + "[]"),
    )


def fetch_rows(
    conn: psycopg.Connection,
    suite: TableSuite,
    key_column: str,
    key_values: Sequence[Any],
    limit: int | None = None,
) -> list[tuple[Any, ...]]:
    """The suite's columns of the rows whose ``key_column`` is in ``key_values`` (the first
    ``limit`` read, when given)."""
    types = checked_column_types(conn, suite, key_column)
    query = sql.SQL("SELECT {cols} FROM {selected}{limit}").format(
        cols=sql.SQL(", ").join(ident(c) for c in suite.columns),
        selected=selected_rows(suite, types, key_column, key_values),
        limit=sql.SQL(" LIMIT {}").format(sql.Literal(limit)) if limit is not None else sql.SQL(""),
    )
    with conn.cursor(binary=True) as cur:
        return cur.execute(query).fetchall()


def sample_rows(
    conn: psycopg.Connection, suite: TableSuite, key_column: str, key_values: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """The first :data:`CLEAN_SAMPLE_ROWS` selected rows read (the suite's columns): GX validates
    them besides the suspect rows, so Data Docs show what passing rows look like."""
    return fetch_rows(conn, suite, key_column, key_values, limit=CLEAN_SAMPLE_ROWS)


def frame_from_rows(suite: TableSuite, rows: Iterable[Sequence[Any]] | Iterable[Mapping[str, Any]]) -> Any:
    """A DataFrame with the suite's columns: text/int/numeric kept as Python objects (ints stay
    ints next to NULLs, so samples read ``999`` not ``999.0``), timestamps as naive UTC datetimes, and
    a text rendering of each money column for the 4-decimals check."""
    import pandas as pd

    rows = list(rows)
    columns = suite.columns
    if rows and isinstance(rows[0], Mapping):
        rows = [tuple(r.get(c) for c in columns) for r in rows]
    values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    data: dict[str, Any] = {}
    for column, column_values in zip(columns, values, strict=True):
        if column in suite.timestamp_columns:
            # naive UTC: GX reads tz-aware columns through a deprecated pandas path (warnings)
            data[column] = pd.to_datetime(pd.Series(column_values, dtype=object), utc=True).dt.tz_convert(
                None
            )
        else:
            data[column] = pd.Series(column_values, dtype=object)
    for column in suite.money_columns:
        if column in data:
            data[column + TEXT_SUFFIX] = pd.Series(
                [None if v is None else format(Decimal(v), "f") for v in data[column]], dtype=object
            )
    return pd.DataFrame(data)
