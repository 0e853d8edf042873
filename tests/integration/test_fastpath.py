"""The request path on callbacks (proxy.dataplane.fastpath), against a real outrider process: once an upstream
connection is pooled, a request runs without a task. What the task path guarantees must hold there too: a
client that goes away mid-exchange (a reset, or a close: clients do not half-close and wait) closes the
upstream connection at once and is recorded as `client_disconnect`; an answer still in flight at SIGTERM is
delivered before the process exits; a request whose body arrives after its head, and the first request of an
upstream (no pooled connection yet), take the task path from where they stand and are answered the same."""

from __future__ import annotations

import asyncio
import signal
import socket
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.cli import exported
from tests.support.http import bounded_map, generating_server, scrape
from tests.support.procs import Proc
from tests.support.wait import wait_until


@dataclass
class SlowUpstream:
    """`POST /v2/slow?ms=N` answers `{"slept": N}` after N ms and notes how each call ended."""

    port: int = 0
    started: int = 0
    ended: list[tuple[str, float]] = field(default_factory=list)
    """(complete | cancelled, time.monotonic())"""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        ms = int(request.query.get("ms", "0"))
        await request.read()
        self.started += 1
        try:
            await asyncio.sleep(ms / 1000)  # the subject: an upstream that answers N ms late
        except asyncio.CancelledError:
            self.ended.append(("cancelled", time.monotonic()))
            raise
        self.ended.append(("complete", time.monotonic()))
        return web.json_response({"slept": ms})


@pytest.fixture
async def slow() -> AsyncIterator[SlowUpstream]:
    up = SlowUpstream()
    app = web.Application()
    app.router.add_post("/v2/slow", up.handle)
    async with generating_server(app) as port:
        up.port = port
        yield up


@pytest.fixture
def proxy(slow: SlowUpstream, outrider: OutriderFactory, tmp_path: Path) -> Proc:
    return outrider(
        canary_yaml(slow.url, slow.url, timeout="10s"),
        data_dir=tmp_path / "data",
        args=("--drain-delay", "0"),
    )


async def warm(proxy: Proc, session: aiohttp.ClientSession) -> None:
    """Answered requests leave pooled upstream connections behind (the first ones go the task path)."""
    for i in range(8):
        async with session.post(f"{proxy.url}/v2/slow?ms=0", data=b"{}", headers={"x-user-id": f"w{i}"}) as r:
            assert r.status == 200, await r.text()


@pytest.mark.parametrize("how", ["reset", "close"])
async def test_a_client_gone_mid_exchange_closes_the_upstream_and_is_recorded(
    slow: SlowUpstream, proxy: Proc, tmp_path: Path, how: str
) -> None:
    async with aiohttp.ClientSession() as session:
        await warm(proxy, session)
    slow.ended.clear()
    host, port = proxy.address.rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v2/slow?ms=5000 HTTP/1.1\r\nHost: t\r\nX-User-Id: u1\r\nX-Request-Id: gone-1\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    await wait_until(lambda: slow.started == 9, 5.0)  # the upstream has it
    assert slow.ended == []
    gone = time.monotonic()
    if how == "reset":  # a reset; else a plain close (FIN), as an HTTP client that times out sends
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    await wait_until(lambda: slow.ended, 5.0)
    (ended, when), *_ = slow.ended
    assert ended == "cancelled"
    assert when - gone < 0.1
    proxy.stop()
    records = {r["request_id"]: r for r in await exported(tmp_path / "data")}
    assert (records["gone-1"]["status"], records["gone-1"]["error"]) == (0, "client_disconnect")
    assert len(records) == 9  # the warm-up's eight, and this one: once


async def test_an_answer_in_flight_at_sigterm_is_delivered(
    slow: SlowUpstream, proxy: Proc, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as session:
        await warm(proxy, session)
        call = asyncio.ensure_future(
            session.post(f"{proxy.url}/v2/slow?ms=700", data=b"{}", headers={"x-request-id": "late-1"})
        )
        await wait_until(lambda: slow.started == 9, 5.0)  # the upstream has it
        assert len(slow.ended) == 8  # the warm-up's; this one is still being answered
        proxy.popen.send_signal(signal.SIGTERM)
        resp = await call
        assert resp.status == 200
        assert await resp.json() == {"slept": 700}
        resp.release()
    assert proxy.popen.wait(10) == 0
    records = {r["request_id"]: r for r in await exported(tmp_path / "data")}
    assert records["late-1"]["status"] == 200


async def test_a_body_after_its_head_and_a_cold_upstream_are_answered_the_same(
    slow: SlowUpstream, proxy: Proc, tmp_path: Path
) -> None:
    host, port = proxy.address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    for i in range(3):  # the first finds no pooled connection; the body of each comes after its head
        writer.write(
            b"POST /v2/slow?ms=0 HTTP/1.1\r\nHost: t\r\nX-User-Id: u1\r\nX-Request-Id: split-%d\r\n"
            b"Content-Length: 2\r\n\r\n" % i
        )
        await writer.drain()
        await asyncio.sleep(0.05)  # the subject: the head is parsed before the body arrives
        writer.write(b"{}")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 "), head
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:-2])
        length = int({k.lower(): v for k, v in fields.items()}[b"content-length"])
        assert await reader.readexactly(length) == b'{"slept": 0}'
    writer.close()
    proxy.stop()
    records = {r["request_id"]: r for r in await exported(tmp_path / "data")}
    assert [records[f"split-{i}"]["status"] for i in range(3)] == [200, 200, 200]


async def test_the_collector_does_not_walk_the_heap_under_load(slow: SlowUpstream, proxy: Proc) -> None:
    """proxy.runtime.gc_tuning: start-up's objects are frozen and the young generation is larger, so a load
    (requests, and the controller reading their records) does not make the collector walk the whole heap
    (numpy, scipy, onnx: some 10^5 objects) again and again."""
    gens = [f'python_gc_collections_total{{generation="{g}"}}' for g in range(3)]

    async def one(i: int) -> int:
        async with session.post(f"{proxy.url}/v2/slow?ms=0", data=b"{}", headers={"x-user-id": f"g{i}"}) as r:
            await r.read()
            return r.status

    async with aiohttp.ClientSession() as session:
        await warm(proxy, session)
        before = await scrape(session, proxy.admin_url)
        assert set(await bounded_map(list(range(3000)), one, concurrency=32)) == {200}
        after = await scrape(session, proxy.admin_url)
    runs = [after[g] - before[g] for g in gens]
    assert sum(runs) <= 5, runs  # CPython's default thresholds: ~70 runs here, one in ten of them older
