"""Erasure end to end: one number through every pipeline (NXCLOUD and AccuAuth DAGs, a voice
receipt, a call record, a failed quality check with its Data Docs page, a spooled push), erased
by the ``phone_data_erasure`` DAG, then searched for in a ``pg_dump`` of the warehouse, the spool
and the Data Docs folder. A second erasure (the CLI) changes nothing."""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from phonecheck.privacy.classification import untagged_columns_holding
from tests import seed_payloads as seed
from tests.fixtures.receiver import CALL, VOICE
from tests.integration.test_privacy import analyst_leaks, known_numbers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NUMBER = "+525512340010"  # the person who asks to be forgotten (sandbox: 1 PENDING poll, answered)
OTHER = "+525512340021"  # someone else, checked in the same runs: must stay
FAST = {"wait_poll_seconds": 0.3, "wait_timeout_minutes": 1}


def state_of(run) -> str:
    return str(getattr(run.state, "value", run.state))


def server_major(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.info.server_version // 10000


def find_pg_dump(dsn: str) -> str:
    """A pg_dump at least as new as the server: the machine's, or the embedded server's own."""
    import pgserver

    candidates = [shutil.which("pg_dump")]
    candidates += [str(Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"), reverse=True)
    need = server_major(dsn)
    for path in filter(None, candidates):
        if not os.access(path, os.X_OK):
            continue
        version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
        match = re.search(r"(\d+)\.", version)
        if match and int(match.group(1)) >= need:
            return path
    raise AssertionError(f"no pg_dump for PostgreSQL {need} among {candidates}")


def pg_dump(dsn: str) -> str:
    proc = subprocess.run(
        [find_pg_dump(dsn), "--no-owner", "--no-privileges", "--dbname", dsn],
        capture_output=True,
        check=True,
    )
    return proc.stdout.decode("utf-8", errors="replace")


def files_holding(folder: Path, needle: str) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and needle.encode() in p.read_bytes())


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def without_erasure_log(dump: str) -> list[str]:
    """The dump's lines, minus the erasure log's own rows and sequence (a request is logged) and the
    per-dump random restrict key."""
    lines, in_log = [], False
    for line in dump.splitlines():
        if line.startswith("COPY ops.erasure_log "):
            in_log = True
        elif in_log and line == "\\.":
            in_log = False
            continue
        # \restrict / \unrestrict carry a random key per dump (pg_dump's psql-meta-command guard)
        if (
            not in_log
            and "erasure_log_log_id_seq" not in line
            and not line.startswith(("\\restrict", "\\unrestrict"))
        ):
            lines.append(line)
    return lines


def spool_a_voice_receipt(spool_dir: Path, phone_digits: str) -> None:
    """A voice receipt the receiver kept in its spool while the warehouse was down."""
    from phonecheck.receiver import spool
    from phonecheck.receiver.intake import InboxEvent

    event = InboxEvent(
        endpoint="nxcloud_voice",
        vendor="nxcloud",
        dedupe_key=f"spooled-1|{phone_digits}",
        content_type="application/x-www-form-urlencoded",
        body=f"phone={phone_digits}&messageid=spooled-1&result=Successful+connection".encode(),
        query_string=None,
        payload=None,
        parse_status="parsed",
        parse_error=None,
        received_at=datetime.now(UTC),
    )
    writer = spool.Spool(spool_dir) if hasattr(spool, "Spool") else spool.VoiceSpool(spool_dir)
    writer.append(event)
    writer.seal()


@pytest.fixture
def everywhere(nxcloud_wired, run_dag, tmp_path, monkeypatch):
    """NUMBER and OTHER loaded through every pipeline; returns (dsn, spool_dir, data_docs_dir)."""
    sandbox, receiver = nxcloud_wired
    dsn = receiver.dsn
    docs = tmp_path / "data_docs"
    spool_dir = tmp_path / "erasure-spool"
    monkeypatch.setenv("PHONECHECK_DATA_DOCS_DIR", str(docs))
    monkeypatch.setenv("RECEIVER_SPOOL_DIR", str(spool_dir))
    sandbox.control.settings(accuauth_seconds_per_poll=3600.0)

    numbers = f"{NUMBER}\n{OTHER}\n+52 55 1234 00"  # the last one is rejected offline
    nx = run_dag(
        "nxcloud_number_check",
        conf={"numbers": numbers, "default_region": "MX", "check_level": "hlr", "batch_label": "erasure",
              "budget": 100, **FAST},
    )  # fmt: skip
    assert state_of(nx) == "success"
    aa = run_dag(
        "accuauth_phone_check",
        conf={"numbers": numbers, "freshness_days": 7, "poll_interval_s": 0.1, "max_poll_interval_s": 0.5,
              "max_requests_per_second": 500.0},
    )  # fmt: skip
    assert state_of(aa) == "success"

    # a voice receipt with a hang-up disposition outside the documented set (a dq failure) and a
    # recording, and a privacy-number call where NUMBER called OTHER
    voice = {**seed.VOICE_RECEIPT_FIELDS, "phone": NUMBER[1:], "messageid": "erasure-voice-1",
             "hangup_disposition": "not_a_disposition", "record_url": "https://rec.example/v/1.mp3"}  # fmt: skip
    assert httpx.post(receiver.url(VOICE), data=voice).text == "success"
    # the same receipt again with the number spelled +52...: one number twice in one message (a
    # dq failure whose Data Docs page shows the number)
    assert httpx.post(receiver.url(VOICE), data={**voice, "phone": NUMBER}).text == "success"
    call = {**seed.CALL_RECORD_PUSH, "id": 4501, "callId": "erasure-call-1", "caller": NUMBER[1:],
            "callee": OTHER[1:]}  # fmt: skip
    assert httpx.post(receiver.url(CALL), json=call).status_code == 200
    assert state_of(run_dag("telco_push_processing")) == "success"

    from phonecheck.quality import validate_rows

    summary = validate_rows(
        dsn, "telco.nxcloud_voice_receipt", key_column="message_id", key_values=["erasure-voice-1"]
    )
    assert not summary.success

    spool_a_voice_receipt(spool_dir, NUMBER[1:])
    return dsn, spool_dir, docs


def test_an_erased_number_leaves_no_trace_and_a_second_erasure_changes_nothing(everywhere, run_dag):
    dsn, spool_dir, docs = everywhere
    digits = NUMBER[1:]
    with psycopg.connect(dsn) as conn:
        held = {
            table: conn.execute(f"SELECT count(*) FROM {table} WHERE e164 = %s", (NUMBER,)).fetchone()[0]  # noqa: S608
            for table in (
                "telco.nxcloud_number_check",
                "telco.accuauth_phone_check",
                "telco.nxcloud_voice_receipt",
            )
        }
        assert all(held.values()), held
        assert conn.execute(
            "SELECT count(*) FROM telco.nxcloud_call_record WHERE caller = %s", (digits,)
        ).fetchone()
        assert conn.execute(
            "SELECT count(*) FROM dq.validation_result WHERE unexpected_sample::text LIKE %s",
            (f"%{digits}%",),
        ).fetchone()[0]
        # the catalogue's classification and the analyst tier hold on this data too
        numbers = known_numbers(conn)
        assert digits in numbers
        assert untagged_columns_holding(conn, sorted(numbers)) == []
        assert analyst_leaks(conn, numbers) == []
    before = pg_dump(dsn)
    assert digits in before
    assert files_holding(docs, digits) and files_holding(spool_dir, digits)

    from phonecheck.privacy.erasure import erase_numbers
    from phonecheck.receiver import spool

    if not hasattr(spool, "erase_matching"):  # the receiver's spool eraser has not landed yet
        with pytest.raises(RuntimeError, match="erase_matching"):
            erase_numbers(dsn, [NUMBER], reason="spool check")
        pytest.fail("phonecheck.receiver.spool.erase_matching is missing: the spool cannot be erased")
    run = run_dag(
        "phone_data_erasure",
        conf={"numbers": "+52 55 1234 0010", "reason": "request 42 by +525512340010", "dry_run": False},
    )
    assert state_of(run) == "success"

    after = pg_dump(dsn)
    assert digits not in after and NUMBER not in after
    assert files_holding(docs, digits) == [] and files_holding(spool_dir, digits) == []
    with psycopg.connect(dsn) as conn:
        # the other person's data is untouched (their call with NUMBER keeps their side)
        for table in ("telco.nxcloud_number_check", "telco.accuauth_phone_check"):
            assert conn.execute(f"SELECT count(*) FROM {table} WHERE e164 = %s", (OTHER,)).fetchone()[0]  # noqa: S608
        assert conn.execute(
            "SELECT caller, callee, record_file FROM telco.nxcloud_call_record WHERE call_id = 'erasure-call-1'"
        ).fetchone() == (None, OTHER[1:], None)
        log = conn.execute(
            "SELECT phone_key, location, action, items, reason FROM ops.erasure_log ORDER BY log_id"
        ).fetchall()
        key = conn.execute("SELECT ops.phone_pseudonym(%s)", (NUMBER,)).fetchone()[0]
    assert {row[0] for row in log} == {key}
    assert {row[4] for row in log} == {"request 42 by +52******0010"}
    places = {row[1]: (row[2], row[3]) for row in log}
    for place in ("telco.nxcloud_number_check", "telco.accuauth_phone_check", "telco.nxcloud_voice_receipt"):
        assert places[place][0] == "deleted"
    for place in ("raw.webhook_event.body", "dq.validation_result.unexpected_sample", "data_docs", "spool"):
        assert places[place][0] == "redacted" and places[place][1] >= 1, place

    files_before = tree_digest(docs) | tree_digest(spool_dir)
    env = {**os.environ, "WAREHOUSE_DSN": dsn}
    proc = subprocess.run(
        [sys.executable, "-m", "phonecheck.cli", "erase", NUMBER, "--reason", "request 42, again"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "erased 0 item(s) for 1 number(s)" in proc.stdout and digits not in proc.stdout + proc.stderr
    assert without_erasure_log(pg_dump(dsn)) == without_erasure_log(after)
    assert tree_digest(docs) | tree_digest(spool_dir) == files_before
