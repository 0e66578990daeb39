"""The free steps before any paid check, shared by the NXCLOUD and AccuAuth pipelines.

1. Normalise every input offline (:mod:`phonecheck.numbers`); numbers that cannot be valid are
   recorded in ``ops.rejected_number`` with their reason and never sent.
2. Skip numbers already checked recently: a result within the freshness window, or a check
   still in flight (submitted, no result yet), is not bought again. A failure is a result too
   (an invalid or non-mobile number stays so), except NXCLOUD failures on the vendor's side
   (:data:`~phonecheck.enums.NXCLOUD_TRANSIENT_RECEIPT_CODES`; failure pushes carry no cost):
   those are checked again. AccuAuth's ``line_abnormal`` / ``temp_unavailable`` are paid
   answers that say "try later": they stay fresh for the window like any other answer (a user
   who wants them re-checked now runs with ``freshness_days = 0``).

The run's accepted numbers are kept in ``ops.run_number`` keyed by the run (``dag_id/run_id``):
the pipeline's tasks pass each other that key and counts, never the numbers (a list of a
million numbers does not belong in Airflow's metadata database). Input is streamed in blocks,
so memory does not grow with the list.

Idempotent per run: a rejected input is one row of ``ops.rejected_number`` per run with the
number of lines that carried it (the run's rejected count is their sum), and a retried prepare
replaces the run's numbers and rejects.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import psycopg

from phonecheck.enums import NXCLOUD_TRANSIENT_RECEIPT_CODES
from phonecheck.numbers import Normalised, Rejected, normalise

NXCLOUD = "nxcloud"
ACCUAUTH = "accuauth"


#: Inputs are normalised, checked for freshness and stored this many at a time: memory stays
#: flat however long the list (the freshness query takes them as one array parameter).
BLOCK_SIZE = 5000
#: Rejected inputs kept in memory for the task log (all of them are in ``ops.rejected_number``).
REJECTED_SAMPLE = 20


@dataclass
class IntakeSummary:
    """What one run's prepare step made of its input: counts only, whatever the input size."""

    run_key: str
    received: int = 0
    rejected: int = 0
    duplicates: int = 0
    rewritten: int = 0
    skipped_fresh: int = 0
    to_check: int = 0
    regions: int = 0
    reasons: Counter = field(default_factory=Counter)
    rejected_sample: list[Rejected] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {
            "received": self.received,
            "rejected_offline": self.rejected,
            "duplicates": self.duplicates,
            "rewritten": self.rewritten,
            "skipped_fresh": self.skipped_fresh,
            "to_check": self.to_check,
        }


@dataclass(frozen=True)
class RunContext:
    dag_id: str | None = None
    run_id: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def run_key(self) -> str:
        """``<dag_id>/<run_id>``: the key of the run's rows in ``ops.run_number``."""
        return f"{self.dag_id}/{self.run_id}"


_KEEP_REJECTED = """INSERT INTO ops.rejected_number (vendor, raw_input, default_region, reason, dag_id, run_id, lines)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (vendor, run_id, raw_input) DO NOTHING"""
_ADD_REJECTED = _KEEP_REJECTED.replace(
    "DO NOTHING", "DO UPDATE SET lines = ops.rejected_number.lines + EXCLUDED.lines"
)


def record_rejected(
    conn: psycopg.Connection,
    vendor: str,
    rejected: Sequence[Rejected],
    default_region: str | None,
    ctx: RunContext,
    *,
    add_lines: bool = False,
) -> None:
    """Keep rejected inputs for inspection (escaped: NUL and lone surrogates cannot be stored),
    one row per distinct input of the run with the number of lines that carried it.

    ``add_lines`` adds this call's lines to a row already stored for the run (the intake, which
    sees a long list block by block and clears the run's rows first, see :func:`prepare_numbers`);
    without it a row already stored is left as it is, so a retried caller records nothing twice.
    """
    if not rejected:
        return
    lines: Counter[str] = Counter()
    reasons: dict[str, str] = {}
    for r in rejected:
        key = r.storable_raw
        lines[key] += 1
        reasons.setdefault(key, r.reason)
    with conn.cursor() as cur:
        cur.executemany(
            _ADD_REJECTED if add_lines else _KEEP_REJECTED,
            [
                (vendor, raw, default_region, reasons[raw], ctx.dag_id, ctx.run_id, n)
                for raw, n in lines.items()
            ],
        )


def record_origin(conn: psycopg.Connection, dag_id: str, run_id: str, origin: str) -> None:
    """Say which Airflow ran ``dag_id/run_id`` (``ops.run_origin``): the Phone checks page of
    another Airflow on the same warehouse labels the run with it instead of linking to it."""
    conn.execute(
        "INSERT INTO ops.run_origin (dag_id, run_id, origin) VALUES (%s, %s, %s) "
        "ON CONFLICT (dag_id, run_id) DO UPDATE SET origin = EXCLUDED.origin, recorded_at = now()",
        (dag_id, run_id, origin),
    )


_FRESH_NXCLOUD = """
SELECT DISTINCT e164 FROM (
    -- results we hold at that level (pushes carry no checkLevel: take it from our submission)
    SELECT t.e164
    FROM telco.nxcloud_number_check t
    LEFT JOIN ops.number_check_submission s ON s.vendor = 'nxcloud' AND s.batch_no = t.batch_no
    WHERE t.e164 = ANY(%(numbers)s)
      AND COALESCE(t.check_level, s.check_level) = %(level)s
      AND NOT (COALESCE(t.code, 0) = ANY(%(transient)s))
      AND COALESCE(t.pushed_at, t.queried_at, t.updated_at) > now() - make_interval(days => %(days)s)
    UNION ALL
    -- checks in flight: submitted, no result yet
    SELECT '+' || p.phone
    FROM ops.number_check_submission s, unnest(s.phones) AS p(phone)
    WHERE s.vendor = 'nxcloud' AND s.check_level = %(level)s AND s.status IN ('submitted', 'pending', 'in_doubt')
      AND s.submitted_at > now() - make_interval(days => %(days)s)
      AND '+' || p.phone = ANY(%(numbers)s)
) fresh
"""

_FRESH_ACCUAUTH = """
SELECT DISTINCT e164 FROM telco.accuauth_phone_check
WHERE e164 = ANY(%(numbers)s)
  AND (status = 'OK' OR (status = 'PENDING' AND (expires_at IS NULL OR expires_at > now())))
  AND COALESCE(completed_at, submitted_at, updated_at) > now() - make_interval(days => %(days)s)
"""


def recently_checked(
    conn: psycopg.Connection,
    vendor: str,
    e164s: Sequence[str],
    freshness_days: int,
    check_level: int | None = None,
) -> set[str]:
    """E.164 numbers with a result (or a check in flight) inside the window."""
    if not e164s or freshness_days <= 0:
        return set()
    if vendor == NXCLOUD:
        if check_level is None:
            raise ValueError("NXCLOUD freshness needs the check level")
        query = _FRESH_NXCLOUD
        params = {
            "numbers": list(e164s),
            "level": check_level,
            "days": freshness_days,
            "transient": sorted(NXCLOUD_TRANSIENT_RECEIPT_CODES),
        }
    elif vendor == ACCUAUTH:
        query = _FRESH_ACCUAUTH
        params = {"numbers": list(e164s), "days": freshness_days}
    else:
        raise ValueError(f"unknown vendor {vendor!r}")
    return {row[0] for row in conn.execute(query, params)}


_STAGE = """CREATE TEMP TABLE IF NOT EXISTS run_number_stage (
    e164 text, position bigint, region_code text, country_code text, line_type text, raw_input text,
    rewritten text, fresh boolean
) ON COMMIT DROP"""

_KEEP_STAGED = """INSERT INTO ops.run_number
    (run_key, e164, position, vendor, region_code, country_code, line_type, raw_input, rewritten, fresh)
SELECT %(run_key)s, e164, position, %(vendor)s, region_code, country_code, line_type, raw_input, rewritten,
    fresh
FROM run_number_stage ORDER BY position
ON CONFLICT (run_key, e164) DO NOTHING"""


def prepare_numbers(
    conn: psycopg.Connection,
    *,
    vendor: str,
    entries: Iterable[str],
    default_region: str | None,
    freshness_days: int,
    check_level: int | None = None,
    ctx: RunContext,
    allow_vanity: bool = False,
    source: str | None = None,
    origin: str | None = None,
) -> IntakeSummary:
    """Normalise ``entries`` (streamed, :data:`BLOCK_SIZE` at a time), keep the rejects in
    ``ops.rejected_number`` and the run's distinct valid numbers in ``ops.run_number`` (fresh
    ones flagged), and the counts in ``ops.run_intake``. One transaction; a retry of the same
    run replaces its numbers, so it never doubles them. Returns counts only."""
    run_key = ctx.run_key
    result = IntakeSummary(run_key=run_key)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DELETE FROM ops.run_number WHERE run_key = %s", (run_key,))
        # a retried prepare counts its rejected lines again from zero
        cur.execute(
            "DELETE FROM ops.rejected_number WHERE vendor = %s AND run_id IS NOT DISTINCT FROM %s "
            "AND dag_id IS NOT DISTINCT FROM %s",
            (vendor, ctx.run_id, ctx.dag_id),
        )
        cur.execute(_STAGE)
        block: list[str] = []
        for raw in entries:
            block.append(raw)
            if len(block) >= BLOCK_SIZE:
                _prepare_block(cur, block, result, vendor, default_region, freshness_days, check_level,
                               ctx, allow_vanity)  # fmt: skip
                block = []
        if block:
            _prepare_block(cur, block, result, vendor, default_region, freshness_days, check_level,
                           ctx, allow_vanity)  # fmt: skip
        counts = cur.execute(
            "SELECT count(*) FILTER (WHERE fresh), count(*) FILTER (WHERE NOT fresh), "
            "count(DISTINCT region_code) FILTER (WHERE NOT fresh), count(rewritten) "
            "FROM ops.run_number WHERE run_key = %s",
            (run_key,),
        ).fetchone()
        result.skipped_fresh, result.to_check, result.regions, result.rewritten = counts
        cur.execute(
            """INSERT INTO ops.run_intake (run_key, vendor, dag_id, run_id, source, received, rejected,
                   duplicates, rewritten, skipped_fresh, to_check, origin)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (run_key) DO UPDATE SET vendor = EXCLUDED.vendor, source = EXCLUDED.source,
                   origin = EXCLUDED.origin,
                   received = EXCLUDED.received, rejected = EXCLUDED.rejected,
                   duplicates = EXCLUDED.duplicates, rewritten = EXCLUDED.rewritten,
                   skipped_fresh = EXCLUDED.skipped_fresh, to_check = EXCLUDED.to_check, prepared_at = now()""",
            (run_key, vendor, ctx.dag_id, ctx.run_id, source, result.received, result.rejected,
             result.duplicates, result.rewritten, result.skipped_fresh, result.to_check, origin),
        )  # fmt: skip
        if origin and ctx.dag_id and ctx.run_id:
            record_origin(conn, ctx.dag_id, ctx.run_id, origin)
    return result


def _prepare_block(
    cur: psycopg.Cursor,
    block: list[str],
    result: IntakeSummary,
    vendor: str,
    default_region: str | None,
    freshness_days: int,
    check_level: int | None,
    ctx: RunContext,
    allow_vanity: bool,
) -> None:
    first_position = result.received
    result.received += len(block)
    accepted: dict[str, tuple[int, Normalised]] = {}
    rejected: list[Rejected] = []
    for offset, raw in enumerate(block):
        number = normalise(raw, default_region, allow_vanity)
        if isinstance(number, Rejected):
            rejected.append(number)
        elif number.e164 in accepted:
            result.duplicates += 1
        else:
            accepted[number.e164] = (first_position + offset, number)
    result.rejected += len(rejected)
    result.reasons.update(r.reason for r in rejected)
    result.rejected_sample.extend(rejected[: REJECTED_SAMPLE - len(result.rejected_sample)])
    record_rejected(cur.connection, vendor, rejected, default_region, ctx, add_lines=True)
    if not accepted:
        return
    fresh = recently_checked(cur.connection, vendor, list(accepted), freshness_days, check_level)
    cur.execute("TRUNCATE run_number_stage")
    with cur.copy(
        "COPY run_number_stage (e164, position, region_code, country_code, line_type, raw_input, rewritten, "
        "fresh) FROM STDIN"
    ) as copy:
        for e164, (position, n) in accepted.items():
            copy.write_row(
                (
                    e164,
                    position,
                    n.region_code,
                    n.country_code,
                    n.line_type,
                    n.raw,
                    n.rewritten,
                    e164 in fresh,
                )
            )
    cur.execute(_KEEP_STAGED, {"run_key": ctx.run_key, "vendor": vendor})
    result.duplicates += len(accepted) - cur.rowcount  # already stored from an earlier block


def prepared_numbers(
    conn: psycopg.Connection, run_key: str, batch_rows: int = BLOCK_SIZE
) -> Iterator[Normalised]:
    """The run's numbers to check (not fresh), in input order, streamed from the warehouse."""
    with conn.transaction(), conn.cursor(name="prepared_numbers") as cur:
        cur.itersize = batch_rows
        cur.execute(
            "SELECT raw_input, e164, region_code, country_code, line_type, rewritten FROM ops.run_number "
            "WHERE run_key = %s AND NOT fresh ORDER BY position",
            (run_key,),
        )
        for raw, e164, region_code, country_code, line_type, rewritten in cur:
            yield Normalised(raw, e164, region_code, country_code, line_type, rewritten)


def prepared_counts_by_region(conn: psycopg.Connection, run_key: str) -> dict[str, int]:
    """How many numbers of the run are to be checked, per region."""
    return dict(
        conn.execute(
            "SELECT region_code, count(*) FROM ops.run_number WHERE run_key = %s AND NOT fresh "
            "GROUP BY region_code ORDER BY region_code",
            (run_key,),
        ).fetchall()
    )
