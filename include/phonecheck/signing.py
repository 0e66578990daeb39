"""NXCLOUD request signing (docs/vendors/nxcloud.md).

The signed string is ``accessKey=..&action=..&bizType=..&ts=..`` (the signing headers sorted
by name, ``sign`` and ``algorithm`` excluded), then ``&body=<the exact body string sent>`` when
the request is JSON with a non-empty body, then ``&accessSecret=<secret>``. The digest is the
lowercase hex MD5 (default) or SHA-256 of its UTF-8 bytes.

The body must be signed exactly as it goes on the wire: serialise once with
:func:`canonical_json` and send those bytes, never let an HTTP client re-serialise.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any, Literal

SignAlgorithm = Literal["md5", "sha256"]
SIGNED_HEADER_NAMES: tuple[str, ...] = ("accessKey", "action", "bizType", "ts")
_HASHES = {"md5": hashlib.md5, "sha256": hashlib.sha256}


def canonical_json(payload: Mapping[str, Any]) -> str:
    """The one serialisation we sign and send: compact separators, UTF-8 kept as is."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def string_to_sign(
    headers: Mapping[str, str], body: str | None, secret: str, *, json_body: bool = True
) -> str:
    """Build the vendor's string-to-sign. ``headers`` needs the four signing headers."""
    missing = [name for name in SIGNED_HEADER_NAMES if not headers.get(name)]
    if missing:
        raise ValueError(f"missing signing header(s): {', '.join(missing)}")
    parts = [f"{name}={headers[name]}" for name in sorted(SIGNED_HEADER_NAMES)]
    text = "&".join(parts)
    if json_body and body:
        text += f"&body={body}"
    return f"{text}&accessSecret={secret}"


def sign(
    headers: Mapping[str, str],
    body: str | None,
    secret: str,
    algorithm: SignAlgorithm = "md5",
    *,
    json_body: bool = True,
) -> str:
    """Return the lowercase hex signature for a request."""
    try:
        digest = _HASHES[algorithm]
    except KeyError:
        raise ValueError(f"unsupported signing algorithm {algorithm!r}; use md5 or sha256") from None
    return digest(string_to_sign(headers, body, secret, json_body=json_body).encode("utf-8")).hexdigest()


def now_ms() -> str:
    """Current time in epoch milliseconds, as the vendor's ``ts`` header wants it."""
    return str(int(time.time() * 1000))


def signed_headers(
    *,
    access_key: str,
    secret: str,
    action: str,
    biz_type: str,
    body: str | None,
    algorithm: SignAlgorithm = "md5",
    ts: str | None = None,
    content_type: str = "application/json",
) -> dict[str, str]:
    """All headers for one signed call, with a fresh ``ts`` unless one is given."""
    headers = {"accessKey": access_key, "action": action, "bizType": str(biz_type), "ts": ts or now_ms()}
    headers["sign"] = sign(
        headers, body, secret, algorithm, json_body=content_type.startswith("application/json")
    )
    headers["Content-Type"] = content_type
    if algorithm != "md5":
        headers["algorithm"] = algorithm
    return headers
