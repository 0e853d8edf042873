"""Forwarding through a real outrider: error mapping, caps, unmatched paths, hop-by-hop headers."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path

import aiohttp
import orjson
import pytest
from multidict import CIMultiDict

from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.procs import Proc, start


def dead_port() -> int:
    """A port nothing listens on (bound then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def post(
    url: str, body: bytes = b"{}", headers: dict[str, str] | None = None
) -> tuple[int, CIMultiDict[str], bytes, float]:
    started = time.monotonic()
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers or {}) as r:
        data = await r.read()
        return r.status, CIMultiDict(r.headers), data, time.monotonic() - started


@pytest.fixture
def proxy(upstreams: tuple[Proc, Proc], outrider: OutriderFactory) -> Proc:
    stable, candidate = upstreams
    return outrider(canary_yaml(stable.url, candidate.url, timeout="500ms", max_body_bytes=2_000))


async def test_upstream_reset_is_502_fast_and_recorded(proxy: Proc) -> None:
    status, headers, body, elapsed = await post(f"{proxy.url}/v2/reset", headers={"x-request-id": "abc-1"})
    assert status == 502
    assert elapsed < 0.1 + 0.05  # 100 ms target, a little slack for the test client itself
    err = orjson.loads(body)
    assert err["code"] == "upstream_unavailable"
    assert err["request_id"] == "abc-1"
    assert err["detail"]
    assert headers["x-request-id"] == "abc-1"
    assert headers["x-outrider-variant"] in ("stable", "candidate")
    status, *_ = await post(f"{proxy.url}/v2/ok")  # recovers at once
    assert status == 200


async def test_route_timeout_is_504_on_time(proxy: Proc) -> None:
    status, _, body, elapsed = await post(f"{proxy.url}/v2/sleep/3000")
    assert status == 504
    assert orjson.loads(body)["code"] == "upstream_timeout"
    assert 0.45 <= elapsed <= 0.55 + 0.05


async def test_connect_refused_is_502(outrider: OutriderFactory) -> None:
    port = dead_port()
    proxy = outrider(canary_yaml(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}"))
    status, _, body, _ = await post(f"{proxy.url}/v2/x")
    assert status == 502
    assert orjson.loads(body)["code"] == "upstream_unavailable"


async def test_body_over_the_route_cap_is_413(proxy: Proc) -> None:
    status, _, body, _ = await post(f"{proxy.url}/v2/x", body=b"x" * 2_001)
    assert status == 413
    assert orjson.loads(body)["code"] == "payload_too_large"
    status, *_ = await post(f"{proxy.url}/v2/x", body=b"x" * 2_000)
    assert status == 200


async def test_body_over_the_sidecar_cap_is_413_without_reading_it(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory
) -> None:
    stable, candidate = upstreams
    proxy = outrider(canary_yaml(stable.url, candidate.url), args=("--max-body-bytes", "1000"))
    status, _, _body, _ = await post(f"{proxy.url}/v2/x", body=b"y" * 5_000)
    assert status == 413


async def test_unmatched_path_is_404_without_default_upstream(proxy: Proc) -> None:
    status, headers, body, _ = await post(f"{proxy.url}/other/path")
    assert status == 404
    assert orjson.loads(body)["code"] == "no_route"
    assert headers["x-outrider-variant"] == "none"
    assert headers["x-request-id"]
    status, *_ = await post(f"{proxy.url}/v2x")  # a prefix matches whole segments only
    assert status == 404
    status, headers, body, _ = await post(f"{proxy.url}/other/a%0Ab")  # a newline in the path: still ours,
    assert (status, orjson.loads(body)["code"]) == (
        400,
        "bad_path",
    )  # refused before routing (proxy.dataplane.paths)


async def test_unmatched_path_passes_through_to_the_default_upstream(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    default = start([sys.executable, "-m", "tests.support.upstream", "--name", "default"], tmp_path / "d.log")
    try:
        proxy = outrider(canary_yaml(stable.url, candidate.url), args=("--default-upstream", default.url))
        status, headers, body, _ = await post(f"{proxy.url}/other/path?q=1")
        assert status == 200
        assert headers["x-outrider-variant"] == "default"
        echoed = orjson.loads(body)
        assert echoed["name"] == "default"
        assert echoed["path"] == "/other/path?q=1"
    finally:
        default.stop()


async def raw_exchange(address: str, request: bytes) -> bytes:
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)  # Connection: close ⇒ read to EOF
    writer.close()
    return data


async def test_hop_by_hop_headers_never_cross_either_way(proxy: Proc) -> None:
    body = b'{"x": 1}'
    request = (
        b"POST /v2/models/m/infer HTTP/1.1\r\n"
        b"Host: example\r\n"
        b"Connection: close, X-Client-Secret, Authorization\r\n"
        b"X-Client-Secret: must-not-cross\r\n"
        b"Authorization: Bearer keep-me\r\n"
        b"Keep-Alive: timeout=9\r\n"
        b"TE: trailers\r\n"
        b"Trailer: X-Checksum\r\n"
        b"Proxy-Authorization: Basic c2VjcmV0\r\n"
        b"Proxy-Connection: keep-alive\r\n"
        b"X-Outrider-Variant: candidate\r\n"
        b"X-User-Id: hop-user\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    raw = await raw_exchange(proxy.address, request)
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    response_headers = {
        line.split(b":", 1)[0].strip().lower().decode(): line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")[1:]
    }
    received = {k.lower(): v for k, v in orjson.loads(payload)["headers"]}
    for name in ("x-client-secret", "keep-alive", "te", "trailer", "proxy-authorization", "proxy-connection"):
        assert name not in received, name
    assert received.get("connection", "keep-alive").lower() in ("keep-alive", "close")  # its own leg's value
    assert received["authorization"] == "Bearer keep-me"  # naming it in Connection does not strip it
    assert "x-outrider-variant" not in received  # client-sent control headers are removed
    assert received["x-forwarded-for"] == "127.0.0.1"
    for name in ("x-upstream-secret", "proxy-authenticate", "trailer", "upgrade"):
        assert name not in response_headers, name
    assert response_headers.get("keep-alive") != "timeout=5"
    assert response_headers["x-upstream-name"] in ("stable", "candidate")


UPSTREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: raw-upstream\r\n"
    b"Date: Mon, 07 Dec 2026 10:00:00 GMT\r\n"
    b"Content-Type: application/json\r\n"
    b"X-Request-Id: made-by-the-upstream\r\n"
    b"X-Outrider-Variant: forged\r\n"
    b"X-Outrider-Feedback-Token: forged\r\n"
    b"Set-Cookie: a=1\r\n"
    b"set-cookie: b=2\r\n"
    b"X-Bytes: caf\xc3\xa9 \xff\r\n"
    b"Connection: keep-alive, X-Hop\r\n"
    b"X-Hop: secret\r\n"
    b"Keep-Alive: timeout=30\r\n"
    b"Content-Length: 2\r\n\r\n{}"
)


async def answer_raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An upstream that answers every request with `UPSTREAM_HEAD`'s exact bytes (keep-alive)."""
    RAW_WRITERS.append(writer)
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            lines = head.lower().split(b"\r\n")
            length = next((int(line[15:]) for line in lines if line.startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            writer.write(UPSTREAM_HEAD)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


RAW_WRITERS: list[asyncio.StreamWriter] = []
"""`answer_raw`'s connections, closed by the test before its loop ends (none left to the collector)."""


async def test_an_upstreams_header_bytes_reach_the_client_as_sent_but_for_hop_by_hop_and_outriders_own(
    outrider: OutriderFactory,
) -> None:
    server = await asyncio.start_server(answer_raw, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        proc = outrider(canary_yaml(url, url))
        request = (
            b"POST /v2/models/m/infer HTTP/1.1\r\nHost: example\r\nX-Request-Id: client-id-1\r\n"
            b"Connection: close\r\nContent-Length: 2\r\n\r\n{}"
        )
        for _ in range(2):  # the first on a new upstream connection, the second on the kept one
            head, _, body = (await raw_exchange(proc.address, request)).partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            assert lines[0] == b"HTTP/1.1 200 OK"
            assert lines[1:8] == [  # the upstream's end-to-end headers: same bytes, case and order
                b"Server: raw-upstream",
                b"Date: Mon, 07 Dec 2026 10:00:00 GMT",
                b"Content-Type: application/json",
                b"Set-Cookie: a=1",
                b"set-cookie: b=2",
                b"X-Bytes: caf\xc3\xa9 \xff",
                b"x-request-id: client-id-1",
            ]
            assert lines[8] in (b"x-outrider-variant: stable", b"x-outrider-variant: candidate")
            assert sorted(lines[9:]) == [b"Connection: close", b"Content-Length: 2"]
            assert body == b"{}"
    finally:
        server.close()
        for writer in RAW_WRITERS:
            writer.close()
        await server.wait_closed()
        RAW_WRITERS.clear()
