"""The spool's on-disk format (docs/receiver.md, "Spool"): framed records, scanning a file for
them, the earlier JSON-lines format, file names, and the durable low-level writes.

A record is ``MAGIC | length (u32 BE) | crc32 (u32 BE) | JSON``: self-delimiting and verifiable,
so a torn or partial write is detected by its length or checksum, and a reader resynchronises
on the next valid frame and keeps the bytes in between for inspection.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from phonecheck.receiver.intake import InboxEvent

SPOOL_PREFIX = "spool-"
SPOOL_SUFFIX = ".rec"
LEGACY_PREFIX = "voice-"  # version 1: JSON lines, one file per receiver process
LEGACY_SUFFIX = ".jsonl"
NEW_PREFIX = ".new-"  # created and locked under this name, then renamed into view
QUARANTINE_DIR = "quarantine"
TORN_SUFFIX = ".torn"

MAGIC = b"\x93PCS"
_HEADER = struct.Struct(">4sII")  # magic, payload length, crc32 of the payload
HEADER_SIZE = _HEADER.size
MAX_RECORD_BYTES = 8 * 1024 * 1024  # a 1 MiB body is ~1.4 MiB in base64: anything larger is garbage


class SpoolWriteError(OSError):
    """The record could not be made durable (disk full, read-only, I/O error)."""


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


def read_legacy(name: str, content: bytes) -> tuple[list[SpoolRecord], list[TornRegion]]:
    records, torn, offset = [], [], 0
    for number, line in enumerate(content.split(b"\n")):
        if line.strip():
            try:
                records.append(SpoolRecord(f"{name}:{number}", decode_legacy_line(line)))
            except (ValueError, KeyError, TypeError, binascii.Error):
                torn.append(TornRegion(offset, line))
        offset += len(line) + 1
    return records, torn


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise SpoolWriteError(f"spool write made no progress ({len(view)} bytes left)")
        view = view[written:]


def is_spool_name(name: str) -> bool:
    return (name.startswith(SPOOL_PREFIX) and name.endswith(SPOOL_SUFFIX)) or (
        name.startswith(LEGACY_PREFIX) and name.endswith(LEGACY_SUFFIX)
    )
