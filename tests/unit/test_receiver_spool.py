"""The receiver's spool on a real file system: framing, torn writes, locking, quarantine, erasure.

No warehouse here (replay is covered by tests/integration/test_receiver_outage.py and the fault
suite); a failed write is a real kernel error (``RLIMIT_FSIZE`` in a child process), not a mock.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import resource
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from phonecheck.receiver.intake import Endpoint, build_event
from phonecheck.receiver.spool import (
    MAGIC,
    QUARANTINE_DIR,
    Spool,
    SpoolRecord,
    SpoolWriteError,
    decode_payload,
    encode_record,
    erase_matching,
    scan,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def voice(i: int, phone: str = "8615088888888"):
    query = f"messageid=m{i:04d}&phone={phone}&duration=10".encode()
    return build_event(
        Endpoint.NXCLOUD_VOICE, body=b"", query_string=query, content_type=None, received_at=NOW
    )


def call(i: int, caller: str = "85235757583"):
    body = json.dumps({"id": i, "callId": f"c{i}", "caller": caller}).encode()
    return build_event(Endpoint.NXCLOUD_CALL, body=body, query_string=b"", content_type=None, received_at=NOW)


def only_file(directory: Path) -> Path:
    [path] = [p for p in directory.iterdir() if p.is_file()]
    return path


def test_records_round_trip_and_a_live_writer_file_is_not_claimed(tmp_path):
    spool = Spool(tmp_path)
    events = [voice(i) for i in range(3)] + [call(7)]
    ids = [spool.append(e) for e in events]
    assert spool.has_files() and spool.claim() == []  # the writer still holds its lock
    spool.seal()
    [claimed] = spool.claim()
    try:
        assert claimed.events == events and [r.record_id for r in claimed.records] == ids
        assert claimed.torn == []
        assert Spool(tmp_path).claim() == []  # we hold it now: nobody else takes it
    finally:
        spool.discard(claimed)
    assert not spool.has_files() and spool.quarantined() == []


def test_a_torn_record_costs_only_itself(tmp_path):
    good = [encode_record(voice(i)) for i in range(3)]
    torn = good[1][: len(good[1]) // 2]  # a writer killed in the middle of its record
    flipped = bytearray(encode_record(voice(9)))
    flipped[-5] ^= 0x01  # a bit flip: the checksum catches it
    content = good[0] + torn + good[2] + bytes(flipped) + encode_record(voice(4))
    frames, regions = scan(content)
    assert [f.record.event.dedupe_key for f in frames] == [
        "m0000|8615088888888",
        "m0002|8615088888888",
        "m0004|8615088888888",
    ]
    assert [r.data for r in regions] == [torn, bytes(flipped)]

    (tmp_path / "spool-torn.rec").write_bytes(content)
    spool = Spool(tmp_path)
    [claimed] = spool.claim()
    assert len(claimed.events) == 3 and len(claimed.torn) == 2
    spool.discard(claimed)
    kept = sorted(p.read_bytes() for p in spool.quarantined())
    assert kept == sorted([torn, bytes(flipped)])  # unreadable bytes are kept for inspection


def _append_until_the_file_size_limit(directory: str, limit: int, queue) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the kernel answers EFBIG instead of killing us
    spool = Spool(Path(directory))
    spool.append(voice(0))  # opens the file before the limit bites
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    outcomes = []
    for i in range(1, 6):
        try:
            spool.append(voice(i, phone="8615088888888" + "0" * 300))  # ~1 KB records
            outcomes.append("ok")
        except SpoolWriteError as exc:
            outcomes.append(f"error {exc.errno}")
    queue.put(outcomes)


def test_a_failed_write_is_cut_off_and_the_next_record_is_intact(tmp_path):
    """A full disk mid-record (here: the file-size limit, a short write then EFBIG)."""
    first = len(encode_record(voice(0)))
    one_big = len(encode_record(voice(1, phone="8615088888888" + "0" * 300)))
    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(
        target=_append_until_the_file_size_limit, args=(str(tmp_path), first + one_big + 100, queue)
    )
    child.start()
    outcomes = queue.get(timeout=30)
    child.join(timeout=30)
    assert outcomes[0] == "ok" and outcomes[1].startswith("error"), outcomes  # the 2nd one tore
    content = only_file(tmp_path).read_bytes()
    frames, torn = scan(content)
    assert torn == [] and len(frames) == 2 and len(content) == first + one_big  # torn bytes cut off


def test_version_1_files_of_earlier_receivers_are_still_replayable(tmp_path):
    event = voice(1)
    line = {
        "v": 1,
        "endpoint": event.endpoint,
        "vendor": event.vendor,
        "dedupe_key": event.dedupe_key,
        "content_type": None,
        "body_b64": base64.b64encode(event.body).decode(),
        "query_string": event.query_string,
        "payload": event.payload,
        "parse_status": event.parse_status,
        "parse_error": None,
        "received_at": NOW.isoformat(),
    }
    (tmp_path / "voice-old.jsonl").write_bytes(json.dumps(line).encode() + b"\n" + b'{"torn')
    spool = Spool(tmp_path)
    [claimed] = spool.claim()
    assert claimed.legacy and claimed.events == [event] and len(claimed.torn) == 1
    assert claimed.records[0].record_id == "voice-old.jsonl:0"
    spool.discard(claimed)


def test_quarantine_keeps_the_record_and_the_reason(tmp_path):
    spool = Spool(tmp_path)
    record = SpoolRecord("r1", call(3))
    path = spool.quarantine(record, "CheckViolationError: refused")
    assert path.parent == tmp_path / QUARANTINE_DIR and spool.quarantined() == [path]
    [frame], torn = scan(path.read_bytes())
    assert torn == [] and frame.record.event == record.event
    assert frame.record.extra["quarantine_reason"] == "CheckViolationError: refused"


def test_a_spool_that_cannot_be_written_says_so(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    spool = Spool(blocker / "spool")
    assert spool.probe() is not None
    with pytest.raises(SpoolWriteError):
        spool.append(voice(1))
    assert Spool(tmp_path / "fine").probe() is None


def test_erase_matching_redacts_spooled_and_removes_quarantined_records(tmp_path):
    target = b"8613900000001"
    spool = Spool(tmp_path)
    kept = [spool.append(voice(i)) for i in range(2)]
    spool.append(voice(5, phone=target.decode()))
    spool.append(call(6, caller=target.decode()))
    spool.seal()
    live = Spool(tmp_path)  # another writer still appending: its file stays locked
    live.append(voice(7, phone=target.decode()))
    live.append(voice(8))
    spool.quarantine(SpoolRecord("q1", voice(9, phone=target.decode())), "refused")
    spool.quarantine(SpoolRecord("q2", voice(10)), "refused")
    (tmp_path / QUARANTINE_DIR / "x.rec@0.torn").write_bytes(b"garbage " + target)
    (tmp_path / "voice-old.jsonl").write_bytes(
        json.dumps({"v": 1, "dedupe_key": "k", "note": target.decode()}).encode() + b"\n"
    )

    assert erase_matching(tmp_path, [target], lock_wait_s=0.2) == 6
    assert erase_matching(tmp_path, [target], lock_wait_s=0.2) == 0  # nothing left to find

    # nothing of the number is left anywhere on disk
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert target not in path.read_bytes(), path
            assert base64.b64encode(target) not in path.read_bytes(), path
    # the other records are intact and still replay; erased ones are skipped
    live.seal()
    claimed = Spool(tmp_path).claim()
    survivors = sorted(e.dedupe_key for c in claimed for e in c.events)
    for c in claimed:
        c.release()
    assert survivors == ["m0000|8615088888888", "m0001|8615088888888", "m0008|8615088888888"]
    assert len(kept) == 2 and [p.name for p in Spool(tmp_path).quarantined()][0].endswith("q2.rec")


def test_frames_start_with_the_magic():
    data = encode_record(voice(1))
    assert data.startswith(MAGIC)
    record = decode_payload(data[12:])
    assert record.event == voice(1) and len(record.record_id) == 32
