"""Which warehouse columns hold personal data: the classification tags in the catalogue.

A column comment starts with ``[pii]`` (holds or can reveal a phone number, a call recording or
a raw vendor payload), ``[pseudonym]`` (a keyed pseudonym), ``[secret]`` (key material) or
``[not pii]`` (a number-like name that is not personal, e.g. ``phone_count``). Migrations tag
columns with ``SELECT ops.classify_column(schema, table, column, 'pii')``.

:func:`unclassified_columns` lists the columns whose *name* looks like it could hold a number
but carry no tag; :func:`untagged_columns_holding` the untagged columns whose *content* holds one
of the given numbers. Both must stay empty (tests/integration/test_privacy.py).
"""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

from phonecheck.warehouse import WAREHOUSE_SCHEMAS

TAG = re.compile(r"^\[(pii|not pii|pseudonym|secret)\] ")

#: Column names that suggest a phone number, a recording or a raw payload.
NUMBER_LIKE_NAME = re.compile(
    r"(phone|e164|msisdn|number|caller|callee|(^|_)did(_|$)|extension|national|stand_|"
    r"record_url|record_file|recording|(^|_)body$|payload|query_string|raw_input|dedupe_key|"
    r"sample|contact|mobile|(^|_)tel(_|$)|(^|_)ani(_|$)|(^|_)dnis(_|$))",
    re.IGNORECASE,
)


def column_tags(conn: psycopg.Connection) -> dict[tuple[str, str, str], str | None]:
    """(schema, relation, column) -> tag (None when untagged) for every warehouse column."""
    rows = conn.execute(
        """SELECT n.nspname, c.relname, a.attname, col_description(c.oid, a.attnum)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition""",
        (list(WAREHOUSE_SCHEMAS),),
    ).fetchall()
    tags = {}
    for schema, rel, col, comment in rows:
        match = TAG.match(comment or "")
        tags[(schema, rel, col)] = match.group(1) if match else None
    return tags


def unclassified_columns(conn: psycopg.Connection) -> list[str]:
    """``schema.relation.column`` of every number-like column without a classification tag."""
    return sorted(
        f"{s}.{r}.{c}"
        for (s, r, c), tag in column_tags(conn).items()
        if tag is None and NUMBER_LIKE_NAME.search(c)
    )


def untagged_columns_holding(conn: psycopg.Connection, needles: list[str]) -> list[str]:
    """``schema.relation.column`` of every column not tagged pii/secret whose text holds a needle."""
    found = []
    for (schema, rel, col), tag in sorted(column_tags(conn).items()):
        if tag in ("pii", "secret"):
            continue
        query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {}::text LIKE ANY(%s))").format(
            sql.Identifier(schema, rel), sql.Identifier(col)
        )
        if conn.execute(query, ([f"%{n}%" for n in needles],)).fetchone()[0]:
            found.append(f"{schema}.{rel}.{col}")
    return found
