"""`proxy.dataplane.connguard` and the edge's body pace in-process, on uvloop as in production, over real
127.0.0.1
sockets: header deadlines (silent, trickled, re-armed per keep-alive request), keep-alive idling, pipelining,
the connection cap, and a slow body refused with 408 and an immediate close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from proxy.dataplane.connguard import ConnGuard, GuardedSite, GuardLimits
from proxy.dataplane.edge import BodyPace, Edge
from proxy.dataplane.exchange import Exchange, Reply
from proxy.runtime import loop
from proxy.telemetry.metrics import Metrics
from tests.integration.test_slowloris import trickle
from tests.support.wait import wait_until

TIMEOUT = 0.5  # header timeout (and body grace) of these tests; every close is expected within ±0.3 s
SLACK = 0.3
REQUEST = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"
PARTIAL = b"GET /x HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"a" * 200


@dataclass
class Served:
    """A guarded aiohttp server in this process."""

    address: str
    metrics: Metrics
    guard: ConnGuard

    def sample(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


async def echo_length(ex: Exchange) -> Reply:
    return Reply(200, CIMultiDict(), str(len(ex.inbound.body)).encode())


@asynccontextmanager
async def guarded(max_connections: int = 100, keepalive: float = 5.0) -> AsyncIterator[Served]:
    """The edge (echoing the body length) behind a guard, on an ephemeral port."""
    metrics = Metrics()
    app = web.Application()
    app.router.add_route(
        "*", "/{tail:.*}", Edge(echo_length, metrics, 1 << 20, BodyPace(TIMEOUT, 1024)).handle
    )
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=keepalive)
    await runner.setup()
    assert runner.server is not None
    guard = ConnGuard(runner.server, GuardLimits(TIMEOUT, max_connections), metrics)
    await GuardedSite(runner, "127.0.0.1", 0, guard).start()
    host, port = runner.addresses[0][:2]
    try:
        yield Served(f"{host}:{port}", metrics, guard)
    finally:
        await runner.cleanup()


def run(scenario: Callable[[Served], Awaitable[None]], **options: float) -> None:
    """Run `scenario` against a fresh guarded server on uvloop (the loop production uses)."""

    async def main() -> None:
        async with guarded(**options) as served:  # type: ignore[arg-type]
            await scenario(served)

    loop.run(main())


async def connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = address.rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def answered(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A keep-alive connection that has had one request answered."""
    reader, writer = await connect(address)
    writer.write(REQUEST)
    assert await response(reader) == (200, b"0")
    return reader, writer


async def response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length: (status, body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode().split("\r\n")
    length = next(int(h.split(":")[1]) for h in lines if h.lower().startswith("content-length:"))
    return int(lines[0].split()[1]), await reader.readexactly(length)


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection within `seconds` (whatever it sends first)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_a_silent_connection_gets_408_and_is_closed_at_the_header_timeout() -> None:
    async def scenario(s: Served) -> None:
        got = await trickle(s.address, b"", b"", 0.1, 3.0)
        assert got.closed_after is not None
        assert abs(got.closed_after - TIMEOUT) <= SLACK
        assert got.data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert s.sample("outrider_slow_clients_closed_total", phase="header") == 1

    run(scenario)


def test_a_trickled_header_block_is_closed_at_its_deadline_and_forgotten() -> None:
    async def scenario(s: Served) -> None:
        got = await trickle(s.address, b"", PARTIAL, 0.05, 3.0)  # a byte every 50 ms never completes
        assert got.closed_after is not None
        assert abs(got.closed_after - TIMEOUT) <= SLACK
        await wait_until(lambda: s.sample("outrider_connections_open") == 0, 2.0)  # noticed on its next turn
        assert not s.guard.open

    run(scenario)


def test_keep_alive_idles_past_the_header_timeout_and_each_request_re_arms_it() -> None:
    async def scenario(s: Served) -> None:
        reader, writer = await answered(s.address)
        await asyncio.sleep(TIMEOUT * 2)  # idle: keep-alive's business, not the header deadline's
        writer.write(REQUEST)
        assert await response(reader) == (200, b"0")
        await asyncio.sleep(TIMEOUT * 2)  # the subject: idle again, past the header timeout
        start = asyncio.get_running_loop().time()
        writer.write(PARTIAL[:10])  # the next request starts: its deadline counts from this byte
        assert await closed_within(reader, TIMEOUT + SLACK)
        assert asyncio.get_running_loop().time() - start >= TIMEOUT - SLACK
        writer.close()

    run(scenario)


def test_an_idle_keep_alive_connection_is_closed_after_keepalive() -> None:
    async def scenario(s: Served) -> None:
        reader, writer = await answered(s.address)
        assert not await closed_within(reader, 1.0 - SLACK)
        assert await closed_within(reader, 2 * SLACK)
        assert s.sample("outrider_slow_clients_closed_total", phase="header") == 0
        writer.close()

    run(scenario, keepalive=1.0)


def test_pipelined_requests_are_all_answered() -> None:
    async def scenario(s: Served) -> None:
        reader, writer = await connect(s.address)
        post = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
        writer.write(REQUEST + post + REQUEST)
        assert [await response(reader) for _ in range(3)] == [(200, b"0"), (200, b"3"), (200, b"0")]
        writer.close()

    run(scenario)


def test_connections_beyond_the_cap_are_closed_at_once_and_counted() -> None:
    async def scenario(s: Served) -> None:
        held = [await answered(s.address) for _ in range(2)]
        refused, writer = await connect(s.address)
        assert await closed_within(refused, 0.2)
        writer.close()
        assert s.sample("outrider_connections_refused_total") == 1
        assert s.sample("outrider_connections_open") == 2
        held[0][1].close()
        # the server notices the close on its next loop turn
        await wait_until(lambda: s.sample("outrider_connections_open") == 1, 1.0)
        _, writer = await answered(s.address)
        for w in (writer, held[1][1]):
            w.close()
            await w.wait_closed()

    run(scenario, max_connections=2)


def test_a_body_under_the_minimum_rate_gets_408_and_the_connection_closes_at_once() -> None:
    head = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"

    async def scenario(s: Served) -> None:
        # 10 bytes every 0.1 s = 100 B/s: due by 0.5 s + received/1024 ≈ 0.55 s
        slow = await trickle(s.address, head % 1000, b"x" * 1000, 0.1, 3.0, chunk=10)
        assert slow.data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert b'"code":"request_timeout"' in slow.data
        assert slow.closed_after is not None  # closed right after the answer: no 10 s lingering read
        assert abs(slow.closed_after - 0.55) <= SLACK
        assert s.sample("outrider_slow_clients_closed_total", phase="body") == 1
        # 100 bytes every 20 ms = 5 KB/s for 1 s, twice the grace: fast enough all the way
        reader, writer = await connect(s.address)
        writer.write(head % 5000)
        for _ in range(50):
            writer.write(b"y" * 100)
            await asyncio.sleep(0.02)
        assert await response(reader) == (200, b"5000")
        writer.close()

    run(scenario)
