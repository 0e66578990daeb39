"""Great Expectations expectations translated to SQL: one entry per expectation type in
:data:`SQL_FORMS`, each naming the arguments its SQL form honours and the function that builds it.

A form is evaluated per row of the validated set. ``unexpected`` mirrors how GX counts (column map
expectations ignore NULLs; the pair and compound expectations honour ``ignore_row_if``);
``also_suspect`` flags rows GX must see although SQL does not count them: e.g. any value with a
character outside printable ASCII is suspect for a regex, because Python's and PostgreSQL's regex
dialects may differ there. An expectation type or an argument without a form here (``mostly``,
``row_condition``, ...) would change what GX counts, so :func:`sql_check` refuses it rather than
guess: the runner then lets GX see every row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from psycopg import sql

from phonecheck.quality.rows import ident
from phonecheck.quality.suites import (
    MONEY_DECIMALS,
    MONEY_INTEGER_DIGITS,
    MONEY_TEXT_REGEX,
    TEXT_SUFFIX,
    Check,
    TableSuite,
)

_INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})
_TEXT_TYPES = frozenset({"text", "character varying"})


@dataclass(frozen=True)
class SqlCheck:
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


@dataclass(frozen=True)
class _Target:
    """What a form is built for: the check's arguments, its suite and the table's column types."""

    kind: str
    kw: Mapping[str, Any]
    suite: TableSuite
    types: Mapping[str, str]


def _not_null(t: _Target) -> SqlCheck:
    return SqlCheck(sql.SQL("{} IS NULL").format(ident(t.kw["column"])))


def _unique(t: _Target) -> SqlCheck:
    column = t.kw["column"]
    return SqlCheck(group=(column,), considered=sql.SQL("{} IS NOT NULL").format(ident(column)))


def _compound_unique(t: _Target) -> SqlCheck:
    cols = [ident(c) for c in t.kw["column_list"]]
    ignore = t.kw.get("ignore_row_if", "all_values_are_missing")
    if ignore not in ("all_values_are_missing", "any_value_is_missing"):
        raise NotImplementedError(f"no SQL form for {t.kind} with ignore_row_if={ignore!r}")
    joiner = " OR " if ignore == "any_value_is_missing" else " AND "
    missing = sql.SQL(joiner).join(sql.SQL("{} IS NULL").format(c) for c in cols)
    return SqlCheck(
        group=tuple(t.kw["column_list"]),
        considered=sql.SQL("NOT ({})").format(missing),
        null_in_group_possible=ignore != "any_value_is_missing" and len(cols) > 1,
    )


def _in_set(t: _Target) -> SqlCheck:
    name = t.kw["column"]
    column = ident(name)
    value_set = list(t.kw["value_set"])
    # GX compares Python values (isin): ints match ints, strings match strings, never 1 and "1"
    if t.types[name] in _INTEGER_TYPES and all(type(v) is int for v in value_set):
        values = sql.SQL("{}::bigint[]").format(sql.Literal(value_set))  # no text rendering per row
    elif t.types[name] in _TEXT_TYPES and all(type(v) is str for v in value_set):
        column = sql.SQL("{}::text").format(column)
        values = sql.SQL("{}::text[]").format(sql.Literal(value_set))
    else:
        raise NotImplementedError(f"no SQL form for {t.kind} on {t.types[name]} {name} with this value set")
    return SqlCheck(sql.SQL("{c} IS NOT NULL AND NOT ({c} = ANY({v}))").format(c=column, v=values))


def _timestamp_bound(value: Any) -> sql.Composable:
    # GX sees naive UTC datetimes and ISO bounds; the same instant as a timestamptz constant
    # (folded once) compares without converting every row
    return sql.SQL("({}::timestamp AT TIME ZONE 'UTC')").format(sql.Literal(str(value)))


def _numeric_bound(value: Any) -> sql.Composable:
    # GX compares Decimal and int values with the bound exactly: a float bound is the binary
    # number (0.1 is 0.1000000000000000055...), not its short repr
    exact = format(Decimal(value), "f") if isinstance(value, float) else str(value)
    return sql.SQL("{}::numeric").format(sql.Literal(exact))


def _between(t: _Target) -> SqlCheck:
    kw = t.kw
    name = kw["column"]
    column = ident(name)
    bound = _timestamp_bound if name in t.suite.timestamp_columns else _numeric_bound
    outside = []
    if kw.get("min_value") is not None:
        op = sql.SQL("<=") if kw.get("strict_min") else sql.SQL("<")
        outside.append(sql.SQL("{} {} {}").format(column, op, bound(kw["min_value"])))
    if kw.get("max_value") is not None:
        op = sql.SQL(">=") if kw.get("strict_max") else sql.SQL(">")
        outside.append(sql.SQL("{} {} {}").format(column, op, bound(kw["max_value"])))
    pred = sql.SQL("({})").format(sql.SQL(" OR ").join(outside)) if outside else sql.SQL("false")
    if t.types[name].startswith("numeric"):  # pandas takes Decimal("NaN") for a missing value
        pred = sql.SQL("{} <> 'NaN' AND {}").format(column, pred)
    return SqlCheck(sql.SQL("COALESCE({}, false)").format(pred))


def _lengths(t: _Target) -> SqlCheck:
    # Python's len() and char_length() both count code points
    length = sql.SQL("char_length({})").format(ident(t.kw["column"]))
    return SqlCheck(
        sql.SQL("COALESCE({n} < {lo} OR {n} > {hi}, false)").format(
            n=length, lo=sql.Literal(int(t.kw["min_value"])), hi=sql.Literal(int(t.kw["max_value"]))
        )
    )


def _regex(t: _Target) -> SqlCheck:
    name = t.kw["column"].removesuffix(TEXT_SUFFIX)
    if t.kw["regex"] == MONEY_TEXT_REGEX and t.types[name].startswith("numeric"):
        # A numeric's text is [-]digits[.exactly scale digits] (never an exponent) or NaN, so the
        # money pattern holds exactly when the number is not negative, has at most
        # MONEY_INTEGER_DIGITS integer digits and a scale of at most MONEY_DECIMALS: the same
        # answer without rendering every price as text and running a regex on it.
        pred = sql.SQL("COALESCE({c} = 'NaN' OR {c} < 0 OR {c} >= {limit} OR scale({c}) > {decimals}, false)")
        return SqlCheck(
            pred.format(
                c=ident(name),
                limit=sql.SQL("{}::numeric").format(sql.Literal(str(10**MONEY_INTEGER_DIGITS))),
                decimals=sql.Literal(MONEY_DECIMALS),
            )
        )
    # money columns are matched on their text rendering (numeric::text = format(Decimal, "f"))
    column = sql.SQL("{}::text").format(ident(name))
    regex = sql.Literal(t.kw["regex"])
    # GX uses Python's re.search, whose "$" also matches before one final newline
    pred = sql.SQL(
        "CASE WHEN {c} IS NULL OR {c} ~ {rx} THEN false "
        "WHEN right({c}, 1) = E'\\n' THEN NOT left({c}, -1) ~ {rx} ELSE true END"
    ).format(c=column, rx=regex)
    if t.types[name].startswith("numeric"):  # a number's text is plain ASCII, no newline
        return SqlCheck(pred)
    # a newline or anything beyond ASCII goes to GX too (Python's \d also matches other digits)
    suspect = sql.SQL(
        "COALESCE(octet_length({c}) <> char_length({c}) OR strpos({c}, E'\\n') > 0, false)"
    ).format(c=column)
    return SqlCheck(pred, suspect)


def _pair_greater(t: _Target) -> SqlCheck:
    if t.kw.get("ignore_row_if") != "either_value_is_missing":  # GX's default counts a NULL side
        raise NotImplementedError(f"no SQL form for {t.kind} unless ignore_row_if='either_value_is_missing'")
    op = sql.SQL("<") if t.kw.get("or_equal") else sql.SQL("<=")
    pred = sql.SQL("COALESCE({a} {op} {b}, false)").format(
        a=ident(t.kw["column_A"]), b=ident(t.kw["column_B"]), op=op
    )
    return SqlCheck(pred)


@dataclass(frozen=True)
class SqlForm:
    """How one expectation type is written in SQL: the arguments the form honours (any other
    one would change what GX counts) and the builder."""

    kwargs: frozenset[str]
    build: Callable[[_Target], SqlCheck]


def _form(build: Callable[[_Target], SqlCheck], *kwargs: str) -> SqlForm:
    return SqlForm(frozenset(kwargs), build)


#: Every expectation type with a SQL form.
SQL_FORMS: Mapping[str, SqlForm] = {
    "expect_column_values_to_not_be_null": _form(_not_null, "column"),
    "expect_column_values_to_be_unique": _form(_unique, "column"),
    "expect_compound_columns_to_be_unique": _form(_compound_unique, "column_list", "ignore_row_if"),
    "expect_column_values_to_be_in_set": _form(_in_set, "column", "value_set"),
    "expect_column_values_to_be_between": _form(
        _between, "column", "min_value", "max_value", "strict_min", "strict_max"
    ),
    "expect_column_value_lengths_to_be_between": _form(_lengths, "column", "min_value", "max_value"),
    "expect_column_values_to_match_regex": _form(_regex, "column", "regex"),
    "expect_column_pair_values_a_to_be_greater_than_b": _form(
        _pair_greater, "column_A", "column_B", "or_equal", "ignore_row_if"
    ),
}


def sql_check(check: Check, suite: TableSuite, types: Mapping[str, str]) -> SqlCheck:
    """The SQL form of one expectation of ``suite`` over a table with column ``types``; raises
    :class:`NotImplementedError` when the type, an argument or a value has no exact form."""
    kind = check.expectation_type
    form = SQL_FORMS.get(kind)
    unsupported = set(check.kwargs) - (form.kwargs if form else set())
    if form is None or unsupported:
        # e.g. mostly or row_condition would change what GX counts: no SQL form rather than a wrong one
        raise NotImplementedError(f"no SQL form for {kind} with {sorted(unsupported) or 'these arguments'}")
    return form.build(_Target(kind, check.kwargs, suite, types))
