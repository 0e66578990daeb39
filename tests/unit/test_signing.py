"""NXCLOUD signing against the vendor's published vectors (docs/vendors/nxcloud.md)."""

from __future__ import annotations

import hashlib

import pytest

from phonecheck.signing import canonical_json, sign, signed_headers, string_to_sign

VENDOR_HEADERS = {"accessKey": "fme2na3kdi3ki", "action": "send", "bizType": "1", "ts": "1655710885431"}
OWN_HEADERS = {"accessKey": "testAccessKey01", "action": "numbercheck", "bizType": "1", "ts": "1700000000000"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"name":"牛小信","id":10001}', "87c3560d3331ae23f1021e2025722354"),  # Java / C#
        ('{"id":10001,"name":"牛小信"}', "7750759da06333f20d0640be09355e34"),  # PHP / Go
        ('{"id": 10001, "name": "牛小信"}', "d0c24a9886c629330d7f3f2056c65bc2"),  # Python default separators
    ],
)
def test_vendor_vectors_md5(body, expected):
    assert sign(VENDOR_HEADERS, body, "abciiiko2k3") == expected


@pytest.mark.parametrize(
    ("body", "md5", "sha256"),
    [
        (
            '{"phone":"5215512345678,5215587654321","batchNo":"batch-0001","checkLevel":1,'
            '"drUrl":"https://example.com/nx/numbercheck","appkey":"appk01"}',
            "5edc647f65bb9dfa1d4bfdf73fc079a7",
            "24cfcedb661e1ccdff7a9515fcb494298c0e3d4c68be4293842e054aab54615e",
        ),
        (
            '{"batchNo":"batch-0001","page":1,"date":"2023-11-14","pageSize":100}',
            "1384a1b3005b1041d457667b5ceda511",
            "d64d8f878988b5f23dbeb32d13d0cd08d18ca5e7aac099a08931576d1e66f88d",
        ),
        (
            None,
            "a17810a1308a0bbaa7f2d11dcbc23a70",
            "9de7b600b0c94a8500a46dcbc164d154f9eb94abbfa34b052c7e872d7d5b4620",
        ),
    ],
)
def test_own_vectors_md5_and_sha256(body, md5, sha256):
    assert sign(OWN_HEADERS, body, "testSecret123") == md5
    assert sign(OWN_HEADERS, body, "testSecret123", "sha256") == sha256


def test_sha256_signs_the_same_string_as_md5():
    body = canonical_json({"batchNo": "b1", "page": 1})
    text = string_to_sign(OWN_HEADERS, body, "s3cret").encode()
    assert sign(OWN_HEADERS, body, "s3cret", "sha256") == hashlib.sha256(text).hexdigest()


def test_non_json_bodies_are_not_signed():
    assert (
        sign(OWN_HEADERS, "ignored", "testSecret123", json_body=False) == "a17810a1308a0bbaa7f2d11dcbc23a70"
    )


def test_missing_header_is_refused():
    with pytest.raises(ValueError, match="ts"):
        sign({k: v for k, v in OWN_HEADERS.items() if k != "ts"}, None, "x")


def test_signed_headers_mark_non_default_algorithm_and_never_carry_the_secret():
    headers = signed_headers(
        access_key="k",
        secret="TopSecretValue",
        action="numbercheck",
        biz_type="1",
        body="{}",
        algorithm="sha256",
    )
    assert headers["algorithm"] == "sha256"
    assert len(headers["sign"]) == 64
    assert "TopSecretValue" not in "".join(headers.values())
    assert "algorithm" not in signed_headers(access_key="k", secret="s", action="a", biz_type="1", body=None)
