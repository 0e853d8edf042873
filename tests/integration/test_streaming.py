"""Server-sent events through a real outrider: each event reaches the client as the upstream sends it (the
first within a few ms of going direct), in order; a client that goes away stops the upstream's generation at
once; an upstream failing mid-stream cuts the client's body; the outcome record is written when the stream
ends, with its events, bytes and time to first byte. A stream may outlive the route timeout (that bounds
its head); it is cut when it falls silent for `streamIdleTimeout` or outlives `streamTimeout`."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.cli import exported
from tests.support.http import generating_server
from tests.support.procs import Proc

EVENTS, GAP_S = 20, 0.02


@dataclass
class SseUpstream:
    """A generating upstream in this process: `/v2/sse?n=N&gap=S[&cut=K]` sends N events S seconds apart
    (aborting its connection after K of them), and notes how and when each stream ended."""

    port: int = 0
    ended: list[tuple[str, float]] = field(default_factory=list)
    """(how: complete | cancelled | reset | cut, time.monotonic())."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        n, gap = int(request.query.get("n", EVENTS)), float(request.query.get("gap", GAP_S))
        cut = int(request.query.get("cut", -1))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            for i in range(n):
                if i == cut:
                    assert request.transport is not None
                    request.transport.abort()
                    self.ended.append(("cut", time.monotonic()))
                    return resp
                await resp.write(f"id: {i}\ndata: token-{i}\n\n".encode())
                await asyncio.sleep(gap)
            await resp.write_eof()
            self.ended.append(("complete", time.monotonic()))
        except asyncio.CancelledError:
            self.ended.append(("cancelled", time.monotonic()))
            raise
        except ConnectionError:
            self.ended.append(("reset", time.monotonic()))
        return resp


@pytest.fixture
async def sse() -> AsyncIterator[SseUpstream]:
    up = SseUpstream()
    app = web.Application()
    app.router.add_get("/v2/sse", up.handle)
    async with generating_server(app) as port:
        up.port = port
        yield up


@pytest.fixture
def proxy(sse: SseUpstream, outrider: OutriderFactory, tmp_path: Path) -> Proc:
    return outrider(canary_yaml(sse.url, sse.url, timeout="10s"), data_dir=tmp_path / "data")


async def first_event_s(address: str, query: str) -> float:
    """Seconds from connecting to the first event's bytes, over a raw socket (then hang up)."""
    host, port = address.rsplit(":", 1)
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /v2/sse?{query} HTTP/1.1\r\nHost: t\r\nX-User-Id: u1\r\n\r\n".encode())
    seen = b""
    while b"data: token-0" not in seen:
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        assert chunk, seen
        seen += chunk
    elapsed = time.perf_counter() - started
    writer.transport.abort()
    return elapsed


async def records_of(proxy: Proc, data_dir: Path) -> dict[str, dict[str, object]]:
    proxy.stop()  # every record is flushed on the way out
    return {str(r["request_id"]): r for r in await exported(data_dir)}


async def test_events_arrive_as_they_are_sent_and_are_recorded(
    sse: SseUpstream, proxy: Proc, tmp_path: Path
) -> None:
    direct = [await first_event_s(f"127.0.0.1:{sse.port}", "n=3") for _ in range(100)]
    proxied = [await first_event_s(proxy.address, "n=3") for _ in range(100)]
    direct_ms, proxied_ms = statistics.median(direct) * 1000, statistics.median(proxied) * 1000
    print(f"first SSE event, median of 100: direct {direct_ms:.2f} ms, through outrider {proxied_ms:.2f} ms")
    assert proxied_ms < direct_ms + 50  # the old forwarder waited for the whole stream: ≥ 40 ms more here

    arrivals: list[tuple[float, bytes]] = []
    headers = {"x-user-id": "u1", "x-request-id": "sse-1"}
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        async with session.get(f"{proxy.url}/v2/sse", headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/event-stream"
            assert "Content-Length" not in resp.headers  # chunked: the length is not known up front
            async for chunk in resp.content.iter_any():
                arrivals.append((time.monotonic() - started, chunk))
    body = b"".join(chunk for _, chunk in arrivals)
    assert body == b"".join(f"id: {i}\ndata: token-{i}\n\n".encode() for i in range(EVENTS))
    first, total = arrivals[0][0], arrivals[-1][0]
    assert first < 0.05 < total  # the first event long before the stream's end (≈ 20 × 20 ms)
    assert len(arrivals) >= EVENTS // 2  # events came one by one, not in one piece at the end
    record = (await records_of(proxy, tmp_path / "data"))["sse-1"]
    assert (record["status"], record["error"], record["events"]) == (200, None, EVENTS)
    assert record["bytes_out"] == len(body)
    ttfb, latency = record["ttfb_ms"], record["latency_ms"]
    assert isinstance(ttfb, float)
    assert isinstance(latency, float)
    assert ttfb < 50 < latency
    assert record["upstream_ms"] == pytest.approx(latency, abs=20)  # the upstream's time is the whole stream


async def test_a_client_gone_mid_stream_stops_the_upstream_at_once(
    sse: SseUpstream, proxy: Proc, tmp_path: Path
) -> None:
    host, port = proxy.address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    request = "GET /v2/sse?n=200 HTTP/1.1\r\nHost: t\r\nX-User-Id: u1\r\nX-Request-Id: gone-1\r\n\r\n"
    writer.write(request.encode())
    seen = b""
    while b"data: token-2\n\n" not in seen:
        seen += await asyncio.wait_for(reader.read(65536), 5)
    gone = time.monotonic()
    writer.transport.abort()
    for _ in range(100):
        if sse.ended:
            break
        await asyncio.sleep(0.005)
    (how, when), *_ = sse.ended
    assert how in ("cancelled", "reset")
    assert when - gone < 0.1
    record = (await records_of(proxy, tmp_path / "data"))["gone-1"]
    assert (record["status"], record["error"]) == (200, "client_disconnect")
    bytes_out = record["bytes_out"]
    assert isinstance(bytes_out, int)
    assert bytes_out > 0


async def test_an_upstream_failing_mid_stream_cuts_the_clients_body(
    sse: SseUpstream, proxy: Proc, tmp_path: Path
) -> None:
    headers = {"x-user-id": "u1", "x-request-id": "cut-1"}
    got: list[bytes] = []

    async def read(resp: aiohttp.ClientResponse) -> None:
        async for chunk in resp.content.iter_any():
            got.append(chunk)

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{proxy.url}/v2/sse?n=10&cut=3", headers=headers) as resp,
    ):
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):  # never a clean end of a cut body
            await read(resp)
    assert b"".join(got).count(b"\n\n") == 3
    record = (await records_of(proxy, tmp_path / "data"))["cut-1"]
    assert (record["status"], record["error"], record["events"]) == (200, "upstream_reset", 3)


async def read_all(url: str, headers: dict[str, str]) -> tuple[int, bytes, bool]:
    """(status, body bytes received, whether the body ended cleanly)."""
    got: list[bytes] = []
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        try:
            async for chunk in resp.content.iter_any():
                got.append(chunk)
        except aiohttp.ClientPayloadError:
            return resp.status, b"".join(got), False
        return resp.status, b"".join(got), True


async def test_a_stream_outlives_the_route_timeout_and_is_cut_when_silent_or_too_long(
    sse: SseUpstream, outrider: OutriderFactory, tmp_path: Path
) -> None:
    limits = {"timeout": "500ms", "stream_idle_timeout": "400ms", "stream_timeout": "2s"}
    proxy = outrider(canary_yaml(sse.url, sse.url, **limits), data_dir=tmp_path / "data")
    base = f"{proxy.url}/v2/sse"
    # 12 events 100 ms apart: 1.2 s, past the 500 ms route timeout, never silent for 400 ms
    status, body, clean = await read_all(f"{base}?n=12&gap=0.1", {"x-user-id": "u1", "x-request-id": "long"})
    assert (status, clean, body.count(b"\n\n")) == (200, True, 12)
    # events 700 ms apart: silent longer than 400 ms after the first one
    started = time.monotonic()
    status, body, clean = await read_all(f"{base}?n=5&gap=0.7", {"x-user-id": "u1", "x-request-id": "silent"})
    cut_after = time.monotonic() - started
    assert (status, clean, body.count(b"\n\n")) == (200, False, 1)
    assert 0.35 < cut_after < 0.7
    # never silent, but longer than 2 s in all: cut at 2 s
    started = time.monotonic()
    status, body, clean = await read_all(
        f"{base}?n=40&gap=0.1", {"x-user-id": "u1", "x-request-id": "endless"}
    )
    cut_after = time.monotonic() - started
    assert (status, clean) == (200, False)
    assert 1.9 < cut_after < 2.6
    assert 15 <= body.count(b"\n\n") <= 21
    records = await records_of(proxy, tmp_path / "data")
    assert (records["long"]["error"], records["long"]["events"]) == (None, 12)
    assert (records["silent"]["status"], records["silent"]["error"]) == (200, "timeout")
    assert records["endless"]["error"] == "timeout"
