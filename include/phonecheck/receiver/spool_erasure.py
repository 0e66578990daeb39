"""Erasing personal data from the receiver's spool and quarantine (docs/privacy.md): records are
overwritten in place by "erased" frames of the same length, quarantined ones deleted."""

from __future__ import annotations

import binascii
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from phonecheck.receiver.intake import InboxEvent
from phonecheck.receiver.spool_format import (
    HEADER_SIZE,
    LEGACY_SUFFIX,
    NEW_PREFIX,
    QUARANTINE_DIR,
    TORN_SUFFIX,
    Frame,
    decode_legacy_line,
    frame,
    fsync_dir,
    is_spool_name,
    scan,
)


def _names(directory: Path, *, quarantine: bool = False) -> list:
    """Spool file names of ``directory`` (sorted), or the quarantined files' paths."""
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    if quarantine:
        return [directory / n for n in names if not n.startswith(NEW_PREFIX)]
    return names


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
    payload_len = frame_.length - HEADER_SIZE
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
    quarantine_dir = directory / QUARANTINE_DIR
    affected = 0
    for name in _names(directory):
        if not is_spool_name(name):
            continue
        with _lock_for_erasure(directory / name, lock_wait_s) as fd:
            if fd is None:
                continue
            affected += _erase_in_file(fd, name, wanted)
    for path in _names(quarantine_dir, quarantine=True):
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
        for folder in (directory, quarantine_dir):
            with contextlib.suppress(OSError):
                fsync_dir(folder)
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
