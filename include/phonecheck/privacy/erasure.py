"""Erase phone numbers everywhere we hold them (a data subject's request), and log it by pseudonym.

What happens to a number (docs/privacy.md):

* rows *about* the number are deleted: its typed results (``telco.nxcloud_number_check``,
  ``telco.accuauth_phone_check``, ``telco.nxcloud_voice_receipt``), its AccuAuth claims and its
  offline rejections; call records where it is a party lose that party's numbers and the
  recording (the other party's row stays);
* every other value that contains it is redacted in place, whatever table or column it is in:
  verbatim inbox bodies and query strings, parsed payloads, dedupe keys, vendor answers, the
  submissions' number lists, dq samples... The catalogue is walked (every text, JSON, bytea and
  text[] column of every table in the warehouse schemas), so a table added later is covered too.
  The number becomes ``[erased:<8 hex of its pseudonym>]`` (distinct per number, so redacted
  unique keys stay unique);
* files: the receiver's spool and quarantine (``phonecheck.receiver.spool.erase_matching``) and
  the Data Docs folder are rewritten without it.

``ops.erasure_log`` gets one ``requested`` row per number and one row per place that held it,
keyed by the pseudonym, never the number. Running the same request again finds nothing and
changes nothing but the log. A dry run only counts (``found`` rows).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from phonecheck.numbers import Normalised, normalise
from phonecheck.privacy.masking import mask_number, mask_numbers_in_text
from phonecheck.warehouse import WAREHOUSE_SCHEMAS

log = logging.getLogger(__name__)

#: Fewer digits than this cannot name one person's number: refused (it would redact half the inbox).
MIN_DIGITS = 6

#: Tables the generic redaction never touches: the log itself, the key, the migration ledger.
_SKIP_TABLES = {("ops", "erasure_log"), ("ops", "pseudonym_key"), ("ops", "schema_migration")}

#: Tables whose rows about the number are deleted (the call record only loses one party).
_DELETING = {
    "telco.nxcloud_number_check",
    "telco.accuauth_phone_check",
    "telco.nxcloud_voice_receipt",
    "ops.accuauth_submit_claim",
    "ops.rejected_number",
}

_SEARCHABLE_TYPES = {"text", "character varying", "jsonb", "json", "bytea", "text[]"}


@dataclass(frozen=True)
class ErasureTarget:
    """One number to erase, in every form we look for."""

    e164: str
    needles: tuple[str, ...]  # digit strings, longest first: E.164 digits, national number

    @property
    def digits(self) -> str:
        return self.e164[1:]

    @property
    def masked(self) -> str:
        return mask_number(self.e164)


@dataclass
class ErasureReport:
    """What one request erased (or, on a dry run, would erase), per number and place."""

    erasure_run: str
    dry_run: bool
    #: masked number -> {location: items}
    found: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(sum(places.values()) for places in self.found.values())

    def describe(self) -> str:
        verb = "would erase" if self.dry_run else "erased"
        lines = [f"erasure {self.erasure_run}: {verb} {self.total} item(s) for {len(self.found)} number(s)"]
        for masked, places in self.found.items():
            where = ", ".join(f"{place} {n}" for place, n in sorted(places.items())) or "nothing held"
            lines.append(f"  {masked}: {where}")
        return "\n".join(lines)


def erasure_target(raw: str) -> ErasureTarget:
    """The forms of ``raw`` to look for: E.164 digits and, for a valid number, its national digits.

    Numbers that do not parse (e.g. an offline rejection) are erased by their digits.
    """
    text = raw.strip()
    digits = re.sub(r"\D", "", text)
    if len(digits) < MIN_DIGITS:
        raise ValueError(f"{mask_number(text)}: fewer than {MIN_DIGITS} digits, not a number we can erase")
    parsed = normalise(text if text.startswith("+") else "+" + digits)
    if isinstance(parsed, Normalised):
        import phonenumbers

        national = str(phonenumbers.parse(parsed.e164).national_number)
        needles = [parsed.digits]
        if len(national) >= MIN_DIGITS + 1 and national != parsed.digits:
            needles.append(national)
        return ErasureTarget(parsed.e164, tuple(needles))
    return ErasureTarget("+" + digits, (digits,))


def _token(phone_key: str) -> str:
    return f"[erased:{phone_key[:8]}]"


def _pattern(target: ErasureTarget) -> re.Pattern[str]:
    # an optional + (or its URL encoding) goes with the number
    return re.compile("(?:\\+|%2[bB])?(?:" + "|".join(re.escape(n) for n in target.needles) + ")")


def redact_value(value, pattern: re.Pattern[str], token: str):
    """``value`` (str, bytes, list, JSON tree) with every match of ``pattern`` replaced by ``token``."""
    if isinstance(value, str):
        return pattern.sub(token, value)
    if isinstance(value, bytes | bytearray | memoryview):
        return re.compile(pattern.pattern.encode()).sub(token.encode(), bytes(value))
    if isinstance(value, list):
        return [redact_value(v, pattern, token) for v in value]
    if isinstance(value, dict):
        return {redact_value(k, pattern, token): redact_value(v, pattern, token) for k, v in value.items()}
    if isinstance(value, int | float) and not isinstance(value, bool) and pattern.search(str(value)):
        return token
    return value


# ------------------------------------------------------------------------------------------------
# the warehouse
# ------------------------------------------------------------------------------------------------
def _delete_rows_about(conn: psycopg.Connection, target: ErasureTarget) -> dict[str, int]:
    """Rows whose subject is the number: deleted."""
    e164, digits = target.e164, target.digits
    statements = {
        "telco.nxcloud_number_check": ("e164 = %(e164)s OR phone = %(digits)s OR stand_number = %(digits)s"),
        "telco.accuauth_phone_check": "e164 = %(e164)s OR phone_number = %(digits)s",
        "telco.nxcloud_voice_receipt": "e164 = %(e164)s OR phone = %(digits)s",
        "ops.accuauth_submit_claim": "e164 = %(e164)s",
        "ops.rejected_number": "regexp_replace(raw_input, '\\D', '', 'g') = ANY(%(needles)s)",
    }
    counts: dict[str, int] = {}
    params = {"e164": e164, "digits": digits, "needles": list(target.needles)}
    for table, where in statements.items():
        schema, name = table.split(".")
        ident = sql.Identifier(schema, name)
        query = sql.SQL("DELETE FROM {} WHERE {}").format(ident, sql.SQL(where))
        n = conn.execute(query, params).rowcount
        if n:
            counts[table] = n
    # a call record is about two parties: the erased party's numbers and the recording go
    parties = (
        "did",
        "did_x",
        "did_y",
        "caller",
        "callee",
        "extension_caller",
        "extension_callee",
        "extension_x",
    )
    match = sql.SQL(" OR ").join(
        sql.SQL("regexp_replace(coalesce({}, ''), '\\D', '', 'g') = %(digits)s").format(sql.Identifier(c))
        for c in parties
    )
    sets = sql.SQL(", ").join(
        sql.SQL(
            "{c} = CASE WHEN regexp_replace(coalesce({c}, ''), '\\D', '', 'g') = %(digits)s THEN NULL ELSE {c} END"
        ).format(c=sql.Identifier(c))
        for c in parties
    )
    n = conn.execute(
        sql.SQL("UPDATE telco.nxcloud_call_record SET {}, record_file = NULL WHERE ").format(sets) + match,
        params,
    ).rowcount
    if n:
        counts["telco.nxcloud_call_record"] = n
    return counts


def _searchable_columns(conn: psycopg.Connection) -> list[tuple[str, str, str, str, bool, str]]:
    """(schema, table, column, type, in a unique index, the table's parent if it is a partition) of
    every column that can hold a number."""
    rows = conn.execute(
        """SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, NULL),
                  EXISTS (SELECT 1 FROM pg_index i
                          WHERE i.indrelid = c.oid AND i.indisunique AND a.attnum = ANY(i.indkey)),
                  coalesce((SELECT p.relname FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent
                            WHERE h.inhrelid = c.oid), c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           WHERE n.nspname = ANY(%s) AND c.relkind = 'r'
           ORDER BY 1, 2, a.attnum""",
        (list(WAREHOUSE_SCHEMAS),),
    ).fetchall()
    return [r for r in rows if r[3] in _SEARCHABLE_TYPES and (r[0], r[1]) not in _SKIP_TABLES]


def _contains(column: str, type_: str) -> sql.Composable:
    col = sql.Identifier(column)
    if type_ == "bytea":
        return sql.SQL("position(convert_to(%(needle)s, 'UTF8') in {}) > 0").format(col)
    if type_ == "text[]":
        return sql.SQL("strpos(array_to_string({}, ','), %(needle)s) > 0").format(col)
    return sql.SQL("strpos({}::text, %(needle)s) > 0").format(col)


def _redact_everywhere(conn: psycopg.Connection, target: ErasureTarget, token: str) -> dict[str, int]:
    """Redact the number inside every searchable value of every table (rows keep existing)."""
    pattern = _pattern(target)
    counts: dict[str, int] = {}
    for schema, table, column, type_, unique, parent in _searchable_columns(conn):
        ident = sql.Identifier(schema, table)
        # national digits are only redacted inside values that hold the full number
        where = _contains(column, type_)
        rows = conn.execute(
            sql.SQL("SELECT ctid, {col} FROM {t} WHERE ").format(col=sql.Identifier(column), t=ident) + where,
            {"needle": target.digits},
        ).fetchall()
        if not rows:
            continue
        place = f"{schema}.{parent}.{column}"  # a partition counts for its table
        counts[place] = counts.get(place, 0) + len(rows)
        for ctid, value in rows:
            if unique and isinstance(value, str):
                # a key: two spellings of the number in otherwise equal keys must stay distinct, so
                # the whole value becomes the token plus a keyed hash of the original value
                keyed = conn.execute("SELECT ops.phone_pseudonym(%s)", (value,)).fetchone()[0]
                new = f"{token[:-1]}:{keyed[:12]}]"
            else:
                new = redact_value(value, pattern, token)
            if type_ in ("jsonb", "json"):
                new = Jsonb(new)
            conn.execute(
                sql.SQL("UPDATE {t} SET {col} = %s WHERE ctid = %s").format(
                    t=ident, col=sql.Identifier(column)
                ),
                (new, ctid),
            )
    return counts


# ------------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------------
def redact_files(folder: Path, target: ErasureTarget, token: str, dry_run: bool) -> int:
    """Rewrite every file under ``folder`` that holds the number (atomically); returns how many."""
    if not folder.is_dir():
        return 0
    pattern = re.compile(_pattern(target).pattern.encode())
    needle = target.digits.encode()
    changed = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if needle not in data:
            continue
        changed += 1
        if dry_run:
            continue
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".erasing-")
        with os.fdopen(fd, "wb") as out:
            out.write(pattern.sub(token.encode(), data))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    return changed


def _erase_spool(spool_dir: Path, target: ErasureTarget, dry_run: bool) -> int:
    """The receiver's spool and quarantine, rewritten by the receiver's own code (its records are
    framed and checksummed). A dry run counts the files whose bytes hold the number (bodies are
    stored encoded there, so this can undercount)."""
    if not spool_dir.is_dir():
        return 0
    if dry_run:
        return sum(
            1 for p in spool_dir.rglob("*") if p.is_file() and target.digits.encode() in p.read_bytes()
        )
    from phonecheck.receiver import spool

    erase_matching = getattr(spool, "erase_matching", None)
    if erase_matching is None:  # never rewrite the receiver's checksummed records behind its back
        raise RuntimeError(
            f"cannot erase {target.masked} from the spool under {spool_dir}: this receiver version "
            "has no phonecheck.receiver.spool.erase_matching"
        )
    # only the full number: a national number alone could be someone else's in another country
    return erase_matching(spool_dir, [target.digits.encode()])


def default_spool_dir() -> Path:
    from phonecheck.receiver.app import default_spool_dir as receiver_spool_dir

    return receiver_spool_dir()


def default_data_docs_dir() -> Path:
    from phonecheck.quality.runner import data_docs_dir

    return data_docs_dir()


# ------------------------------------------------------------------------------------------------
# the request
# ------------------------------------------------------------------------------------------------
def erase_numbers(
    dsn: str,
    numbers: Iterable[str],
    *,
    reason: str,
    dry_run: bool = False,
    requested_by: str | None = None,
    spool_dir: Path | None = None,
    data_docs_dir: Path | None = None,
) -> ErasureReport:
    """Erase each of ``numbers`` from the warehouse, the spool and the Data Docs; log by pseudonym.

    The warehouse part of each number is one transaction (all or nothing). Files are rewritten
    after that commit, so a crash leaves at worst a file still to redact: run the request again.
    """
    if not reason or not reason.strip():
        raise ValueError("an erasure needs a reason (e.g. the request's reference)")
    targets = list(dict.fromkeys(erasure_target(n) for n in numbers if n and n.strip()))
    if not targets:
        raise ValueError("no numbers to erase")
    spool_dir = spool_dir or default_spool_dir()
    data_docs_dir = data_docs_dir or default_data_docs_dir()
    report = ErasureReport(erasure_run=uuid.uuid4().hex[:16], dry_run=dry_run)
    safe_reason = mask_numbers_in_text(reason.strip())
    with psycopg.connect(dsn) as conn:
        for target in targets:
            # the spool first: a record a replay already read could otherwise reach the inbox
            # after the warehouse was cleaned
            spooled = _erase_spool(spool_dir, target, dry_run)
            # a dry run does the same work and rolls it back: its counts are exactly what an
            # erasure would change (rows deleted first are not counted again as redacted)
            with conn.transaction(force_rollback=dry_run):
                phone_key = conn.execute("SELECT ops.phone_pseudonym(%s)", (target.e164,)).fetchone()[0]
                token = _token(phone_key)
                places = _delete_rows_about(conn, target)
                places.update(_redact_everywhere(conn, target, token))
                entries = [("ops.erasure_log", "requested", 0)] + [
                    (place, "found" if dry_run else ("deleted" if place in _DELETING else "redacted"), n)
                    for place, n in sorted(places.items())
                ]
            files = {
                "spool": spooled,
                "data_docs": redact_files(data_docs_dir, target, token, dry_run),
            }
            entries += [(place, "found" if dry_run else "redacted", n) for place, n in files.items() if n]
            places.update({place: n for place, n in files.items() if n})
            with conn.transaction():
                with conn.cursor() as cur:
                    cur.executemany(
                        """INSERT INTO ops.erasure_log (erasure_run, phone_key, location, action, items,
                                                        dry_run, reason, requested_by)
                           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
                        [
                            (
                                report.erasure_run,
                                phone_key,
                                place,
                                action,
                                n,
                                dry_run,
                                safe_reason,
                                requested_by,
                            )
                            for place, action, n in entries
                        ],
                    )
            report.found[target.masked] = places
            log.info(
                "erasure %s: %s (%s): %d item(s) %s",
                report.erasure_run,
                target.masked,
                phone_key[:8],
                sum(places.values()),
                "found (dry run)" if dry_run else "erased",
            )
    return report


def parse_numbers(text: str | Sequence[str]) -> list[str]:
    """Numbers from a params field or a file: one per line (commas and semicolons also split)."""
    lines = text if isinstance(text, list | tuple) else re.split(r"[\n,;]+", str(text))
    return [line.strip() for line in lines if line and line.strip() and not line.strip().startswith("#")]


def dumps_report(report: ErasureReport) -> str:
    """The report as JSON (masked numbers and counts only)."""
    return json.dumps({"erasure_run": report.erasure_run, "dry_run": report.dry_run, "found": report.found})
