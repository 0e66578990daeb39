"""Pure parts of the receiver: decoding a delivery into an inbox row, spool records."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from phonecheck.receiver.intake import Endpoint, build_event, fallback_dedupe_key
from tests import seed_payloads as seed

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def event(endpoint, body=b"", query=b"", ctype=None):
    return build_event(endpoint, body=body, query_string=query, content_type=ctype, received_at=NOW)


def test_voice_fields_from_query_string_and_form_body_give_the_same_row():
    from urllib.parse import quote

    raw_qs = seed.VOICE_RECEIPT_QUERY_STRING.replace(" ", "%20").encode()
    form = "&".join(f"{k}={quote(v)}" for k, v in seed.VOICE_RECEIPT_FIELDS.items()).encode()
    by_query = event(Endpoint.NXCLOUD_VOICE, query=raw_qs)
    by_form = event(Endpoint.NXCLOUD_VOICE, body=form, ctype="application/x-www-form-urlencoded")
    assert by_query.dedupe_key == by_form.dedupe_key == "74078a0090f17e011505297261994|8615088888888"
    assert by_query.payload == by_form.payload and by_query.parse_status == "parsed"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty body"),
        (b"\xff{}", "not UTF-8"),
        (b"{", "not JSON"),
        (b'{"a": NaN}', "not JSON"),
        (b"[1]", "is a list"),
        (b'{"s": "\\u0000"}', "\\u0000"),
        (b'{"phone": "1"}', "no dedupe key"),
    ],
)
def test_undecodable_json_bodies_become_error_rows_keyed_on_their_hash(body, reason):
    row = event(Endpoint.NXCLOUD_NUMBER_CHECK, body=body, ctype="application/json")
    assert row.parse_status == "error" and reason in row.parse_error
    assert row.dedupe_key == "sha256:" + hashlib.sha256(b"\x00" + body).hexdigest()
    assert row.body == body


def test_fallback_key_separates_query_string_from_body():
    assert fallback_dedupe_key(b"a", b"b") != fallback_dedupe_key(b"", b"ab")


def test_nul_in_form_fields_and_odd_header_bytes_are_kept_storable():
    row = event(Endpoint.NXCLOUD_VOICE, query=b"phone=%00&messageid=x\xff", ctype="t\x00ext/plain")
    assert row.parse_status == "error" and "\x00" not in (row.query_string or "")
    assert "\x00" not in row.content_type


def test_seed_shapes_key_as_documented():
    nc = event(Endpoint.NXCLOUD_NUMBER_CHECK, body=b'{"batchNo":"b","phone":"p","requestId":"r"}')
    assert nc.dedupe_key == "b|p|r"
    call = event(Endpoint.NXCLOUD_CALL, body=b'{"callId":"c1","legList":[]}')
    assert call.dedupe_key == "c1"
    cb = event(Endpoint.ACCUAUTH_PHONE_NUMBER, query=b"task_id=T&phone_number=52&phone_status=ring")
    assert (cb.dedupe_key, cb.vendor) == ("T", "accuauth")


def test_an_escaped_backslash_before_u0000_is_an_ordinary_string():
    body = b'{"id": "a\\\\u0000", "callId": "c"}'  # JSON text: "a\\u0000" = a backslash, then u0000
    row = event(Endpoint.NXCLOUD_CALL, body=body)
    assert row.parse_status == "parsed" and row.dedupe_key == "a\\u0000"
    odd = event(Endpoint.NXCLOUD_CALL, body=b'{"id": "a\\\\\\u0000", "callId": "c"}')  # \\ then \u0000
    assert odd.parse_status == "error" and "\\u0000" in odd.parse_error


def test_long_vendor_keys_are_stored_as_a_hash():
    long_id = "m" * 600
    row = event(Endpoint.NXCLOUD_VOICE, query=f"messageid={long_id}&phone=86150".encode())
    expected = hashlib.sha256(f"{long_id}|86150".encode()).hexdigest()
    assert row.parse_status == "parsed" and row.dedupe_key == "sha256-key:" + expected
    assert long_id in row.payload  # the vendor's value is kept


def test_multipart_voice_receipts_decode_like_urlencoded_ones():
    fields = {**seed.VOICE_RECEIPT_FIELDS, "second": "10.5"}
    boundary = "----b0undary"
    body = (
        "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in fields.items()
        ).encode()
        + f"--{boundary}--\r\n".encode()
    )
    row = event(Endpoint.NXCLOUD_VOICE, body=body, ctype=f"multipart/form-data; boundary={boundary}")
    assert row.parse_status == "parsed", row.parse_error
    assert row.dedupe_key == "74078a0090f17e011505297261994|8615088888888"
    assert '"second":"10.5"' in row.payload
    broken = event(Endpoint.NXCLOUD_VOICE, body=b"garbage", ctype=f"multipart/form-data; boundary={boundary}")
    assert broken.parse_status == "error" and "multipart" in broken.parse_error
