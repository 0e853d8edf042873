"""Request smuggling and framing vectors over raw sockets (docs/reliability.md): each is refused with 400
(505 for a bad version), the connection is closed, and the upstream receives nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.procs import Proc

BODY = b'{"x":1}'
H = b"Host: models\r\nX-User-Id: u1\r\n"
VECTORS: list[tuple[str, bytes]] = [
    (
        "cl-and-te",
        b"POST /v2/m/infer HTTP/1.1\r\n"
        + H
        + b"Content-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "te-and-cl",
        b"POST /v2/m/infer HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n0\r\n\r\n",
    ),
    (
        "two-cl-differ",
        b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"Content-Length: 7\r\nContent-Length: 8\r\n\r\n" + BODY,
    ),
    ("cl-list", b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"Content-Length: 7, 8\r\n\r\n" + BODY),
    ("cl-negative", b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"Content-Length: -7\r\n\r\n" + BODY),
    ("cl-plus", b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"Content-Length: +7\r\n\r\n" + BODY),
    ("cl-hex", b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"Content-Length: 0x7\r\n\r\n" + BODY),
    ("cl-space-inside", b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"Content-Length: 7 7\r\n\r\n" + BODY),
    (
        "cl-huge",
        b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\n" + BODY,
    ),
    (
        "te-obfuscated-space",
        b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    ),
    ("te-xchunked", b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
    (
        "te-chunked-not-last",
        b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    ),
    (
        "te-double",
        b"POST /v2/m/infer HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "te-vertical-tab",
        b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
    ),
    ("te-http10", b"POST /v2/m/infer HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    (
        "chunk-size-bad",
        b"POST /v2/m/infer HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"
        + BODY
        + b"\r\n0\r\n\r\n",
    ),
    (
        "chunk-size-negative",
        b"POST /v2/m/infer HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n-7\r\n"
        + BODY
        + b"\r\n0\r\n\r\n",
    ),
    (
        "chunk-size-plus",
        b"POST /v2/m/infer HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n+7\r\n"
        + BODY
        + b"\r\n0\r\n\r\n",
    ),
    (
        "chunk-ext-bare-lf",
        b"POST /v2/m/infer HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n7;a\n"
        + BODY
        + b"\r\n0\r\n\r\n",
    ),
    (
        "chunk-no-crlf",
        b"POST /v2/m/infer HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n7\r\n"
        + BODY
        + b"XX0\r\n\r\n",
    ),
    (
        "obs-fold",
        b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"X-Folded: a\r\n b\r\nContent-Length: 7\r\n\r\n" + BODY,
    ),
    (
        "obs-fold-te",
        b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"X-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    ("bare-lf-header", b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"Content-Length: 7\nX-B: 1\r\n\r\n" + BODY),
    ("bare-cr", b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"X-C: a\rb\r\nContent-Length: 7\r\n\r\n" + BODY),
    (
        "nul-in-header",
        b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"X-D: a\x00b\r\nContent-Length: 7\r\n\r\n" + BODY,
    ),
    ("nul-in-path", b"POST /v2/m/in\x00fer HTTP/1.1\r\n" + H + b"Content-Length: 7\r\n\r\n" + BODY),
    ("space-before-colon", b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"Content-Length : 7\r\n\r\n" + BODY),
    (
        "header-no-colon",
        b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"NoColonHere\r\nContent-Length: 7\r\n\r\n" + BODY,
    ),
    (
        "bad-header-name",
        b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"X(E): 1\r\nContent-Length: 7\r\n\r\n" + BODY,
    ),
    (
        "two-hosts",
        b"POST /v2/m/infer HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-User-Id: u\r\nContent-Length: 7\r\n\r\n"
        + BODY,
    ),
    ("bad-method", b"PO ST /v2/m/infer HTTP/1.1\r\n" + H + b"Content-Length: 7\r\n\r\n" + BODY),
    ("bad-version-text", b"POST /v2/m/infer HTTP/1.x\r\n" + H + b"Content-Length: 7\r\n\r\n" + BODY),
    ("http2-request-line", b"POST /v2/m/infer HTTP/2.0\r\n" + H + b"Content-Length: 7\r\n\r\n" + BODY),
    ("http3-request-line", b"POST /v2/m/infer HTTP/3.0\r\n" + H + b"Content-Length: 7\r\n\r\n" + BODY),
    ("request-line-too-long", b"POST /v2/m/" + b"a" * 20_000 + b" HTTP/1.1\r\n" + H + b"\r\n"),
    ("header-too-long", b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"X-Big: " + b"b" * 20_000 + b"\r\n\r\n"),
    (  # docs/reliability.md safe default: at most 100 headers
        "too-many-headers",
        b"POST /v2/m/infer HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n",
    ),
]


@pytest.fixture
async def counting_upstream() -> AsyncIterator[tuple[str, list[int]]]:
    """A raw TCP upstream that only counts the bytes it receives."""
    received = [0]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received[0] += len(data)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", received
    server.close()
    await server.wait_closed()


async def send_raw(address: str, payload: bytes) -> tuple[bytes, bool]:
    """(response bytes, whether the server closed the connection afterwards)."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(payload)
    await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(65536), 5)
        rest = await asyncio.wait_for(reader.read(65536), 5)
        closed = rest == b""
    except (TimeoutError, ConnectionResetError):
        data, closed = b"", False
    writer.close()
    return data, closed


async def test_framing_vectors_are_refused_and_never_reach_the_upstream(
    counting_upstream: tuple[str, list[int]], outrider: OutriderFactory
) -> None:
    url, received = counting_upstream
    proxy: Proc = outrider(canary_yaml(url, url))
    assert len(VECTORS) >= 30
    failures = []
    for name, payload in VECTORS:
        data, closed = await send_raw(proxy.address, payload)
        status = data.split(b" ", 2)[1] if data.startswith(b"HTTP/") else b"?"
        if status not in (b"400", b"505", b"413", b"431") or not closed:
            failures.append((name, data[:60], closed))
    assert not failures, failures
    assert received[0] == 0
