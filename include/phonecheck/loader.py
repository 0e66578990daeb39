"""Fast idempotent loads into the typed tables: binary COPY into a temp staging table, then, in
the same transaction, one ``UPDATE ... FROM stage`` for the keys already present and one
``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` for the rest.

Why this shape: COPY is 5-7x faster than row inserts (docs/development.md), and set-based statements
keep the load atomic. The UPDATE joins the staged rows to the table once (hash or merge join)
instead of taking the speculative-insertion path row by row; after it, the existing keys are
already merged, so the INSERT's ``ON CONFLICT`` finds them unchanged and writes nothing for them
(it stays as the merge rule for a key a concurrent loader inserted in between). The INSERT has no
``WHERE NOT EXISTS`` anti-join on purpose: on a table the planner believes empty it became a
nested loop re-scanning the rows the same statement was inserting (quadratic: 200,000 new rows
took 334 s). The ``DISTINCT ON`` sort (last row wins) only runs when the load really repeats a
key, which the COPY loop notices. ``bench/loader_bench.py`` measures all this.

Merge rules, per table (:data:`TABLES`):

* an incoming NULL never erases a known value (``COALESCE(new, old)``), so a push row and a
  query row for the same number merge into one row with the union of their fields;
* NXCLOUD number check: a query row never changes a value a push brought, price and
  currency always come from the same answer, and the result is the same whatever order the
  answers arrive in (:func:`_number_check_rule`; the writers go through
  :func:`phonecheck.nxcloud.results.merge_results`);
* columns listed in ``overwrite`` take the new value even when NULL (e.g. AccuAuth ``reason``);
* ``guarded`` columns have their own rule (AccuAuth ``status`` never goes back from OK);
* a row is only touched when something actually changes, so loading the same rows twice
  changes nothing (not even ``updated_at``); ``first_seen_at`` is set once, on insert.

Identifiers are composed with :mod:`psycopg.sql`; values only travel through COPY.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class TableSpec:
    table: str  # schema-qualified
    key: tuple[str, ...]
    columns: tuple[str, ...]  # every column a loader may set (key included)
    overwrite: frozenset[str] = field(default_factory=frozenset)
    #: column -> SQL expression over ``t`` (existing) and ``EXCLUDED`` (incoming); static text only.
    guarded: Mapping[str, str] = field(default_factory=dict)
    #: columns the guarded rules read from ``EXCLUDED``: always loaded (NULL when a caller's
    #: ``columns`` leave them out, which ranks the incoming row as having no such answer).
    rank_columns: tuple[str, ...] = ()

    @property
    def schema_name(self) -> tuple[str, str]:
        schema, name = self.table.split(".")
        return schema, name


_NUMBER_CHECK_COLUMNS = (
    "batch_no", "phone", "message_id", "check_level", "code", "msg", "pre_check", "region_code",
    "country_code", "national_number", "stand_number", "number_type", "carrier", "validity",
    "reachable", "roaming", "early", "answered", "response", "mcc", "mnc", "ported", "active",
    "price", "currency", "e164", "source", "raw_event_id", "submission_id", "pushed_at", "queried_at",
    "vendor_check_level", "vendor_answer_id",
)  # fmt: skip

_ACCUAUTH_COLUMNS = (
    "task_id", "request_id", "phone_number", "e164", "status", "reason", "phone_status",
    "submitted_at", "completed_at", "expires_at", "poll_count", "source", "raw_event_id", "submission_id",
    "echoed_number", "vendor_answer_id",
)  # fmt: skip

_VOICE_COLUMNS = (
    "message_id", "phone", "country_code", "duration", "voice_type", "basic_price", "second", "cycle",
    "size", "customer_price", "start_time_local", "end_time_local", "start_time", "end_time", "result",
    "hangup_cause", "hangup_disposition", "ivr_result", "record_url", "ext", "e164", "source", "raw_event_id",
)  # fmt: skip

_CALL_COLUMNS = (
    "record_id", "call_id", "business_id", "customer_bind_id", "bind_id", "did", "did_x", "did_y",
    "caller", "callee", "extension_caller", "extension_callee", "extension_x", "pns_type", "call_status",
    "call_status_msg", "duration", "start_at_epoch", "answer_at_epoch", "hangup_at_epoch", "start_at",
    "answer_at", "hangup_at", "hangup_cause", "hangup_code", "hangup", "record_file", "ext", "leg_list",
    "source", "raw_event_id",
)  # fmt: skip

# AccuAuth: a finished answer (OK) is final; EXPIRED only replaces PENDING; a late PENDING poll
# never reopens a finished task.
_ACCUAUTH_STATUS_RULE = (
    "CASE WHEN t.status = 'OK' THEN t.status "
    "WHEN EXCLUDED.status = 'PENDING' AND t.status <> 'PENDING' THEN t.status "
    "ELSE EXCLUDED.status END"
)

# NXCLOUD number check: the one merge rule of push and query rows (documented on the table in
# the data dictionary and in docs/vendors/nxcloud.md), the same whatever order the answers
# arrive in. Answers are ranked: a push above a query row; among pushes the first delivered
# (earliest pushed_at: the vendor retries the same body); among query rows the latest read. A row
# ranks as its best answer so far (pushed_at set = it has a push). Each column takes the
# better-ranked answer's value and only fills holes from the other; a NULL never erases a value.
# price and currency are one pair from one answer. The timestamps and provenance columns are
# order-free too: pushed_at the first delivery (raw_event_id its event), queried_at the latest
# read (vendor_answer_id / vendor_check_level its page), source 'push' once any push merged.
# A row with neither timestamp (only hand-made rows: every writer sets one) ranks lowest and,
# as before, is replaced by what comes next.
_INCOMING_BETTER = (
    "(CASE WHEN EXCLUDED.pushed_at IS NOT NULL AND t.pushed_at IS NULL THEN true "
    "WHEN EXCLUDED.pushed_at IS NULL AND t.pushed_at IS NOT NULL THEN false "
    "WHEN EXCLUDED.pushed_at IS NOT NULL THEN EXCLUDED.pushed_at < t.pushed_at "
    "ELSE EXCLUDED.queried_at IS NULL OR t.queried_at IS NULL OR EXCLUDED.queried_at > t.queried_at END)"
)
_PRICE_FROM_EXISTING = f"(EXCLUDED.price IS NULL OR (NOT {_INCOMING_BETTER} AND t.price IS NOT NULL))"
_EARLIER_PUSH = (
    "(EXCLUDED.pushed_at IS NOT NULL AND (t.pushed_at IS NULL OR EXCLUDED.pushed_at < t.pushed_at))"
)
_LATER_QUERY = (
    "(EXCLUDED.queried_at IS NOT NULL AND (t.queried_at IS NULL OR EXCLUDED.queried_at > t.queried_at))"
)
_FOLLOWS = {
    "raw_event_id": _EARLIER_PUSH,
    "vendor_answer_id": _LATER_QUERY,
    "vendor_check_level": _LATER_QUERY,
}


def _prefer(condition: str, column: str) -> str:
    return (
        f"CASE WHEN {condition} THEN COALESCE(EXCLUDED.{column}, t.{column}) "
        f"ELSE COALESCE(t.{column}, EXCLUDED.{column}) END"
    )


def _number_check_rule(column: str) -> str:
    if column == "pushed_at":
        return "LEAST(t.pushed_at, EXCLUDED.pushed_at)"  # LEAST/GREATEST skip NULLs
    if column == "queried_at":
        return "GREATEST(t.queried_at, EXCLUDED.queried_at)"
    if column == "source":
        return (
            "CASE WHEN t.pushed_at IS NOT NULL OR EXCLUDED.pushed_at IS NOT NULL THEN 'push' "
            "ELSE COALESCE(EXCLUDED.source, t.source) END"
        )
    if column in _FOLLOWS:
        return _prefer(_FOLLOWS[column], column)
    if column in ("price", "currency"):
        return f"CASE WHEN {_PRICE_FROM_EXISTING} THEN t.{column} ELSE EXCLUDED.{column} END"
    return _prefer(_INCOMING_BETTER, column)


TABLES: dict[str, TableSpec] = {
    spec.table: spec
    for spec in (
        TableSpec(
            "telco.nxcloud_number_check",
            ("batch_no", "phone"),
            _NUMBER_CHECK_COLUMNS,
            guarded={
                c: _number_check_rule(c) for c in _NUMBER_CHECK_COLUMNS if c not in ("batch_no", "phone")
            },
            rank_columns=("pushed_at", "queried_at"),
        ),
        TableSpec(
            "telco.accuauth_phone_check",
            ("task_id",),
            _ACCUAUTH_COLUMNS,
            overwrite=frozenset({"reason"}),
            guarded={
                "status": _ACCUAUTH_STATUS_RULE,
                "reason": f"CASE WHEN ({_ACCUAUTH_STATUS_RULE}) = t.status AND t.status <> 'PENDING' "
                "THEN t.reason ELSE EXCLUDED.reason END",
                "poll_count": "GREATEST(t.poll_count, EXCLUDED.poll_count)",
                # a callback carries the vendor's echo, not the number we sent: it never replaces it
                "phone_number": "CASE WHEN EXCLUDED.source = 'callback' THEN t.phone_number "
                "ELSE COALESCE(EXCLUDED.phone_number, t.phone_number) END",
                "e164": "CASE WHEN EXCLUDED.source = 'callback' THEN COALESCE(t.e164, EXCLUDED.e164) "
                "ELSE COALESCE(EXCLUDED.e164, t.e164) END",
            },
        ),
        TableSpec("telco.nxcloud_voice_receipt", ("message_id", "phone"), _VOICE_COLUMNS),
        TableSpec("telco.nxcloud_call_record", ("record_id",), _CALL_COLUMNS),
    )
}


@dataclass(frozen=True)
class LoadResult:
    table: str
    received: int  # rows handed to the loader
    inserted: int
    updated: int

    @property
    def unchanged(self) -> int:
        return self.received - self.inserted - self.updated


def _column_types(conn: psycopg.Connection, spec: TableSpec) -> dict[str, tuple[str, str, str | None]]:
    """column -> (SQL type with modifiers for the staging table, pg_type name for binary COPY,
    default expression of a NOT NULL column, used in place of an incoming NULL)."""
    schema, name = spec.schema_name
    rows = conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname,
                  CASE WHEN a.attnotnull THEN pg_get_expr(d.adbin, d.adrelid) END
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
           WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped""",
        (schema, name),
    ).fetchall()
    types = {col: (sql_type, type_name, default) for col, sql_type, type_name, default in rows}
    missing = [c for c in spec.columns if c not in types]
    if missing:
        raise ValueError(f"{spec.table} has no column(s) {missing}: are migrations applied?")
    return types


def _merge_expression(spec: TableSpec, column: str) -> sql.Composable:
    if column in spec.guarded:
        return sql.SQL(spec.guarded[column])
    if column in spec.overwrite:
        return sql.SQL("EXCLUDED.{}").format(sql.Identifier(column))
    return sql.SQL("COALESCE(EXCLUDED.{c}, t.{c})").format(c=sql.Identifier(column))


def upsert(
    conn: psycopg.Connection,
    table: str,
    rows: Iterable[Mapping[str, Any]],
    *,
    columns: Sequence[str] | None = None,
) -> LoadResult:
    """Upsert ``rows`` (dicts keyed by column name) into ``table`` in the caller's transaction.

    Only ``columns`` (default: the table's loadable columns) are written; keys absent from a row
    load as NULL, which never erases a stored value. Rows repeating a key within one call: the
    last one wins. Returns how many rows were inserted and updated.
    """
    spec = TABLES[table]
    cols = tuple(columns) if columns else spec.columns
    cols += tuple(c for c in spec.rank_columns if c not in cols)
    unknown = set(cols) - set(spec.columns)
    if unknown:
        raise ValueError(f"{table}: not loadable column(s) {sorted(unknown)}")
    if not set(spec.key) <= set(cols):
        raise ValueError(f"{table}: the key {spec.key} must be among the loaded columns")
    types = _column_types(conn, spec)
    schema, name = spec.schema_name
    target = sql.Identifier(schema, name)
    stage = sql.Identifier(f"_stage_{name}")
    ident = [sql.Identifier(c) for c in cols]
    jsonb_cols = {i for i, c in enumerate(cols) if types[c][1] == "jsonb"}

    key_positions = [cols.index(k) for k in spec.key]
    seen_keys: set[tuple[Any, ...]] = set()
    repeats_a_key = False
    received = 0
    with conn.transaction():
        # the hash join and, when needed, the DISTINCT ON sort fit in memory instead of spilling
        conn.execute("SET LOCAL work_mem = '64MB'")
        conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {stage} (_ord bigint, {defs}) ON COMMIT DELETE ROWS"
            ).format(
                stage=stage,
                defs=sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(types[c][0])) for c in cols
                ),
            )
        )
        conn.execute(sql.SQL("TRUNCATE {}").format(stage))
        copy_sql = sql.SQL("COPY {stage} (_ord, {cols}) FROM STDIN (FORMAT BINARY)").format(
            stage=stage, cols=sql.SQL(", ").join(ident)
        )
        with conn.cursor() as cur, cur.copy(copy_sql) as copy:
            copy.set_types(["int8", *(types[c][1] for c in cols)])
            for received, row in enumerate(rows, start=1):  # noqa: B007 - counter used below
                values = [row.get(c) for c in cols]
                for i in jsonb_cols:
                    if values[i] is not None:
                        values[i] = Jsonb(values[i])
                if not repeats_a_key:
                    key = tuple(values[i] for i in key_positions)
                    repeats_a_key = key in seen_keys
                    seen_keys.add(key)
                copy.write_row([received, *values])
        seen_keys.clear()
        if not received:
            return LoadResult(table, 0, 0, 0)

        key_ident = [sql.Identifier(c) for c in spec.key]
        updatable = [c for c in cols if c not in spec.key]
        merged = [_merge_expression(spec, c) for c in updatable]
        parts = {
            "target": target,
            "cols": sql.SQL(", ").join(ident),
            "key": sql.SQL(", ").join(key_ident),
            "sets": sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(c), m)
                for c, m in zip(updatable, merged, strict=True)
            ),
            "current": sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in updatable),
            "merged": sql.SQL(", ").join(merged),
            "same_key": sql.SQL(" AND ").join(sql.SQL("t.{k} = excluded.{k}").format(k=k) for k in key_ident),
        }
        # the staged rows, one per key (the last one wins), NULLs of NOT NULL columns that have
        # a default replaced by that default ("not known" must not break the insert)
        values_sql = sql.SQL(", ").join(
            sql.SQL("COALESCE({}, {}) AS {}").format(i, sql.SQL(types[c][2]), i) if types[c][2] else i
            for c, i in zip(cols, ident, strict=True)
        )
        if repeats_a_key:
            staged = sql.SQL("SELECT DISTINCT ON ({key}) {values} FROM {stage} ORDER BY {key}, _ord DESC")
        else:
            staged = sql.SQL("SELECT {values} FROM {stage}")
        parts["staged"] = staged.format(key=parts["key"], values=values_sql, stage=stage)

        # ``excluded`` names the incoming row in both statements, as it does in ON CONFLICT, so
        # the merge expressions (and the guarded rules' static SQL) are shared.
        updated = conn.execute(
            sql.SQL(
                """UPDATE {target} AS t SET {sets}, updated_at = now()
                   FROM ({staged}) AS excluded
                   WHERE {same_key} AND ({current}) IS DISTINCT FROM ({merged})"""
            ).format(**parts)
        ).rowcount
        inserted, raced = conn.execute(
            sql.SQL(
                """WITH written AS (
                     INSERT INTO {target} AS t ({cols})
                     SELECT * FROM ({staged}) AS excluded
                     ON CONFLICT ({key}) DO UPDATE SET {sets}, updated_at = now()
                     WHERE ({current}) IS DISTINCT FROM ({merged})
                     RETURNING (xmax = 0) AS inserted)
                   SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written"""
            ).format(**parts)
        ).fetchone()
    return LoadResult(table, received, inserted, updated + raced)
