"""Local spool for pushes received while the warehouse cannot take them (format: docs/receiver.md).

The inbox write failed, the vendor is waiting for its answer: the delivery is appended here and
``fsync``-ed before the vendor gets its ``success`` / 200, and a background loop replays the
spool into ``raw.webhook_event`` when the warehouse answers again. Voice receipts are pushed once
and PNS call records retried only twice, 5 minutes apart (docs/receiver.md), so for them
this file is the only copy during an outage.

Records are self-delimiting and verifiable: ``MAGIC | length (u32 BE) | crc32 (u32 BE) | JSON``.
A torn or partial write (crash, full disk) is detected by its length or checksum and never damages
another record: a failed append is truncated away, and a reader resynchronises on the next valid
frame, keeping the bytes in between for inspection in ``quarantine/``.

Files: ``spool-<uuid>.rec``. Each receiver process appends to its own file and holds an exclusive
``flock`` on it while it may still append; the file is created under a hidden name, locked, and
only then renamed into view, so a replayer can never take a file between its creation and its
lock. A replayer takes only files whose lock it gets (a dead writer's lock is released by the
kernel) and releases every file it claimed, whatever happens. ``voice-<uuid>.jsonl`` files (the
format of earlier receivers, one JSON line per record) are still read.

Replay is exactly-once per record: a record's inbox row and its id in
``ops.receiver_spool_record`` commit together; a file is unlinked only after all its records are
committed or quarantined. A record the warehouse refuses for a reason a retry cannot fix goes to
``quarantine/`` (one file per record, same frame format, with the reason) and the others go on.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import logging
import os
import struct
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from phonecheck.receiver.intake import InboxEvent

log = logging.getLogger(__name__)

SPOOL_PREFIX = "spool-"
SPOOL_SUFFIX = ".rec"
LEGACY_PREFIX = "voice-"  # version 1: JSON lines, one file per receiver process
LEGACY_SUFFIX = ".jsonl"
NEW_PREFIX = ".new-"  # created and locked under this name, then renamed into view
QUARANTINE_DIR = "quarantine"
TORN_SUFFIX = ".torn"

MAGIC = b"\x93PCS"
_HEADER = struct.Struct(">4sII")  # magic, payload length, crc32 of the payload
MAX_RECORD_BYTES = 8 * 1024 * 1024  # a 1 MiB body is ~1.4 MiB in base64: anything larger is garbage


class SpoolWriteError(OSError):
    """The record could not be made durable (disk full, read-only, I/O error)."""


# ---------------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpoolRecord:
    """One spooled delivery: ``record_id`` is unique for ever (replay ledger key)."""

    record_id: str
    event: InboxEvent | None  # None: erased (a tombstone kept in place of the record)
    extra: dict = field(default_factory=dict)


def _record_json(record_id: str, event: InboxEvent, extra: dict | None = None) -> bytes:
    record = {
        "v": 2,
        "id": record_id,
        "endpoint": event.endpoint,
        "vendor": event.vendor,
        "dedupe_key": event.dedupe_key,
        "content_type": event.content_type,
        "body_b64": base64.b64encode(event.body).decode("ascii"),
        "query_string": event.query_string,
        "payload": event.payload,
        "parse_status": event.parse_status,
        "parse_error": event.parse_error,
        "received_at": event.received_at.isoformat(),
        **(extra or {}),
    }
    return json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(MAGIC, len(payload), binascii.crc32(payload)) + payload


def encode_record(event: InboxEvent, record_id: str | None = None, extra: dict | None = None) -> bytes:
    """One framed record (what :meth:`Spool.append` writes)."""
    return frame(_record_json(record_id or uuid.uuid4().hex, event, extra))


def _event_from(record: dict) -> InboxEvent:
    return InboxEvent(
        endpoint=record["endpoint"],
        vendor=record["vendor"],
        dedupe_key=record["dedupe_key"],
        content_type=record["content_type"],
        body=base64.b64decode(record["body_b64"], validate=True),
        query_string=record["query_string"],
        payload=record["payload"],
        parse_status=record["parse_status"],
        parse_error=record["parse_error"],
        received_at=datetime.fromisoformat(record["received_at"]),
    )


_RECORD_KEYS = {
    "v", "id", "endpoint", "vendor", "dedupe_key", "content_type", "body_b64", "query_string",
    "payload", "parse_status", "parse_error", "received_at",
}  # fmt: skip


def decode_payload(payload: bytes) -> SpoolRecord:
    record = json.loads(payload)
    if record.get("v") != 2:
        raise ValueError(f"unknown spool record version {record.get('v')!r}")
    if record.get("erased"):
        return SpoolRecord(record_id=record["id"], event=None)
    extra = {k: v for k, v in record.items() if k not in _RECORD_KEYS}
    return SpoolRecord(record_id=record["id"], event=_event_from(record), extra=extra)


def decode_legacy_line(line: bytes) -> InboxEvent:
    """A version-1 record (``voice-*.jsonl``)."""
    record = json.loads(line)
    if record.get("v") != 1:
        raise ValueError(f"unknown spool record version {record.get('v')!r}")
    return _event_from(record)


@dataclass(frozen=True)
class Frame:
    offset: int
    length: int  # header + payload
    record: SpoolRecord


@dataclass(frozen=True)
class TornRegion:
    offset: int
    data: bytes


def scan(content: bytes) -> tuple[list[Frame], list[TornRegion]]:
    """Every valid frame of a file, and the unreadable bytes between them.

    After a bad header or checksum the reader looks for the next magic that starts a valid frame,
    so a torn record costs only itself.
    """
    frames: list[Frame] = []
    torn: list[TornRegion] = []
    pos, torn_start, size = 0, None, len(content)
    while pos < size:
        parsed = _frame_at(content, pos)
        if parsed is None:
            if torn_start is None:
                torn_start = pos
            nxt = content.find(MAGIC, pos + 1)
            pos = size if nxt < 0 else nxt
            continue
        if torn_start is not None:
            torn.append(TornRegion(torn_start, content[torn_start:pos]))
            torn_start = None
        frames.append(parsed)
        pos += parsed.length
    if torn_start is not None:
        torn.append(TornRegion(torn_start, content[torn_start:]))
    return frames, torn


def _frame_at(content: bytes, pos: int) -> Frame | None:
    if len(content) - pos < _HEADER.size:
        return None
    magic, length, crc = _HEADER.unpack_from(content, pos)
    end = pos + _HEADER.size + length
    if magic != MAGIC or length > MAX_RECORD_BYTES or end > len(content):
        return None
    payload = content[pos + _HEADER.size : end]
    if binascii.crc32(payload) != crc:
        return None
    try:
        record = decode_payload(payload)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    return Frame(offset=pos, length=end - pos, record=record)


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------


@dataclass
class SpoolFile:
    """A claimed spool file: its records, its unreadable regions, and the lock we hold."""

    path: Path
    records: list[SpoolRecord]
    torn: list[TornRegion]
    fd: int  # holds the flock until released
    legacy: bool = False

    @property
    def events(self) -> list[InboxEvent]:
        return [r.event for r in self.records if r.event is not None]

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise SpoolWriteError(f"spool write made no progress ({len(view)} bytes left)")
        view = view[written:]


def _is_spool_name(name: str) -> bool:
    return (name.startswith(SPOOL_PREFIX) and name.endswith(SPOOL_SUFFIX)) or (
        name.startswith(LEGACY_PREFIX) and name.endswith(LEGACY_SUFFIX)
    )


class Spool:
    """Append (thread-safe, fsynced), claim, quarantine and erase spooled records."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.quarantine_dir = self.directory / QUARANTINE_DIR
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0

    # -- writing -------------------------------------------------------------------------------
    def append(self, event: InboxEvent) -> str:
        """Write one record durably and return its id. Raises ``SpoolWriteError`` (an
        ``OSError``) when it could not be kept; the file is then left as it was before."""
        record_id = uuid.uuid4().hex
        data = encode_record(event, record_id)
        with self._lock:
            try:
                fd = self._open_locked()
                start = self._size
                try:
                    _write_all(fd, data)
                    os.fsync(fd)
                except OSError as exc:
                    self._undo(fd, start)
                    raise SpoolWriteError(exc.errno, f"spool write failed: {exc.strerror or exc}") from None
                self._size = start + len(data)
            except SpoolWriteError:
                raise
            except OSError as exc:
                raise SpoolWriteError(exc.errno, f"spool not writable: {exc.strerror or exc}") from None
        return record_id

    def _open_locked(self) -> int:
        if self._fd is not None:
            return self._fd
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}{SPOOL_SUFFIX}"
        hidden = self.directory / f"{NEW_PREFIX}{name}"
        fd = os.open(hidden, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            path = self.directory / f"{SPOOL_PREFIX}{name}"
            os.rename(hidden, path)  # visible only once locked: no replayer can take it empty
            _fsync_dir(self.directory)  # the name itself must survive a crash
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                hidden.unlink()
            raise
        self._fd, self._path, self._size = fd, path, 0
        return fd

    def _undo(self, fd: int, good_size: int) -> None:
        """Cut a failed append off; if even that fails, abandon the file (a reader skips the
        torn tail, and the next append starts a new file)."""
        try:
            os.ftruncate(fd, good_size)
            os.fsync(fd)
        except OSError:
            log.error("spool file %s: could not cut a failed write off; starting a new file", self._path)
            os.close(fd)
            self._fd = self._path = None
            self._size = 0

    def seal(self) -> None:
        """Stop appending to the current file (the next append starts a new one)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)  # releases our flock: the file is now replayable
                self._fd = self._path = None
                self._size = 0

    def probe(self) -> str | None:
        """None when a record can be written here now, else why not (for the health check)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{NEW_PREFIX}probe-{uuid.uuid4().hex}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                _write_all(fd, b"probe")
                os.fsync(fd)
            finally:
                os.close(fd)
                path.unlink(missing_ok=True)
        except OSError as exc:
            return f"{type(exc).__name__}: {exc.strerror or exc}"
        return None

    # -- reading -------------------------------------------------------------------------------
    def _names(self) -> list[str]:
        try:
            return sorted(os.listdir(self.directory))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def has_files(self) -> bool:
        return any(_is_spool_name(name) for name in self._names())

    def pending_files(self) -> int:
        return sum(1 for name in self._names() if _is_spool_name(name))

    def claim(self) -> list[SpoolFile]:
        """Spool files nobody is appending to, locked by us, with their records. The caller
        must ``release()`` every one of them (``discard`` does)."""
        claimed: list[SpoolFile] = []
        try:
            for name in self._names():
                if not _is_spool_name(name):
                    continue
                spool_file = self._claim_one(self.directory / name)
                if spool_file is not None:
                    claimed.append(spool_file)
        except BaseException:
            for spool_file in claimed:
                spool_file.release()
            raise
        return claimed

    def _claim_one(self, path: Path) -> SpoolFile | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # replayed meanwhile by another process
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a live writer (or another replayer) owns it
            return None
        try:
            # unlinked or replaced between our open and our lock?
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return None
        try:
            with os.fdopen(os.dup(fd), "rb") as handle:
                content = handle.read()
        except BaseException:
            os.close(fd)
            raise
        legacy = path.name.endswith(LEGACY_SUFFIX)
        if legacy:
            records, torn = _read_legacy(path.name, content)
        else:
            frames, torn = scan(content)
            records = [f.record for f in frames]
        if torn:
            log.error("spool file %s: %d unreadable region(s) (torn write?)", path.name, len(torn))
        return SpoolFile(path=path, records=records, torn=torn, fd=fd, legacy=legacy)

    def discard(self, spool_file: SpoolFile) -> None:
        """Remove a replayed file (only after every record committed or was quarantined); its
        unreadable regions are kept in the quarantine first."""
        try:
            for region in spool_file.torn:
                self._write_quarantine(f"{spool_file.path.name}@{region.offset}{TORN_SUFFIX}", region.data)
            spool_file.path.unlink(missing_ok=True)
            _fsync_dir(self.directory)
        finally:
            spool_file.release()

    # -- quarantine ----------------------------------------------------------------------------
    def quarantine(self, record: SpoolRecord, reason: str) -> Path:
        """Keep a record the warehouse refuses, with the reason, for a human."""
        assert record.event is not None
        extra = {"quarantine_reason": reason[:2000], "quarantined_at": datetime.now(UTC).isoformat()}
        data = encode_record(record.event, record.record_id, extra)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        return self._write_quarantine(f"{stamp}-{record.record_id}{SPOOL_SUFFIX}", data)

    def _write_quarantine(self, name: str, data: bytes) -> Path:
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        path = self.quarantine_dir / name
        hidden = self.quarantine_dir / f"{NEW_PREFIX}{name}"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(hidden, path)
        _fsync_dir(self.quarantine_dir)
        return path

    def quarantined(self) -> list[Path]:
        try:
            return sorted(p for p in self.quarantine_dir.iterdir() if not p.name.startswith(NEW_PREFIX))
        except (FileNotFoundError, NotADirectoryError):
            return []


def _read_legacy(name: str, content: bytes) -> tuple[list[SpoolRecord], list[TornRegion]]:
    records, torn, offset = [], [], 0
    for number, line in enumerate(content.split(b"\n")):
        if line.strip():
            try:
                records.append(SpoolRecord(f"{name}:{number}", decode_legacy_line(line)))
            except (ValueError, KeyError, TypeError, binascii.Error):
                torn.append(TornRegion(offset, line))
        offset += len(line) + 1
    return records, torn


#: Kept for callers of the earlier name.
VoiceSpool = Spool


# ---------------------------------------------------------------------------------------------
# erasure (personal data)
# ---------------------------------------------------------------------------------------------


def _event_matches(event: InboxEvent, needles: list[bytes]) -> bool:
    texts = [
        event.body,
        (event.query_string or "").encode("utf-8", "surrogateescape"),
        (event.payload or "").encode("utf-8", "surrogateescape"),
        event.dedupe_key.encode("utf-8", "surrogateescape"),
    ]
    return any(needle in text for needle in needles for text in texts)


def _tombstone(frame_: Frame) -> bytes:
    """A frame of exactly the same length saying "erased" (JSON allows trailing blanks)."""
    payload_len = frame_.length - _HEADER.size
    payload = json.dumps({"v": 2, "id": frame_.record.record_id, "erased": True}).encode("ascii")
    payload += b" " * (payload_len - len(payload))
    return frame(payload)


@contextlib.contextmanager
def _lock_for_erasure(path: Path, wait_s: float) -> Iterator[int | None]:
    """The file open read-write, locked when we can get the lock within ``wait_s`` (a replayer
    finishes its pass); a live writer keeps its lock for as long as it appends, and then the
    records are rewritten in place beside it (it only ever appends after them)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        yield None
        return
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
        yield fd
    finally:
        os.close(fd)


def erase_matching(spool_dir: Path, needles: Iterable[bytes], *, lock_wait_s: float = 5.0) -> int:
    """Erase every spooled or quarantined record that contains any of ``needles`` (raw bytes,
    searched in the body, query string, parsed payload and dedupe key of each record, and in
    the raw bytes of unreadable regions). Returns how many records (or regions) were affected.

    Spooled records are overwritten in place by an "erased" frame of the same length (fsynced),
    so the file stays readable and its other records replay as usual; quarantined records and
    unreadable regions are deleted. Erase the spool before the warehouse: a record a replayer had
    already read may still reach ``raw.webhook_event``.
    """
    wanted = [n for n in needles if n]
    if not wanted:
        return 0
    directory = Path(spool_dir)
    spool = Spool(directory)
    affected = 0
    for name in spool._names():
        if not _is_spool_name(name):
            continue
        with _lock_for_erasure(directory / name, lock_wait_s) as fd:
            if fd is None:
                continue
            affected += _erase_in_file(fd, name, wanted)
    for path in spool.quarantined():
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            continue
        if path.name.endswith(TORN_SUFFIX):
            hit = any(n in content for n in wanted)
        else:
            frames, torn = scan(content)
            hit = any(f.record.event and _event_matches(f.record.event, wanted) for f in frames) or any(
                n in region.data for region in torn for n in wanted
            )
        if hit:
            path.unlink(missing_ok=True)
            affected += 1
    if affected:
        for folder in (directory, spool.quarantine_dir):
            with contextlib.suppress(OSError):
                _fsync_dir(folder)
    return affected


def _erase_in_file(fd: int, name: str, needles: list[bytes]) -> int:
    with os.fdopen(os.dup(fd), "rb") as handle:
        content = handle.read()
    affected = 0
    if name.endswith(LEGACY_SUFFIX):
        # one JSON line per record: blank the matching lines in place (same length)
        offset = 0
        for line in content.split(b"\n"):
            try:
                hit = _event_matches(decode_legacy_line(line), needles) if line.strip() else False
            except (ValueError, KeyError, TypeError, binascii.Error):
                hit = any(n in line for n in needles)
            if hit:
                os.pwrite(fd, b" " * len(line), offset)
                affected += 1
            offset += len(line) + 1
    else:
        frames, torn = scan(content)
        for f in frames:
            if f.record.event is not None and _event_matches(f.record.event, needles):
                os.pwrite(fd, _tombstone(f), f.offset)
                affected += 1
        for region in torn:
            if any(n in region.data for n in needles):
                os.pwrite(fd, b"\x00" * len(region.data), region.offset)
                affected += 1
    if affected:
        os.fsync(fd)
    return affected
