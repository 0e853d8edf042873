"""`proxy.dataplane.request_headers.RequestHeaders`: a request's headers read by name, as a mapping."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from proxy.dataplane.request_headers import RequestHeaders

PAIRS = [
    (b"Host", b"models"),
    (b"X-User-Id", b"caf\xc3\xa9"),
    (b"Authorization", b"Bearer a"),
    (b"authorization", b"Bearer b"),
    (b"X-Raw", b"\xff\xfe"),
]


def headers() -> RequestHeaders:
    return RequestHeaders(PAIRS, [name.lower() for name, _ in PAIRS])


def test_it_reads_as_the_mapping_of_the_same_pairs() -> None:
    mine = headers()
    mapping = CIMultiDict([(n.decode("latin-1"), v.decode("utf-8", "surrogateescape")) for n, v in PAIRS])
    for name in ("host", "X-USER-ID", "authorization", "x-raw", "absent"):
        assert mine.get(name) == mapping.get(name)
        assert mine.get(name, "d") == mapping.get(name, "d")
        assert mine.getall(name, []) == mapping.getall(name, [])
        assert (name in mine) == (name in mapping)
    assert mine.items() == list(mapping.items())
    assert list(mine) == [name for name, _ in mapping.items()]  # every name as sent, repeats kept
    assert len(mine) == len(mapping)
    assert mine["x-user-id"] == "café"
    with pytest.raises(KeyError):
        mine["absent"]


def test_values_keep_their_bytes() -> None:
    assert headers()["X-Raw"].encode("utf-8", "surrogateescape") == b"\xff\xfe"
    assert CIMultiDict(headers().items()).getall("Authorization") == ["Bearer a", "Bearer b"]
