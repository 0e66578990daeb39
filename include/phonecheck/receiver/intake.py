"""Turn one HTTP delivery into one inbox row (``raw.webhook_event``), without any I/O.

The hot path decodes just enough to find the vendor dedupe key; full mapping into typed rows
happens later in :mod:`phonecheck.receiver.processing`. Whatever we cannot decode is still
kept: the event is marked ``parse_status = 'error'`` with the reason, keyed on a SHA-256 of
what was received (so a byte-identical retry is still stored once), and acknowledged, because
a vendor retry would not make it parseable.

Dedupe keys come from the shared parsers (``phonecheck.parsers``): number check
``batchNo|phone|messageId``, voice ``messageid|phone``, call record ``id`` (``callId`` in the
legList shape), AccuAuth ``task_id``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from urllib.parse import parse_qsl

MAX_BODY_BYTES = 1024 * 1024  # docs/receiver.md: bodies over 1 MiB answer 413
MAX_FORM_FIELDS = 1000  # a voice receipt has ~17; bounds the work a hostile body can cause
# Longer vendor keys are stored as a hash (the original stays derivable from ``payload``): a
# btree index entry must stay well under PostgreSQL's ~2.7 KB limit, whatever the vendor sends.
MAX_DEDUPE_KEY_BYTES = 512
LONG_KEY_PREFIX = "sha256-key:"
# A JSON \u0000 escape (odd number of backslashes before it): jsonb cannot store NUL. An escaped
# backslash followed by "u0000" is an ordinary string and is kept.
_JSON_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


class Endpoint(Enum):
    """Receiver endpoints; ``value`` is what ``raw.webhook_event.endpoint`` stores."""

    NXCLOUD_NUMBER_CHECK = "nxcloud_number_check"
    NXCLOUD_VOICE = "nxcloud_voice"
    NXCLOUD_CALL = "nxcloud_call"
    ACCUAUTH_PHONE_NUMBER = "accuauth_phone_number"

    @property
    def vendor(self) -> str:
        return "accuauth" if self is Endpoint.ACCUAUTH_PHONE_NUMBER else "nxcloud"

    @property
    def vendor_retries(self) -> bool:
        """Whether a refused delivery comes again at all: voice receipts are pushed once
        (docs/receiver.md). The others are retried, some only twice: every push type is
        spooled when the warehouse is down; this only decides what a spool failure answers."""
        return self is not Endpoint.NXCLOUD_VOICE

    @property
    def carries_json_body(self) -> bool:
        return self in (Endpoint.NXCLOUD_NUMBER_CHECK, Endpoint.NXCLOUD_CALL)


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """One row for ``raw.webhook_event`` (columns of the same names)."""

    endpoint: str
    vendor: str
    dedupe_key: str
    content_type: str | None
    body: bytes
    query_string: str | None
    payload: str | None  # JSON text for the jsonb column
    parse_status: str  # 'parsed' or 'error'
    parse_error: str | None
    received_at: datetime

    def as_error(self, reason: str) -> InboxEvent:
        """The same delivery, kept as unparseable (used when the warehouse rejects the payload)."""
        return replace(
            self,
            payload=None,
            parse_status="error",
            parse_error=reason,
            dedupe_key=fallback_dedupe_key(self.query_string_bytes, self.body),
        )

    @property
    def query_string_bytes(self) -> bytes:
        return (self.query_string or "").encode("utf-8", "surrogateescape")


class _Unparseable(Exception):
    """Internal: why a delivery cannot be decoded (becomes ``parse_error``)."""


def fallback_dedupe_key(query_string: bytes, body: bytes) -> str:
    """Key of a delivery we cannot decode: SHA-256 over query string and body."""
    digest = hashlib.sha256()
    digest.update(query_string)
    digest.update(b"\x00")
    digest.update(body)
    return "sha256:" + digest.hexdigest()


def _text_column(raw: bytes) -> str:
    """Bytes as PostgreSQL text: invalid UTF-8 kept as escapes, NUL (not storable) escaped."""
    text = raw.decode("utf-8", "backslashreplace")
    return text.replace("\x00", "\\x00") if "\x00" in text else text


def _reject_constant(name: str) -> float:
    # Python's json accepts NaN/Infinity; PostgreSQL's jsonb and the vendors' JSON do not.
    raise ValueError(f"invalid JSON constant {name}")


def decode_json_object(body: bytes) -> tuple[dict, str]:
    """``(object, text)`` of a JSON object body; raises ``_Unparseable`` with the reason."""
    if not body:
        raise _Unparseable("empty body (expected a JSON object)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Unparseable(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise _Unparseable(f"body is not JSON: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise _Unparseable(f"JSON body is a {type(value).__name__}, expected an object")
    if "\\u0000" in text and _JSON_NUL_ESCAPE.search(text):
        raise _Unparseable("JSON contains \\u0000, which PostgreSQL jsonb cannot store")
    return value, text


def decode_form_fields(query_string: bytes, body: bytes, content_type: str | None) -> dict[str, str]:
    """Form fields from the query string and the body (body wins on a clash).

    The voice receipt example is a query string, the documented transport "form data"
    (docs/receiver.md): a query string, an urlencoded body and a ``multipart/form-data``
    body are all accepted. ``+`` and ``%20`` both decode to a space.
    """
    fields: dict[str, str] = {}
    sources = [query_string]
    multipart: dict[str, str] | None = None
    if body:
        ctype = (content_type or "").split(";", 1)[0].strip().lower()
        if ctype == "multipart/form-data":
            multipart = _decode_multipart(body, content_type or "")
        elif ctype not in ("", "application/x-www-form-urlencoded", "text/plain"):
            raise _Unparseable(f"unsupported content type {ctype!r} for form fields")
        else:
            sources.append(body)
    for raw in sources:
        if not raw:
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Unparseable(f"form data is not UTF-8: {exc.reason} at byte {exc.start}") from None
        try:
            pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
        except ValueError as exc:
            raise _Unparseable(f"form data not decodable: {exc}") from None
        fields.update(pairs)
    if multipart:
        fields.update(multipart)
    if not fields:
        raise _Unparseable("no form fields in query string or body")
    if any("\x00" in k or "\x00" in v for k, v in fields.items()):
        raise _Unparseable("form fields contain NUL, which PostgreSQL cannot store")
    return fields


def _decode_multipart(body: bytes, content_type: str) -> dict[str, str]:
    """The fields of a ``multipart/form-data`` body (file parts are taken as text fields too:
    a receipt has no files, and whatever a vendor sends as one is kept, not dropped)."""
    import python_multipart
    from python_multipart.exceptions import FormParserError

    parts: list[tuple[bytes, bytes]] = []

    def on_field(part) -> None:  # noqa: ANN001 - python_multipart.Field
        parts.append((part.field_name or b"", part.value or b""))

    def on_file(part) -> None:  # noqa: ANN001 - python_multipart.File
        part.file_object.seek(0)
        parts.append((part.field_name or b"", part.file_object.read()))

    headers = {"Content-Type": content_type.encode("latin-1", "replace"), "Content-Length": str(len(body))}
    try:
        python_multipart.parse_form(headers, io.BytesIO(body), on_field, on_file)
    except (FormParserError, ValueError, KeyError) as exc:
        raise _Unparseable(f"multipart form data not decodable: {str(exc)[:200]}") from None
    if len(parts) > MAX_FORM_FIELDS:
        raise _Unparseable(f"more than {MAX_FORM_FIELDS} multipart fields")
    fields: dict[str, str] = {}
    for name, value in parts:
        try:
            fields[name.decode("utf-8")] = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Unparseable(f"multipart field is not UTF-8: {exc.reason} at byte {exc.start}") from None
    return fields


def storable_dedupe_key(key: str) -> str:
    """The key as stored: itself, or a hash when longer than ``MAX_DEDUPE_KEY_BYTES``."""
    raw = key.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_DEDUPE_KEY_BYTES:
        return key
    return LONG_KEY_PREFIX + hashlib.sha256(raw).hexdigest()


def _dedupe_key_functions() -> dict[Endpoint, Callable[[Mapping], str]]:
    from phonecheck.parsers import accuauth, nxcloud

    return {
        Endpoint.NXCLOUD_NUMBER_CHECK: nxcloud.number_check_dedupe_key,
        Endpoint.NXCLOUD_VOICE: nxcloud.voice_receipt_dedupe_key,
        Endpoint.NXCLOUD_CALL: nxcloud.call_record_dedupe_key,
        Endpoint.ACCUAUTH_PHONE_NUMBER: accuauth.callback_dedupe_key,
    }


_KEY_FUNCTIONS: dict[Endpoint, Callable[[Mapping], str]] | None = None


def dedupe_key_for(endpoint: Endpoint, fields: Mapping) -> str:
    global _KEY_FUNCTIONS
    if _KEY_FUNCTIONS is None:
        _KEY_FUNCTIONS = _dedupe_key_functions()
    return _KEY_FUNCTIONS[endpoint](fields)


def build_event(
    endpoint: Endpoint,
    *,
    body: bytes,
    query_string: bytes,
    content_type: str | None,
    received_at: datetime,
) -> InboxEvent:
    """Decode a delivery into an inbox row. Never raises for bad input: it becomes an error row."""
    payload_text: str | None = None
    try:
        if endpoint.carries_json_body:
            fields, payload_text = decode_json_object(body)
        else:
            fields = decode_form_fields(query_string, body, content_type)
            payload_text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        try:
            key = dedupe_key_for(endpoint, fields)
        except Exception as exc:  # noqa: BLE001 - any parser complaint means "cannot key it"
            raise _Unparseable(f"no dedupe key: {type(exc).__name__}: {str(exc)[:200]}") from None
        if not isinstance(key, str) or not key or "\x00" in key:
            raise _Unparseable(f"no dedupe key: parser returned {key!r:.80}")
        key = storable_dedupe_key(key)
        status, error = "parsed", None
    except _Unparseable as exc:
        key = fallback_dedupe_key(query_string, body)
        status, error = "error", str(exc)
    return InboxEvent(
        endpoint=endpoint.value,
        vendor=endpoint.vendor,
        dedupe_key=key,
        content_type=_text_column(content_type.encode("latin-1", "replace")) if content_type else None,
        body=body,
        query_string=_text_column(query_string) if query_string else None,
        payload=payload_text,
        parse_status=status,
        parse_error=error,
        received_at=received_at,
    )
