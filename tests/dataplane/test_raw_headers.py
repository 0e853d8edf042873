"""`proxy.dataplane.raw_headers.RawHeaders`: what an upstream's head keeps, and the two ways it is read."""

from __future__ import annotations

import pytest

from proxy.dataplane.exchange import Reply
from proxy.dataplane.raw_headers import RawHeaders
from proxy.dataplane.respond import reply_head

HEAD = [
    (b"Server", b"up"),
    (b"Content-Type", b"text/event-stream; charset=utf-8"),
    (b"Connection", b"keep-alive, X-Hop"),
    (b"X-Hop", b"secret"),
    (b"Keep-Alive", b"timeout=7"),
    (b"Transfer-Encoding", b"chunked"),
    (b"X-Request-Id", b"theirs"),
    (b"x-outrider-feedback-token", b"forged"),
    (b"Set-Cookie", b"a=1"),
    (b"set-cookie", b"b=2"),
    (b"X-Bytes", b"caf\xc3\xa9 \xff"),
]


def test_end_to_end_headers_are_kept_as_sent_and_the_framing_facts_aside() -> None:
    raw = RawHeaders.of(HEAD)
    assert raw.pairs == [
        (b"Server", b"up"),
        (b"Content-Type", b"text/event-stream; charset=utf-8"),
        (b"Set-Cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"X-Bytes", b"caf\xc3\xa9 \xff"),
    ]
    assert (raw.chunked, raw.content_length, raw.keep_alive) == (True, None, b"timeout=7")
    assert raw.content_type == "text/event-stream; charset=utf-8"
    assert not raw.has_date
    assert RawHeaders.of([(b"Content-Length", b"12"), (b"Date", b"x")]).content_length == 12
    assert RawHeaders.of([(b"Date", b"x")]).has_date


def test_a_plain_connection_value_strips_nothing_else_and_protected_names_stay() -> None:
    kept = RawHeaders.of([(b"Connection", b"close"), (b"X-A", b"1")])
    assert kept.pairs == [(b"X-A", b"1")]
    protected = RawHeaders.of(
        [(b"Connection", b"X-Request-Id, Authorization, X-A"), (b"Authorization", b"t")]
    )
    assert protected.pairs == [(b"Authorization", b"t")]


def test_the_mapping_view_keeps_every_value_and_its_bytes() -> None:
    headers = RawHeaders.of(HEAD).multidict()
    assert headers.getall("set-cookie") == ["a=1", "b=2"]
    assert headers["X-Bytes"].encode("utf-8", "surrogateescape") == b"caf\xc3\xa9 \xff"


def test_a_reply_renders_its_raw_headers_until_they_are_read_then_the_mapping() -> None:
    raw = RawHeaders.of(HEAD)
    raw.add(b"x-request-id", b"ours")
    reply = Reply(200, None, b"", raw=raw)
    assert reply.content_type() == "text/event-stream; charset=utf-8"
    head = reply_head(reply, "Content-Length: 0\r\n", version10=False)
    assert head.startswith(b"HTTP/1.1 200 OK\r\nServer: up\r\n")
    assert b"X-Bytes: caf\xc3\xa9 \xff\r\nx-request-id: ours\r\nContent-Length: 0\r\nDate: " in head
    assert head.endswith(b" GMT\r\n\r\n")
    reply.headers["X-Added"] = "1"  # read as a mapping: from now on the mapping is the answer's headers
    assert reply.raw is None
    changed = reply_head(reply, "", version10=True)
    assert changed.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"X-Bytes: caf\xc3\xa9 \xff\r\n" in changed
    assert b"X-Added: 1\r\n" in changed


def test_a_header_that_would_split_the_answer_is_refused() -> None:
    raw = RawHeaders.of([(b"Server", b"up")])
    raw.add(b"x-outrider-variant", b"evil\r\nSet-Cookie: x=1")
    with pytest.raises(ValueError, match="CR or LF"):
        raw.lines()
