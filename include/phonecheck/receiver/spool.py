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

Modules: :mod:`phonecheck.receiver.spool_format` (the frame codec, file names, durable writes),
this one (appending, locking and claiming files, quarantine), and
:mod:`phonecheck.receiver.spool_erasure` (erasing personal data).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from phonecheck.receiver.intake import InboxEvent
from phonecheck.receiver.spool_erasure import erase_matching
from phonecheck.receiver.spool_format import (
    LEGACY_PREFIX,
    LEGACY_SUFFIX,
    MAGIC,
    MAX_RECORD_BYTES,
    NEW_PREFIX,
    QUARANTINE_DIR,
    SPOOL_PREFIX,
    SPOOL_SUFFIX,
    TORN_SUFFIX,
    Frame,
    SpoolRecord,
    SpoolWriteError,
    TornRegion,
    decode_legacy_line,
    decode_payload,
    encode_record,
    frame,
    fsync_dir,
    is_spool_name,
    read_legacy,
    scan,
    write_all,
)

log = logging.getLogger("phonecheck.receiver.spool")

__all__ = [
    "LEGACY_PREFIX", "LEGACY_SUFFIX", "MAGIC", "MAX_RECORD_BYTES", "NEW_PREFIX", "QUARANTINE_DIR",
    "SPOOL_PREFIX", "SPOOL_SUFFIX", "TORN_SUFFIX", "Frame", "Spool", "SpoolFile", "SpoolRecord",
    "SpoolWriteError", "TornRegion", "VoiceSpool", "decode_legacy_line", "decode_payload",
    "encode_record", "erase_matching", "frame", "scan",
]  # fmt: skip


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
                    write_all(fd, data)
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
            fsync_dir(self.directory)  # the name itself must survive a crash
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
                write_all(fd, b"probe")
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
        return any(is_spool_name(name) for name in self._names())

    def pending_files(self) -> int:
        return sum(1 for name in self._names() if is_spool_name(name))

    def claim(self) -> list[SpoolFile]:
        """Spool files nobody is appending to, locked by us, with their records. The caller
        must ``release()`` every one of them (``discard`` does)."""
        claimed: list[SpoolFile] = []
        try:
            for name in self._names():
                if not is_spool_name(name):
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
            records, torn = read_legacy(path.name, content)
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
            fsync_dir(self.directory)
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
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(hidden, path)
        fsync_dir(self.quarantine_dir)
        return path

    def quarantined(self) -> list[Path]:
        try:
            return sorted(p for p in self.quarantine_dir.iterdir() if not p.name.startswith(NEW_PREFIX))
        except (FileNotFoundError, NotADirectoryError):
            return []


#: Kept for callers of the earlier name.
VoiceSpool = Spool
