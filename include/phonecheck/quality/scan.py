"""The SQL scan of the fast path: every expectation's unexpected count over the validated rows,
computed by PostgreSQL from the suite's SQL forms (:mod:`phonecheck.quality.sql_forms`), and the
*suspect* rows (a superset of the unexpected ones) Great Expectations must see: one pass for the
row-level checks, one hashed GROUP BY per uniqueness check the table does not enforce itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from phonecheck.quality.rows import checked_column_types, enforced_unique_keys, ident, selected_rows
from phonecheck.quality.sql_forms import SqlCheck, sql_check
from phonecheck.quality.suites import TableSuite


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
    types = checked_column_types(conn, suite, key_column)
    sql_checks = [sql_check(c, suite, types) for c in suite.checks]
    row_checks = [c for c in sql_checks if not c.group]
    selected = selected_rows(suite, types, key_column, key_values)
    cols = sql.SQL(", ").join(ident(c) for c in suite.columns)
    with conn.transaction(), conn.cursor(binary=True) as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        # the uniqueness hash aggregates stay in memory instead of spilling to disk
        cur.execute("SET LOCAL work_mem = '64MB'")
        cur.execute(_row_check_query(selected, row_checks))
        element_count, *row_counts, suspects = cur.fetchone()
        row_counts.reverse()
        counts, members = [], []
        enforced = enforced_unique_keys(cur, suite.table)
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


def _row_check_query(selected: sql.Composable, sql_checks: Sequence[SqlCheck]) -> sql.Composable:
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


def _repeated_groups_query(selected: sql.Composable, check: SqlCheck) -> sql.Composable:
    """A uniqueness check's repeated values and how many rows hold each: a hashed GROUP BY which,
    like pandas' ``duplicated`` under GX, treats NULLs as equal."""
    group = sql.SQL(", ").join(ident(c) for c in check.group)
    return sql.SQL(
        "SELECT {group}, count(*) FROM {selected} AND {considered} GROUP BY {group} HAVING count(*) > 1"
    ).format(group=group, selected=selected, considered=check.considered)


def _group_members(check: SqlCheck, groups: Sequence[tuple[Any, ...]]) -> sql.Composable:
    """Rows GX must see for a uniqueness check: every row of a repeated group, and any considered
    row with a NULL in the group (``IN`` cannot match a NULL: GX decides about those)."""
    columns = sql.SQL(", ").join(ident(c) for c in check.group)
    any_null = sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(ident(c)) for c in check.group)
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
