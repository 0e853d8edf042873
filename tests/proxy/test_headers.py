"""Hop-by-hop stripping (RFC 9110 §7.6.1)."""

from __future__ import annotations

from multidict import CIMultiDict

from proxy.dataplane.headers import HOP_BY_HOP, end_to_end


def test_fixed_list_and_connection_named_headers_are_removed() -> None:
    headers = CIMultiDict(
        [(name, "x") for name in HOP_BY_HOP]
        + [
            ("Connection", "close, X-Secret , x-other"),
            ("X-Secret", "s"),
            ("X-Other", "o"),
            ("X-Keep", "k"),
            ("Content-Length", "3"),
        ]
    )
    out = end_to_end(headers)
    assert dict(out) == {"X-Keep": "k"}


def test_connection_cannot_strip_protected_headers() -> None:
    headers = CIMultiDict(
        [
            ("Connection", "Authorization, X-Forwarded-For"),
            ("Authorization", "Bearer t"),
            ("X-Forwarded-For", "1.2.3.4"),
        ]
    )
    out = end_to_end(headers)
    assert out["Authorization"] == "Bearer t"
    assert out["X-Forwarded-For"] == "1.2.3.4"


def test_repeated_headers_keep_order() -> None:
    out = end_to_end(CIMultiDict([("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]))
    assert out.getall("set-cookie") == ["a=1", "b=2"]
