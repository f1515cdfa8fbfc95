"""Byte ranges of bundle downloads, and the signed request a destination downloads with."""

from __future__ import annotations

import pytest

from iss_plugin.adapters.bundles import request_signing as rs
from iss_plugin.adapters.bundles.signing import Signer
from iss_plugin.domain.errors import NotAuthenticated
from iss_plugin.web.api.ranges import Unsatisfiable, parse_range


@pytest.mark.parametrize(
    ("header", "size", "span"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=90-", 100, (90, 99)),
        ("bytes=90-500", 100, (90, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-500", 100, (0, 99)),
        ("bytes=0-1,5-6", 100, None),  # several ranges: ignored, the whole archive
        ("items=0-1", 100, None),
        ("bytes=-", 100, None),
    ],
)
def test_ranges(header, size, span):
    assert parse_range(header, size) == span


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=5-2", 100), ("bytes=-0", 100), ("bytes=0-", 0)]
)
def test_unsatisfiable_ranges(header, size):
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)


def test_a_signed_request_is_bound_to_its_key_path_and_time():
    key = Signer.generate()
    path = "/api/v1/bundles/b-1/download"
    signed = rs.parse(rs.authorization(key, "dest-1", "GET", path, now=1000))
    assert signed is not None and signed.server_id == "dest-1"
    rs.check(signed, key.public_pem, "GET", path, now=1000 + rs.WINDOW)
    with pytest.raises(NotAuthenticated, match="clock"):
        rs.check(signed, key.public_pem, "GET", path, now=1001 + rs.WINDOW)
    with pytest.raises(NotAuthenticated, match="signature"):
        rs.check(signed, key.public_pem, "GET", "/api/v1/bundles/b-2/download", now=1000)
    with pytest.raises(NotAuthenticated, match="signature"):
        rs.check(signed, Signer.generate().public_pem, "GET", path, now=1000)
    assert rs.parse("Bearer abc") is None
    with pytest.raises(NotAuthenticated):
        rs.parse('Iss-Ed25519 server="x"')
