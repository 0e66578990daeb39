"""Settle NXCLOUD batches whose submit answer was lost, without holding a worker while waiting.

A batch is *in doubt* (``ops.number_check_submission.status = 'in_doubt'``) when its paid
submit may have reached the vendor but we never read the answer (:mod:`.submissions`). Nothing
is sent again on no evidence. The wait is split in three parts so that it can run anywhere:

* :class:`InDoubtWatch`: the window rules, pure and clock-free. Evidence is a push for the
  ``batchNo`` in the inbox or a typed row (:func:`with_evidence`), or the query API listing the
  batch. The first query probe comes only after a fifth of the window (pushes usually settle it
  before, and the query budget is shared by every run of the access key), then one every fifth
  of the window and one at its end. Only an answered probe after the window that does not list
  the batch lets it be sent again (``unlisted``). A refused probe decides nothing; if the query
  API keeps refusing for two windows the batch is ``refused``: it stays in doubt, never resent.
* The waiting loop: in Airflow the triggerer runs it
  (:class:`~phonecheck_airflow.triggers.nxcloud.NxCloudInDoubtTrigger`), and
  :func:`wait_for_evidence` is the same loop in plain Python (tests, tools).
* :func:`act_on_evidence`: what the resuming task does with the outcome. Batches with evidence
  become ``submitted`` (recovered); those the vendor did not list after the window are sent
  again with the same ``batchNo``, exactly as the first time (:func:`.submissions.send_batch`),
  their ``in_doubt_since`` moved to now before the paid call so a crash mid-send restarts the
  window instead of allowing an immediate third send.

Residual risk (docs/vendors/nxcloud.md): a vendor that charged but neither pushes nor lists the
batch within the window is paid a second time for that one batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from phonecheck.nxcloud.errors import NxCloudError
from phonecheck.nxcloud.submissions import (
    MAX_SUBMIT_ROUNDS,
    VENDOR,
    SubmitClient,
    mark_recovered,
    send_batch,
    split_run_key,
)

log = logging.getLogger(__name__)

#: The run's batches not settled yet, with the start of their window: ``in_doubt``, and
#: ``pending`` (one that may have been sent is in doubt too; one whose resend never reached the
#: vendor, ``response.not_sent``, is sent again at once by :func:`act_on_evidence`).
#: Parameters: dag_id, run_id.
RUN_IN_DOUBT_SQL = """
SELECT batch_no, COALESCE(in_doubt_since, updated_at) AS since
FROM ops.number_check_submission
WHERE vendor = 'nxcloud' AND dag_id = %(dag_id)s AND run_id = %(run_id)s AND batch_no IS NOT NULL
  AND status IN ('in_doubt', 'pending')
ORDER BY submission_id"""

#: The batches (of ``%(batches)s``) the vendor certainly has: a push in the inbox or a typed row.
WITH_EVIDENCE_SQL = """
SELECT b FROM unnest(%(batches)s::text[]) AS b
WHERE EXISTS (SELECT 1 FROM raw.webhook_event
              WHERE endpoint = 'nxcloud_number_check' AND payload->>'batchNo' = b)
   OR EXISTS (SELECT 1 FROM telco.nxcloud_number_check WHERE batch_no = b)"""


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_in_doubt(conn: psycopg.Connection, run_key: str) -> list[tuple[str, datetime]]:
    """``(batch_no, in doubt since)`` of the run's batches in doubt (:data:`RUN_IN_DOUBT_SQL`)."""
    return [(b, _utc(since)) for b, since in conn.execute(RUN_IN_DOUBT_SQL, split_run_key(run_key))]


#: What happened to the run's batches that were ever in doubt (counts; the rows say it all, so
#: a task resumed in a new process, or a retry, reports the same). Parameters: dag_id, run_id.
RUN_IN_DOUBT_COUNTS_SQL = """
SELECT count(*) FILTER (WHERE in_doubt_since IS NOT NULL) AS in_doubt,
       count(*) FILTER (WHERE in_doubt_since IS NOT NULL AND status IN ('submitted', 'complete')
                          AND COALESCE(response ? 'recovered', false)) AS recovered,
       count(*) FILTER (WHERE in_doubt_since IS NOT NULL AND status IN ('submitted', 'complete')
                          AND NOT COALESCE(response ? 'recovered', false)) AS resent,
       count(*) FILTER (WHERE status = 'in_doubt') AS still_in_doubt,
       COALESCE(max(send_count), 0) AS most_sends
FROM ops.number_check_submission
WHERE vendor = 'nxcloud' AND dag_id = %(dag_id)s AND run_id = %(run_id)s"""


def run_in_doubt_counts(conn: psycopg.Connection, run_key: str) -> dict[str, int]:
    """:data:`RUN_IN_DOUBT_COUNTS_SQL` for the run ``run_key``."""
    with conn.cursor(row_factory=dict_row) as cur:
        return dict(cur.execute(RUN_IN_DOUBT_COUNTS_SQL, split_run_key(run_key)).fetchone())


def with_evidence(conn: psycopg.Connection, batches: Iterable[str]) -> set[str]:
    """The batches among ``batches`` with a push in the inbox or a typed row."""
    names = list(batches)
    if not names:
        return set()
    return {row[0] for row in conn.execute(WITH_EVIDENCE_SQL, {"batches": names})}


@dataclass
class _Watched:
    batch_no: str
    since: float  # epoch seconds: the start of the window
    next_probe: float
    outcome: str | None = None  # evidence, listed, unlisted, refused


@dataclass
class InDoubtWatch:
    """The window rules for a set of batches in doubt; the caller supplies the clock.

    Feed it with :meth:`track`, tell it what the warehouse shows (:meth:`settled_by_evidence`)
    and what each due probe (:meth:`due`) answered (:meth:`record`: True listed, False not
    listed, None refused); :attr:`done` once every batch has an outcome.

    :param window_s: the push window plus our margin (``NxCloudSettings.in_doubt_after_s``).
    """

    window_s: float
    batches: dict[str, _Watched] = field(default_factory=dict)
    probes: int = 0
    refusals: int = 0

    @property
    def probe_every(self) -> float:
        return self.window_s / 5

    def track(self, batch_no: str, since: datetime) -> None:
        """Watch ``batch_no``, in doubt since ``since`` (a batch sent again restarts its window)."""
        start = _utc(since).timestamp()
        known = self.batches.get(batch_no)
        if known is None or known.since != start:
            self.batches[batch_no] = _Watched(batch_no, start, start + self.probe_every)

    def since(self, batch_no: str) -> datetime:
        return datetime.fromtimestamp(self.batches[batch_no].since, UTC)

    @property
    def pending(self) -> list[str]:
        return [b.batch_no for b in self.batches.values() if b.outcome is None]

    @property
    def done(self) -> bool:
        return not self.pending

    def settled_by_evidence(self, batch_nos: Iterable[str]) -> None:
        for batch_no in batch_nos:
            if (watched := self.batches.get(batch_no)) is not None and watched.outcome is None:
                watched.outcome = "evidence"

    def due(self, now: float) -> list[str]:
        """The batches whose next query probe is due."""
        return [b.batch_no for b in self.batches.values() if b.outcome is None and now >= b.next_probe]

    def record(self, batch_no: str, now: float, listed: bool | None) -> None:
        """What a probe at ``now`` answered: listed, not listed, or ``None`` (refused)."""
        watched = self.batches[batch_no]
        self.probes += 1
        window_end = watched.since + self.window_s
        if listed:
            watched.outcome = "listed"
            return
        if listed is None:
            self.refusals += 1
            if now >= window_end + self.window_s:  # refusing for two windows: never resend on that
                watched.outcome = "refused"
                return
        elif now >= window_end:  # asked after the window, and the vendor does not list it
            watched.outcome = "unlisted"
            return
        following = now + self.probe_every
        watched.next_probe = following if now >= window_end else min(following, window_end)

    def seconds_to_next_probe(self, now: float) -> float:
        waiting = [b.next_probe for b in self.batches.values() if b.outcome is None]
        return max(0.0, min(waiting) - now) if waiting else 0.0

    def with_outcome(self, outcome: str) -> list[str]:
        return [b.batch_no for b in self.batches.values() if b.outcome == outcome]

    def event(self) -> dict[str, Any]:
        """Small and JSON-able: batch keys and counts (what a trigger event carries)."""
        refused = self.with_outcome("refused")
        return {
            "status": "refused" if refused else "settled",
            "listed": self.with_outcome("listed"),
            "unlisted": self.with_outcome("unlisted"),
            "refused": refused,
            "evidence": len(self.with_outcome("evidence")),
            "probes": self.probes,
            "refusals": self.refusals,
        }


def probe(client: SubmitClient, batch_no: str, since: datetime) -> bool | None:
    """One query probe: whether the vendor lists the batch, ``None`` when the query API refused."""
    try:
        return client.batch_known_to_vendor(batch_no, since)
    except NxCloudError as exc:
        log.warning("batch %s in doubt: query probe refused (%s); waiting on", batch_no, exc)
        return None


def wait_for_evidence(
    conn: psycopg.Connection,
    client: SubmitClient,
    batches: Sequence[tuple[str, datetime]],
    *,
    poll_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """The waiting loop in plain Python, for tests and tools (Airflow waits in the triggerer):
    until every batch of ``batches`` has an outcome. Returns :meth:`InDoubtWatch.event`."""
    watch = InDoubtWatch(float(client.settings.in_doubt_after_s))
    for batch_no, since in batches:
        watch.track(batch_no, since)
    while True:
        conn.rollback()  # see rows other sessions committed since
        watch.settled_by_evidence(with_evidence(conn, watch.pending))
        for batch_no in watch.due(clock()):
            watch.record(batch_no, clock(), probe(client, batch_no, watch.since(batch_no)))
        if watch.done:
            return watch.event()
        sleep(max(0.05, min(poll_s, watch.seconds_to_next_probe(clock()))))


@dataclass
class Settlement:
    """What :func:`act_on_evidence` did, per batch key."""

    recovered: list[str] = field(default_factory=list)  # the vendor has it: submitted, not sent again
    resent: list[str] = field(default_factory=list)  # sent again and answered: submitted
    still_in_doubt: list[str] = field(default_factory=list)  # no outcome yet, or the resend was lost too
    exhausted: list[str] = field(default_factory=list)  # not listed, but sent MAX_SUBMIT_ROUNDS times already
    refused_at_submit: int = 0  # numbers the vendor refused in the answers of the resends

    def as_dict(self) -> dict[str, Any]:
        return {
            "recovered": len(self.recovered),
            "resent": len(self.resent),
            "still_in_doubt": len(self.still_in_doubt),
            "exhausted": len(self.exhausted),
            "refused_at_submit": self.refused_at_submit,
        }


def act_on_evidence(
    conn: psycopg.Connection,
    client: SubmitClient,
    batch_nos: Sequence[str],
    listed: Collection[str],
    unlisted: Collection[str],
    dr_url: str | None,
    may_resend: bool,
) -> Settlement:
    """Settle what can be settled among ``batch_nos`` (rows still in doubt; others are skipped).

    A batch with evidence in the warehouse (read now) or in ``listed`` is recovered. A batch in
    ``unlisted`` (asked after its window, not listed), or ``pending`` after a resend that never
    reached the vendor, is sent again when ``may_resend`` and it
    was sent fewer than :data:`~.submissions.MAX_SUBMIT_ROUNDS` times (``send_count``; else it
    is ``exhausted`` and stays in doubt), once, with its ``in_doubt_since`` moved to now first.
    The rest stay in doubt. A resend that did
    not reach the vendor, or that the vendor refused, raises after recording (as at submit).
    """
    out = Settlement()
    conn.rollback()
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """SELECT batch_no, phones, check_level, send_count, status, response FROM ops.number_check_submission
               WHERE vendor = %s AND batch_no = ANY(%s) AND status IN ('in_doubt', 'pending')
               ORDER BY submission_id""",
            (VENDOR, list(batch_nos)),
        ).fetchall()
    pushed = with_evidence(conn, (r["batch_no"] for r in rows))
    for row in rows:
        batch_no = row["batch_no"]
        # the last send never reached the vendor (the row says so): safe to send at once
        never_sent = row["status"] == "pending" and (row["response"] or {}).get("not_sent") is not None
        sendable = may_resend and (batch_no in unlisted or never_sent)
        if batch_no in pushed or batch_no in listed:
            mark_recovered(conn, batch_no, "push" if batch_no in pushed else "query")
            out.recovered.append(batch_no)
        elif sendable and row["send_count"] >= MAX_SUBMIT_ROUNDS:
            log.warning(
                "batch %s: sent %d times, every answer lost; not sent again", batch_no, row["send_count"]
            )
            out.exhausted.append(batch_no)
        elif sendable:
            log.warning("batch %s: no trace at the vendor after the window; sending it again", batch_no)
            conn.execute(
                """UPDATE ops.number_check_submission SET status = 'in_doubt', in_doubt_since = clock_timestamp(),
                          updated_at = now() WHERE vendor = %s AND batch_no = %s""",
                (VENDOR, batch_no),
            )
            conn.commit()
            status, refused = send_batch(
                conn, client, batch_no, row["phones"], check_level=row["check_level"], dr_url=dr_url
            )
            if status == "submitted":
                out.resent.append(batch_no)
                out.refused_at_submit += refused
            else:
                out.still_in_doubt.append(batch_no)
        else:
            out.still_in_doubt.append(batch_no)
    return out
