"""Request heads on the native data plane: the framing rules of RFC 9112 §6.1, the headers the chain sees
(hop-by-hop, Connection-named and client `x-outrider-*` removed, protected ones kept), request targets, and
request ids."""

from __future__ import annotations

import pytest

from proxy.dataplane.errors import BadFraming, BadRequest, OutriderError, VersionNotSupported
from proxy.dataplane.head import parse_head, request_path
from proxy.dataplane.ids import RequestIds

HOST = (b"Host", b"models")


@pytest.mark.parametrize(
    ("raw", "version", "refusal"),
    [
        ([HOST], "2.0", VersionNotSupported),
        ([HOST], "0.9", VersionNotSupported),
        ([(b"Transfer-Encoding", b"chunked")], "1.0", BadFraming),
        ([HOST, (b"Transfer-Encoding", b"gzip, chunked")], "1.1", BadFraming),
        ([HOST, (b"Transfer-Encoding", b"identity")], "1.1", BadFraming),
        ([HOST, (b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"0")], "1.1", BadFraming),
        ([HOST, HOST], "1.1", BadRequest),
        ([HOST, (b"User-Agent", b"a"), (b"user-agent", b"b")], "1.1", BadRequest),
        ([], "1.1", BadRequest),
    ],
)
def test_heads_that_must_be_refused(
    raw: list[tuple[bytes, bytes]], version: str, refusal: type[OutriderError]
) -> None:
    with pytest.raises(refusal):
        parse_head(b"POST", b"/v2/m/infer", raw, version)


def test_the_chain_sees_end_to_end_headers_only() -> None:
    head = parse_head(
        b"POST",
        b"/v2/m/infer?x=1",
        [
            HOST,
            (b"Connection", b"keep-alive, X-Secret, Authorization"),
            (b"X-Secret", b"s"),
            (b"Authorization", b"Bearer t"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Content-Length", b"7"),
            (b"X-Outrider-Variant", b"candidate"),
            (b"x-outrider-feedback-token", b"forged"),
            (b"X-Value", b"trailing space  \t"),
            (b"X-Request-Id", b"rid-1"),
            (b"Expect", b"100-continue"),
        ],
        "1.1",
    )
    assert list(head.headers.items()) == [
        ("Host", "models"),
        ("Authorization", "Bearer t"),  # protected: naming it in Connection does not strip it
        ("X-Value", "trailing space"),
        ("X-Request-Id", "rid-1"),
        ("Expect", "100-continue"),
    ]
    assert (head.method, head.path, head.length, head.chunked) == ("POST", "/v2/m/infer?x=1", 7, False)
    assert head.expect_continue
    assert head.has_request_id


def test_non_utf8_values_pass_as_surrogates_and_http10_needs_no_host() -> None:
    head = parse_head(b"GET", b"/", [(b"X-User-Id", b"\xff\xfe")], "1.0")
    assert head.headers["X-User-Id"] == "\udcff\udcfe"
    assert not head.expect_continue


def test_request_targets() -> None:
    assert request_path(b"/a/b?c=d") == "/a/b?c=d"
    assert request_path(b"http://example.com/a?b=c") == "/a?b=c"
    assert request_path(b"HTTPS://example.com") == "/"
    for bad in (b"*", b"example.com:443", b"ftp://x/y"):
        with pytest.raises(BadRequest):
            request_path(bad)


def test_request_ids_are_unique_and_look_like_uuid_hex() -> None:
    ids = RequestIds()
    made = [ids.next() for _ in range(1000)]
    assert len(set(made)) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in made)
    assert RequestIds().prefix != ids.prefix  # 64 random bits per process
    assert RequestIds("ab" * 8).next() == "ab" * 8 + "0" * 15 + "1"
