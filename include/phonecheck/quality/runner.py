"""Validate the rows a pipeline just loaded, store every result, render Data Docs.

``validate_rows`` selects the rows of one ``telco`` table whose ``key_column`` is in
``key_values`` and runs the table's suite (:mod:`phonecheck.quality.suites`) with Great
Expectations, writes one ``dq.validation_result`` row per expectation, and renders the Data Docs
page of the run. It never changes or deletes the validated rows: failing rows stay for inspection.

Fast path (default). Reading 100,000 rows into pandas and letting GX scan them all cost several
times the load itself (bench/quality_bench.py). Instead, SQL generated from the same suite
(:func:`scan_rows`) counts every expectation's unexpected rows in PostgreSQL, in one pass for the
row-level checks and one hashed GROUP BY per uniqueness check, and returns only the *suspect*
rows (a superset of the unexpected ones). While PostgreSQL scans, GX validates the first
:data:`CLEAN_SAMPLE_ROWS` rows read (:func:`sample_rows`) in a second thread; when the scan found
suspect rows, GX validates them with the sample. For row-level expectations and for uniqueness
(all rows of a duplicated group are suspect) GX's unexpected counts and samples are then those of
the whole set, and they are checked against the SQL counts; any disagreement logs a warning and
GX validates every row instead. The stored element count is the whole set's; the Data Docs page
shows the rows GX saw. ``full_gx=True`` always hands GX every row (one ``= ANY(...)`` query into
a DataFrame: it works over the embedded warehouse's unix socket, which GX's own ``add_postgres``
rejects).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from phonecheck.quality.suites import (
    MONEY_DECIMALS,
    MONEY_INTEGER_DIGITS,
    MONEY_TEXT_REGEX,
    TEXT_SUFFIX,
    Check,
    TableSuite,
    suite_for,
)

log = logging.getLogger(__name__)

#: At most this many unexpected rows are kept per expectation.
SAMPLE_SIZE = 20
DATA_DOCS_ENV = "PHONECHECK_DATA_DOCS_DIR"


def data_docs_dir() -> Path:
    """Where Data Docs HTML goes: ``$PHONECHECK_DATA_DOCS_DIR``, else ``.local/data_docs/``."""
    configured = os.environ.get(DATA_DOCS_ENV)
    if configured:
        return Path(configured)
    from phonecheck.warehouse import local_dir

    return local_dir() / "data_docs"


class FailedExpectation(NamedTuple):
    expectation: str
    column: str | None
    unexpected_count: int | None
    sample: list[Any]


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result, shaped like a ``dq.validation_result`` row."""

    expectation_type: str
    column_name: str | None
    kwargs: dict[str, Any]
    success: bool
    element_count: int | None
    unexpected_count: int | None
    unexpected_sample: list[Any]


@dataclass(frozen=True)
class ValidationSummary:
    validation_run_id: str
    table: str
    suite_name: str
    row_filter: str
    element_count: int
    outcomes: list[ExpectationOutcome] = field(repr=False)
    data_docs_path: Path | None = None

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failed(self) -> list[FailedExpectation]:
        return [
            FailedExpectation(o.expectation_type, o.column_name, o.unexpected_count, o.unexpected_sample)
            for o in self.outcomes
            if not o.success
        ]

    def describe(self, max_sample: int = 3) -> str:
        """A readable report: what was validated and every failed expectation with examples."""
        head = (
            f"{self.table}: {len(self.outcomes)} expectations on {self.element_count} rows "
            f"({self.row_filter}), validation run {self.validation_run_id}: "
            + ("all passed" if self.success else f"{len(self.failed)} FAILED")
        )
        lines = [head]
        for failed in self.failed:
            sample = ", ".join(_short(s) for s in failed.sample[:max_sample])
            lines.append(
                f"  - {failed.expectation} on {failed.column}: {failed.unexpected_count} unexpected"
                + (f", e.g. {sample}" if sample else "")
            )
        if self.data_docs_path:
            lines.append(f"  Data Docs: {self.data_docs_path}")
        lines.append(f"  Every result: dq.validation_result, validation_run_id {self.validation_run_id}")
        return "\n".join(lines)


def _short(value: Any, limit: int = 120) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- reading rows ------------------------------------------------------------------------------


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


def _enforced_unique_keys(cur: psycopg.Cursor, table: str) -> list[frozenset[str]]:
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


def _checked_column_types(conn: psycopg.Connection, suite: TableSuite, key_column: str) -> dict[str, Any]:
    """The table's column types, after checking it has the key column and every suite column."""
    types = _column_types(conn, suite.table)
    if key_column not in types:
        raise ValueError(f"{suite.table} has no column {key_column!r}")
    missing = [c for c in suite.columns if c not in types]
    if missing:
        raise ValueError(f"{suite.table} lacks column(s) {missing} the suite checks")
    return types


def fetch_rows(
    conn: psycopg.Connection,
    suite: TableSuite,
    key_column: str,
    key_values: Sequence[Any],
    limit: int | None = None,
) -> list[tuple[Any, ...]]:
    """The suite's columns of the rows whose ``key_column`` is in ``key_values`` (the first
    ``limit`` read, when given)."""
    types = _checked_column_types(conn, suite, key_column)
    query = sql.SQL("SELECT {cols} FROM {selected}{limit}").format(
        cols=sql.SQL(", ").join(_ident(c) for c in suite.columns),
        selected=_selected(suite, types, key_column, key_values),
        limit=sql.SQL(" LIMIT {}").format(sql.Literal(limit)) if limit is not None else sql.SQL(""),
    )
    with conn.cursor(binary=True) as cur:
        return cur.execute(query).fetchall()


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


# --- the fast path: one SQL pass finds the suspect rows, GX validates those (+ a sample) ---------

#: Clean rows handed to GX besides the suspect ones, so Data Docs show what passing rows look like.
CLEAN_SAMPLE_ROWS = 200
_INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})
_TEXT_TYPES = frozenset({"text", "character varying"})
#: The arguments each expectation type's SQL form honours; any other one (``mostly``,
#: ``row_condition``, ...) would change what GX counts, so :func:`_sql_check` refuses it.
_SQL_KWARGS: dict[str, set[str]] = {
    "expect_column_values_to_not_be_null": {"column"},
    "expect_column_values_to_be_unique": {"column"},
    "expect_compound_columns_to_be_unique": {"column_list", "ignore_row_if"},
    "expect_column_values_to_be_in_set": {"column", "value_set"},
    "expect_column_values_to_be_between": {"column", "min_value", "max_value", "strict_min", "strict_max"},
    "expect_column_value_lengths_to_be_between": {"column", "min_value", "max_value"},
    "expect_column_values_to_match_regex": {"column", "regex"},
    "expect_column_pair_values_a_to_be_greater_than_b": {"column_A", "column_B", "or_equal", "ignore_row_if"},
}


@dataclass(frozen=True)
class _SqlCheck:
    """One expectation in SQL. Row-level checks have ``unexpected``; uniqueness checks have
    ``group`` (the columns whose repeated values are unexpected) and ``considered`` (the rows that
    take part, GX's ``ignore_row_if``)."""

    unexpected: sql.Composable | None = None  # counted: this row is unexpected for the check (GX's rule)
    #: rows GX must see although SQL does not count them (where the SQL form could differ)
    also_suspect: sql.Composable | None = None
    group: tuple[str, ...] = ()
    considered: sql.Composable | None = None
    #: a considered row may hold a NULL in the group (compound key, ignore only all-NULL rows)
    null_in_group_possible: bool = False


def _ident(column: str) -> sql.Composable:
    return sql.Identifier(column)


def _sql_check(check: Check, suite: TableSuite, types: Mapping[str, str]) -> _SqlCheck:
    """SQL for one expectation, evaluated per row of the validated set.

    ``unexpected`` mirrors how GX counts (column map expectations ignore NULLs; the pair and
    compound expectations honour ``ignore_row_if``); ``also_suspect`` flags rows GX must see
    although SQL does not count them: e.g. any value with a character outside printable ASCII is
    suspect for a regex, because Python's and PostgreSQL's regex dialects may differ there.
    """
    kind = check.expectation_type
    kw = check.kwargs
    unsupported = set(kw) - _SQL_KWARGS.get(kind, set())
    if kind not in _SQL_KWARGS or unsupported:
        # e.g. mostly or row_condition would change what GX counts: no SQL form rather than a wrong one
        raise NotImplementedError(f"no SQL form for {kind} with {sorted(unsupported) or 'these arguments'}")
    if kind == "expect_column_values_to_not_be_null":
        return _SqlCheck(sql.SQL("{} IS NULL").format(_ident(kw["column"])))
    if kind == "expect_column_values_to_be_unique":
        column = kw["column"]
        return _SqlCheck(group=(column,), considered=sql.SQL("{} IS NOT NULL").format(_ident(column)))
    if kind == "expect_compound_columns_to_be_unique":
        cols = [_ident(c) for c in kw["column_list"]]
        ignore = kw.get("ignore_row_if", "all_values_are_missing")
        if ignore not in ("all_values_are_missing", "any_value_is_missing"):
            raise NotImplementedError(f"no SQL form for {kind} with ignore_row_if={ignore!r}")
        joiner = " OR " if ignore == "any_value_is_missing" else " AND "
        missing = sql.SQL(joiner).join(sql.SQL("{} IS NULL").format(c) for c in cols)
        return _SqlCheck(
            group=tuple(kw["column_list"]),
            considered=sql.SQL("NOT ({})").format(missing),
            null_in_group_possible=ignore != "any_value_is_missing" and len(cols) > 1,
        )
    if kind == "expect_column_values_to_be_in_set":
        name = kw["column"]
        column = _ident(name)
        value_set = list(kw["value_set"])
        # GX compares Python values (isin): ints match ints, strings match strings, never 1 and "1"
        if types[name] in _INTEGER_TYPES and all(type(v) is int for v in value_set):
            values = sql.SQL("{}::bigint[]").format(sql.Literal(value_set))  # no text rendering per row
        elif types[name] in _TEXT_TYPES and all(type(v) is str for v in value_set):
            column = sql.SQL("{}::text").format(column)
            values = sql.SQL("{}::text[]").format(sql.Literal(value_set))
        else:
            raise NotImplementedError(f"no SQL form for {kind} on {types[name]} {name} with this value set")
        return _SqlCheck(sql.SQL("{c} IS NOT NULL AND NOT ({c} = ANY({v}))").format(c=column, v=values))
    if kind == "expect_column_values_to_be_between":
        name = kw["column"]
        column = _ident(name)
        if name in suite.timestamp_columns:
            # GX sees naive UTC datetimes and ISO bounds; the same instant as a timestamptz constant
            # (folded once) compares without converting every row
            def bound(value: Any) -> sql.Composable:
                return sql.SQL("({}::timestamp AT TIME ZONE 'UTC')").format(sql.Literal(str(value)))
        else:

            def bound(value: Any) -> sql.Composable:
                # GX compares Decimal and int values with the bound exactly: a float bound is the
                # binary number (0.1 is 0.1000000000000000055...), not its short repr
                exact = format(Decimal(value), "f") if isinstance(value, float) else str(value)
                return sql.SQL("{}::numeric").format(sql.Literal(exact))

        outside = []
        if kw.get("min_value") is not None:
            op = sql.SQL("<=") if kw.get("strict_min") else sql.SQL("<")
            outside.append(sql.SQL("{} {} {}").format(column, op, bound(kw["min_value"])))
        if kw.get("max_value") is not None:
            op = sql.SQL(">=") if kw.get("strict_max") else sql.SQL(">")
            outside.append(sql.SQL("{} {} {}").format(column, op, bound(kw["max_value"])))
        pred = sql.SQL("({})").format(sql.SQL(" OR ").join(outside)) if outside else sql.SQL("false")
        if types[name].startswith("numeric"):  # pandas takes Decimal("NaN") for a missing value
            pred = sql.SQL("{} <> 'NaN' AND {}").format(column, pred)
        return _SqlCheck(sql.SQL("COALESCE({}, false)").format(pred))
    if kind == "expect_column_value_lengths_to_be_between":
        # Python's len() and char_length() both count code points
        length = sql.SQL("char_length({})").format(_ident(kw["column"]))
        return _SqlCheck(
            sql.SQL("COALESCE({n} < {lo} OR {n} > {hi}, false)").format(
                n=length, lo=sql.Literal(int(kw["min_value"])), hi=sql.Literal(int(kw["max_value"]))
            )
        )
    if kind == "expect_column_values_to_match_regex":
        name = kw["column"].removesuffix(TEXT_SUFFIX)
        if kw["regex"] == MONEY_TEXT_REGEX and types[name].startswith("numeric"):
            # A numeric's text is [-]digits[.exactly scale digits] (never an exponent) or NaN, so
            # the money pattern holds exactly when the number is not negative, has at most
            # MONEY_INTEGER_DIGITS integer digits and a scale of at most MONEY_DECIMALS: the same
            # answer without rendering every price as text and running a regex on it.
            pred = sql.SQL(
                "COALESCE({c} = 'NaN' OR {c} < 0 OR {c} >= {limit} OR scale({c}) > {decimals}, false)"
            )
            return _SqlCheck(
                pred.format(
                    c=_ident(name),
                    limit=sql.SQL("{}::numeric").format(sql.Literal(str(10**MONEY_INTEGER_DIGITS))),
                    decimals=sql.Literal(MONEY_DECIMALS),
                )
            )
        # money columns are matched on their text rendering (numeric::text = format(Decimal, "f"))
        column = sql.SQL("{}::text").format(_ident(name))
        regex = sql.Literal(kw["regex"])
        # GX uses Python's re.search, whose "$" also matches before one final newline
        pred = sql.SQL(
            "CASE WHEN {c} IS NULL OR {c} ~ {rx} THEN false "
            "WHEN right({c}, 1) = E'\\n' THEN NOT left({c}, -1) ~ {rx} ELSE true END"
        ).format(c=column, rx=regex)
        if types[name].startswith("numeric"):  # a number's text is plain ASCII, no newline
            return _SqlCheck(pred)
        # a newline or anything beyond ASCII goes to GX too (Python's \d also matches other digits)
        suspect = sql.SQL(
            "COALESCE(octet_length({c}) <> char_length({c}) OR strpos({c}, E'\\n') > 0, false)"
        ).format(c=column)
        return _SqlCheck(pred, suspect)
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        if kw.get("ignore_row_if") != "either_value_is_missing":  # GX's default counts a NULL side
            raise NotImplementedError(
                f"no SQL form for {kind} unless ignore_row_if='either_value_is_missing'"
            )
        op = sql.SQL("<") if kw.get("or_equal") else sql.SQL("<=")
        pred = sql.SQL("COALESCE({a} {op} {b}, false)").format(
            a=_ident(kw["column_A"]), b=_ident(kw["column_B"]), op=op
        )
        return _SqlCheck(pred)
    raise NotImplementedError(f"no SQL form for {kind}")


def _selected(suite: TableSuite, types: Mapping[str, str], key_column: str, key_values: Sequence[Any]):
    """``{table} WHERE {key} = ANY(keys)``: the validated rows."""
    schema, name = suite.table.split(".", 1)
    return sql.SQL("{table} WHERE {key} = ANY({keys}::{array_type})").format(
        table=sql.Identifier(schema, name),
        key=_ident(key_column),
        # values as literals (escaped by psycopg): no placeholder, so a "%" in a regex or a code
        # set can never be read as one
        keys=sql.Literal(list(key_values)),
        # the type name comes from the catalogue, not from the caller
        array_type=sql.SQL(types[key_column] + "[]"),
    )


def _row_check_query(selected: sql.Composable, sql_checks: Sequence[_SqlCheck]) -> sql.Composable:
    """One pass over the validated rows: the element count, every row-level check's unexpected
    count (in ``sql_checks`` order) and the row ids (ctid) of the suspect rows.

    Each predicate is evaluated once per row in the inner query (``OFFSET 0`` keeps the planner
    from inlining it into both the count and the suspect filter). The statement is parallel safe
    (no CTE or sub-plan), so PostgreSQL may split the scan across workers."""
    flags, counts, suspect = [], [], []
    for check in sql_checks:
        flags.append(check.unexpected)
        counts.append(sql.SQL("count(*) FILTER (WHERE {})").format(sql.Identifier(f"_f{len(flags) - 1}")))
        suspect.append(sql.Identifier(f"_f{len(flags) - 1}"))
        if check.also_suspect is not None:
            flags.append(check.also_suspect)
            suspect.append(sql.Identifier(f"_f{len(flags) - 1}"))
    return sql.SQL(
        "SELECT count(*), {counts}array_agg(_row) FILTER (WHERE {suspect}) "
        "FROM (SELECT ctid::text AS _row{flags} FROM {selected} OFFSET 0) AS flagged"
    ).format(
        counts=sql.SQL("").join(c + sql.SQL(", ") for c in counts),
        suspect=sql.SQL(" OR ").join(suspect) if suspect else sql.SQL("false"),
        flags=sql.SQL("").join(
            sql.SQL(", ({}) AS {}").format(f, sql.Identifier(f"_f{i}")) for i, f in enumerate(flags)
        ),
        selected=selected,
    )


def _repeated_groups_query(selected: sql.Composable, check: _SqlCheck) -> sql.Composable:
    """A uniqueness check's repeated values and how many rows hold each: a hashed GROUP BY which,
    like pandas' ``duplicated`` under GX, treats NULLs as equal."""
    group = sql.SQL(", ").join(_ident(c) for c in check.group)
    return sql.SQL(
        "SELECT {group}, count(*) FROM {selected} AND {considered} GROUP BY {group} HAVING count(*) > 1"
    ).format(group=group, selected=selected, considered=check.considered)


def _group_members(check: _SqlCheck, groups: Sequence[tuple[Any, ...]]) -> sql.Composable:
    """Rows GX must see for a uniqueness check: every row of a repeated group, and any considered
    row with a NULL in the group (``IN`` cannot match a NULL: GX decides about those)."""
    columns = sql.SQL(", ").join(_ident(c) for c in check.group)
    any_null = sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(_ident(c)) for c in check.group)
    members = sql.SQL("false")
    if groups:
        members = sql.SQL("({}) IN ({})").format(
            columns,
            sql.SQL(", ").join(
                sql.SQL("({})").format(sql.SQL(", ").join(sql.Literal(v) for v in group)) for group in groups
            ),
        )
    return sql.SQL("(({considered}) AND ({members} OR {any_null}))").format(
        considered=check.considered, members=members, any_null=any_null
    )


def sample_rows(
    conn: psycopg.Connection, suite: TableSuite, key_column: str, key_values: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """The first :data:`CLEAN_SAMPLE_ROWS` selected rows read (the suite's columns): GX validates
    them besides the suspect rows, so Data Docs show what passing rows look like."""
    return fetch_rows(conn, suite, key_column, key_values, limit=CLEAN_SAMPLE_ROWS)


class SqlScan(NamedTuple):
    element_count: int
    unexpected_counts: list[int]  # per check of the suite, same order
    rows: list[tuple[Any, ...]]  # the suspect rows (the suite's columns)


def scan_rows(
    conn: psycopg.Connection, suite: TableSuite, key_column: str, key_values: Sequence[Any]
) -> SqlScan:
    """Every expectation's unexpected count over the selected rows, computed by PostgreSQL from
    SQL generated from the suite, and the suspect rows Great Expectations must see.

    Statements, all in one REPEATABLE READ snapshot (the suspect row ids stay valid): one pass for
    every row-level check (:func:`_row_check_query`), one GROUP BY per uniqueness check, then the
    suspect rows by row id and the rows of repeated groups."""
    if not conn.autocommit or conn.info.transaction_status != TransactionStatus.IDLE:
        # its REPEATABLE READ snapshot must be the first statement of its own transaction
        raise ValueError("scan_rows needs an autocommit connection outside any transaction")
    types = _checked_column_types(conn, suite, key_column)
    sql_checks = [_sql_check(c, suite, types) for c in suite.checks]
    row_checks = [c for c in sql_checks if not c.group]
    selected = _selected(suite, types, key_column, key_values)
    cols = sql.SQL(", ").join(_ident(c) for c in suite.columns)
    with conn.transaction(), conn.cursor(binary=True) as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        # the uniqueness hash aggregates stay in memory instead of spilling to disk
        cur.execute("SET LOCAL work_mem = '64MB'")
        cur.execute(_row_check_query(selected, row_checks))
        element_count, *row_counts, suspects = cur.fetchone()
        row_counts.reverse()
        counts, members = [], []
        enforced = _enforced_unique_keys(cur, suite.table)
        for check in sql_checks:
            if not check.group:
                counts.append(int(row_counts.pop()))
                continue
            if any(key <= set(check.group) for key in enforced):
                counts.append(0)  # the table's own unique index already forbids a repeat
                continue
            groups = cur.execute(_repeated_groups_query(selected, check)).fetchall()
            counts.append(sum(int(g[-1]) for g in groups))
            if groups or check.null_in_group_possible:
                members.append(_group_members(check, [g[:-1] for g in groups]))
        # the suspect rows by row id (a TID scan), then the rows of repeated groups
        rows: dict[str, tuple[Any, ...]] = {}
        if suspects:  # no key literal in this statement, so a "%" in a key cannot pose as a placeholder
            cur.execute(
                sql.SQL("SELECT ctid::text, {cols} FROM {table} WHERE ctid = ANY(%s::tid[])").format(
                    cols=cols, table=sql.Identifier(*suite.table.split(".", 1))
                ),
                (suspects,),
            )
            rows.update((row[0], row[1:]) for row in cur.fetchall())
        if members:
            cur.execute(
                sql.SQL("SELECT ctid::text, {cols} FROM {selected} AND ({members})").format(
                    cols=cols, selected=selected, members=sql.SQL(" OR ").join(members)
                )
            )
            rows.update((row[0], row[1:]) for row in cur.fetchall())
    return SqlScan(element_count, counts, list(rows.values()))


# --- running -----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _outcomes(validation_result: Any, sample_size: int) -> list[ExpectationOutcome]:
    outcomes = []
    for result in validation_result.results:
        doc = result.to_json_dict()
        config = doc["expectation_config"]
        kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
        column_name = Check(config["type"], kwargs, "").column_name
        details = doc.get("result") or {}
        sample = details.get("partial_unexpected_index_list") or details.get("partial_unexpected_list") or []
        exception = doc.get("exception_info") or {}
        if exception.get("raised_exception"):
            sample = [{"error": exception.get("exception_message")}]
        outcomes.append(
            ExpectationOutcome(
                expectation_type=config["type"],
                column_name=column_name,
                kwargs=_jsonable(kwargs),
                success=bool(doc["success"]),
                element_count=details.get("element_count"),
                unexpected_count=details.get("unexpected_count"),
                unexpected_sample=_jsonable(list(sample)[:sample_size]),
            )
        )
    return outcomes


def _gx_summary(
    suite: TableSuite, frame: Any, *, run_id: str, row_filter: str, sample_size: int
) -> tuple[ValidationSummary, Any]:
    """GX over ``frame``: the summary (no Data Docs yet) and the run to render them from."""
    from phonecheck.quality.gx import run_validation

    run = run_validation(suite, frame, sample_size=sample_size)
    summary = ValidationSummary(
        validation_run_id=run_id,
        table=suite.table,
        suite_name=suite.name,
        row_filter=row_filter,
        element_count=len(frame),
        outcomes=_outcomes(run.result, sample_size),
    )
    return summary, run


def _with_docs(
    summary: ValidationSummary, run: Any, suite: TableSuite, docs: Path | None
) -> ValidationSummary:
    if docs is None:
        return summary
    from phonecheck.quality.gx import render_data_docs

    page = render_data_docs(run, suite, docs, run_name=summary.validation_run_id)
    return dataclasses.replace(summary, data_docs_path=page)


def validate_frame(
    table: str,
    frame: Any,
    *,
    validation_run_id: str | None = None,
    row_filter: str = "rows given",
    data_docs: Path | None = None,
    sample_size: int = SAMPLE_SIZE,
    suite: TableSuite | None = None,
) -> ValidationSummary:
    """Run ``table``'s suite over a DataFrame built by :func:`frame_from_rows` (e.g. parsed rows
    before a load). Stores nothing; renders Data Docs into ``data_docs`` when given."""
    suite = suite or suite_for(table)
    run_id = validation_run_id or new_validation_run_id(table)
    summary, run = _gx_summary(suite, frame, run_id=run_id, row_filter=row_filter, sample_size=sample_size)
    return _with_docs(summary, run, suite, data_docs)


def validate_records(table: str, rows: Iterable[Mapping[str, Any]], **kwargs: Any) -> ValidationSummary:
    """Validate parser output (dicts keyed by column) without touching the warehouse."""
    suite = suite_for(table)
    return validate_frame(table, frame_from_rows(suite, rows), suite=suite, **kwargs)


def new_validation_run_id(table: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{table.split('.', 1)[-1]}__{stamp}__{uuid.uuid4().hex[:12]}"


def describe_filter(key_column: str, key_values: Sequence[Any], shown: int = 5) -> str:
    values = [str(v) for v in key_values]
    listed = ", ".join(values[:shown]) + (f", ... ({len(values)} values)" if len(values) > shown else "")
    return f"{key_column} IN ({listed})"


def store_results(
    conn: psycopg.Connection,
    summary: ValidationSummary,
    context: Mapping[str, str] | None = None,
) -> int:
    """Insert one ``dq.validation_result`` row per expectation of ``summary``; returns the count."""
    context = context or {}
    airflow_run_id = context.get("airflow_run_id") or context.get("run_id")
    validated_at = datetime.now(UTC)
    rows = [
        (
            summary.validation_run_id,
            context.get("dag_id"),
            context.get("task_id"),
            airflow_run_id,
            summary.table,
            summary.suite_name,
            o.expectation_type,
            o.column_name,
            Jsonb(o.kwargs),
            o.success,
            o.element_count,
            o.unexpected_count,
            Jsonb(o.unexpected_sample),
            summary.row_filter,
            validated_at,
        )
        for o in summary.outcomes
    ]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO dq.validation_result (validation_run_id, dag_id, task_id, airflow_run_id,
                   table_name, suite_name, expectation_type, column_name, expectation_kwargs, success,
                   element_count, unexpected_count, unexpected_sample, row_filter, validated_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            rows,
        )
    return len(rows)


def validate_rows(
    dsn: str,
    table: str,
    *,
    key_column: str,
    key_values: Sequence[str],
    context: Mapping[str, str] | None = None,
    data_docs: bool | Path = True,
    sample_size: int = SAMPLE_SIZE,
    full_gx: bool = False,
) -> ValidationSummary:
    """Validate the rows of ``table`` whose ``key_column`` is in ``key_values``.

    By default PostgreSQL first counts every expectation's unexpected rows in one query
    (:func:`scan_rows`) and Great Expectations validates only the suspect rows plus a fixed clean
    sample; the stored counts are GX's, which must equal the SQL counts (a disagreement logs a
    warning and the whole set is validated by GX). ``full_gx=True`` hands GX every row.

    Stores one ``dq.validation_result`` row per expectation (``context`` supplies ``dag_id``,
    ``task_id`` and ``run_id``/``airflow_run_id``), renders Data Docs (``data_docs=True``: into
    :func:`data_docs_dir`; a path: there; ``False``: not at all) and returns the summary.
    Never deletes or changes the validated rows.
    """
    suite = suite_for(table)
    key_values = list(dict.fromkeys(key_values))  # order kept, repeats dropped
    docs = data_docs_dir() if data_docs is True else (Path(data_docs) if data_docs else None)
    run_id = new_validation_run_id(table)
    row_filter = describe_filter(key_column, key_values)

    def gx_over(rows: Sequence[tuple[Any, ...]]) -> tuple[ValidationSummary, Any]:
        frame = frame_from_rows(suite, rows)
        return _gx_summary(suite, frame, run_id=run_id, row_filter=row_filter, sample_size=sample_size)

    with psycopg.connect(dsn, autocommit=True) as conn:
        summary = None
        if not full_gx:
            sample = sample_rows(conn, suite, key_column, key_values)
            # GX validates the clean sample in a second thread while PostgreSQL scans every row;
            # the scan waits in this thread, so an interrupt or a task timeout cancels the query
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="quality-gx") as pool:
                validating = pool.submit(gx_over, sample)
                scan = scan_rows(conn, suite, key_column, key_values)
                subset, run = validating.result()
            # Suspect rows join the sample; the scan's version of a row replaces the sample's (the
            # sample was read in an earlier snapshot). A sample row that turned bad is suspect, so
            # replaced; one that turned good makes GX count more than SQL: full GX below.
            width = len(suite.key)
            rows = {row[:width]: row for row in sample}
            changed = False
            for row in scan.rows:
                if rows.get(row[:width]) != row:
                    rows[row[:width]] = row
                    changed = True
            if changed:
                subset, run = gx_over(list(rows.values()))
            summary = _with_full_counts(subset, suite, scan)
        if summary is None:  # asked for, or the SQL scan and GX disagreed on a count
            summary, run = gx_over(fetch_rows(conn, suite, key_column, key_values))
        summary = _with_docs(summary, run, suite, docs)
        store_results(conn, summary, context)
    (log.info if summary.success else log.warning)("%s", summary.describe())
    return summary


def _with_full_counts(
    subset: ValidationSummary, suite: TableSuite, scan: SqlScan
) -> ValidationSummary | None:
    """GX's outcomes on the suspect rows, with the element count of the whole set; None when a
    GX count differs from the SQL count (then the SQL form of a check is wrong: trust GX).

    GX reports results in its own order (grouped by the metrics it computes), so SQL counts are
    matched by expectation type, column and order of appearance, not by position."""
    sql_counts: dict[tuple[str, str | None], list[int]] = {}
    for check, count in zip(suite.checks, scan.unexpected_counts, strict=True):
        sql_counts.setdefault((check.expectation_type, check.column_name), []).append(count)
    outcomes = []
    for outcome in subset.outcomes:
        counts = sql_counts.get((outcome.expectation_type, outcome.column_name))
        sql_count = counts.pop(0) if counts else None
        if sql_count is None or (outcome.unexpected_count or 0) != sql_count:
            log.warning(
                "%s: %s on %s: GX counted %s unexpected among the suspect rows, SQL %s over all rows; "
                "validating every row with GX",
                suite.table,
                outcome.expectation_type,
                outcome.column_name,
                outcome.unexpected_count,
                sql_count,
            )
            return None
        outcomes.append(dataclasses.replace(outcome, element_count=scan.element_count))
    if any(sql_counts.values()):  # a check GX did not report
        return None
    return dataclasses.replace(subset, element_count=scan.element_count, outcomes=outcomes)
