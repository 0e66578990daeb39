"""Local append-only spool for voice receipts received while the warehouse is down.

NXCLOUD pushes a voice receipt once (api-facts §8): refusing it loses it forever. So when the
inbox write fails, the delivery is appended to a local file and ``fsync``-ed before the vendor
gets its ``success``; a background loop replays spool files into ``raw.webhook_event`` when the
warehouse answers again.

Layout: ``<dir>/voice-<uuid>.jsonl``, one JSON record per line (body base64). Each receiver
process appends to its own file and holds an exclusive ``flock`` on it while it may still
append; a replayer only takes files whose lock it can get, so a live writer's file is never
read half-written, and a dead writer's file (lock released by the kernel) is picked up by any
process. A torn last line (crash mid-write) is skipped and reported, never fatal.

Replay is exactly-once per file: the file's events and its name in
``ops.receiver_spool_replay`` commit in one transaction, and the file is unlinked only after
that commit; a file whose name is already recorded is just unlinked.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from phonecheck.receiver.intake import InboxEvent

log = logging.getLogger(__name__)

SPOOL_PREFIX = "voice-"
SPOOL_SUFFIX = ".jsonl"


def encode_record(event: InboxEvent) -> bytes:
    record = {
        "v": 1,
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
    }
    return json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


def decode_record(line: bytes) -> InboxEvent:
    record = json.loads(line)
    if record.get("v") != 1:
        raise ValueError(f"unknown spool record version {record.get('v')!r}")
    return InboxEvent(
        endpoint=record["endpoint"],
        vendor=record["vendor"],
        dedupe_key=record["dedupe_key"],
        content_type=record["content_type"],
        body=base64.b64decode(record["body_b64"]),
        query_string=record["query_string"],
        payload=record["payload"],
        parse_status=record["parse_status"],
        parse_error=record["parse_error"],
        received_at=datetime.fromisoformat(record["received_at"]),
    )


@dataclass(frozen=True)
class SpoolFile:
    path: Path
    events: list[InboxEvent]
    torn_lines: int
    fd: int  # holds the flock until released

    def release(self) -> None:
        os.close(self.fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class VoiceSpool:
    """Append (thread-safe, fsynced) and claim spool files for replay."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None

    def append(self, event: InboxEvent) -> None:
        """Write one record and fsync it. Raises OSError when it could not be kept."""
        data = encode_record(event)
        with self._lock:
            if self._fd is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                path = self.directory / f"{SPOOL_PREFIX}{uuid.uuid4().hex}{SPOOL_SUFFIX}"
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX)
                _fsync_dir(self.directory)  # the new name itself must survive a crash
                self._fd, self._path = fd, path
            written = os.write(self._fd, data)
            if written != len(data):  # regular files do not short-write unless the disk is full
                raise OSError(f"short write to spool ({written} of {len(data)} bytes)")
            os.fsync(self._fd)

    def seal(self) -> None:
        """Stop appending to the current file (the next append starts a new one)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)  # releases our flock: the file is now replayable
                self._fd = self._path = None

    def has_files(self) -> bool:
        try:
            return any(
                name.startswith(SPOOL_PREFIX) and name.endswith(SPOOL_SUFFIX)
                for name in os.listdir(self.directory)
            )
        except FileNotFoundError:
            return False

    def claim(self) -> list[SpoolFile]:
        """Spool files nobody is appending to, locked by us, with their records."""
        claimed = []
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        for name in names:
            if not (name.startswith(SPOOL_PREFIX) and name.endswith(SPOOL_SUFFIX)):
                continue
            path = self.directory / name
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # replayed meanwhile by another process
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live writer still owns it
                continue
            if not path.exists():  # unlinked between our open and our lock
                os.close(fd)
                continue
            with os.fdopen(os.dup(fd), "rb") as handle:
                content = handle.read()
            events, torn = [], 0
            for line in content.splitlines():
                if not line.strip():
                    continue
                try:
                    events.append(decode_record(line))
                except (ValueError, KeyError, TypeError):
                    torn += 1
            if torn:
                log.error("spool file %s: %d unreadable line(s) skipped (torn write?)", name, torn)
            claimed.append(SpoolFile(path=path, events=events, torn_lines=torn, fd=fd))
        return claimed

    def discard(self, spool_file: SpoolFile) -> None:
        """Remove a replayed file (only after its replay committed)."""
        if spool_file.torn_lines:
            # Keep what we could not read for a human; the readable records are in the warehouse.
            spool_file.path.rename(spool_file.path.with_suffix(".unreadable"))
        else:
            spool_file.path.unlink(missing_ok=True)
        _fsync_dir(self.directory)
        spool_file.release()
