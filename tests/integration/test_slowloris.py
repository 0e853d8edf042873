"""Slow clients against a real outrider (docs/reliability.md "slow clients"): slowloris connections that
trickle an endless header block are closed at the header timeout ±1 s while legitimate traffic stays 100% OK,
and a body trickled under the minimum rate gets 408 and a closed connection.

The fast run uses a 2 s header timeout and 50 connections; the slow run (`-m slow`) 1000 connections at the
default 10 s. Figures print with `-s`.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
from dataclasses import dataclass

import aiohttp
import pytest

from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.http import bounded_map, scrape
from tests.support.procs import Proc

# an endless header block: the request line and Host arrive, then one header that never ends
ENDLESS_HEADERS = (
    b"GET /v2/models/m/infer HTTP/1.1\r\nHost: models\r\nX-User-Id: slow\r\nX-Pad: " + b"a" * 4096
)


@dataclass(frozen=True)
class Trickled:
    """What one trickling connection saw: seconds from its first byte to the server's close, and the bytes."""

    closed_after: float | None  # None: still open when the client gave up
    data: bytes


async def trickle(
    address: str, head: bytes, payload: bytes, interval: float, give_up_s: float, *, chunk: int = 1
) -> Trickled:
    """Connect, send `head` at once (may be empty), then `payload` `chunk` bytes every `interval` seconds
    until the server closes (or `give_up_s` passes); time is measured from the first byte sent."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    loop = asyncio.get_running_loop()
    first = loop.time()

    async def feed() -> None:
        if head:
            writer.write(head)
        for i in range(0, len(payload), chunk):
            writer.write(payload[i : i + chunk])
            await asyncio.sleep(interval)

    feeder = asyncio.create_task(feed())
    data, closed_after = b"", None
    try:
        async with asyncio.timeout(give_up_s):
            while block := await reader.read(65536):
                data += block
        closed_after = loop.time() - first
    except ConnectionResetError:
        closed_after = loop.time() - first
    except TimeoutError:
        pass
    feeder.cancel()
    await asyncio.gather(feeder, return_exceptions=True)
    writer.close()
    return Trickled(closed_after, data)


def raise_fd_limit(needed: int) -> int:
    """Raise this process's soft fd limit (children inherit it) to at least `needed` if the hard limit
    allows; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def spread(values: list[float], deadline: float) -> str:
    """min / median / max of `values` minus `deadline`, for the report."""
    low, mid, high = (f(values) - deadline for f in (min, statistics.median, max))
    return f"min {low:+.3f} s, median {mid:+.3f} s, max {high:+.3f} s"


async def legit_traffic(proxy: Proc, requests: int, concurrency: int = 8) -> list[int]:
    """`requests` inference POSTs through the proxy on keep-alive connections; their statuses."""
    url = f"{proxy.url}/v2/models/m/infer"
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> int:
            async with session.post(url, data=b'{"x":1}', headers={"x-user-id": f"u{i}"}) as resp:
                await resp.read()
                return resp.status

        return await bounded_map(range(requests), one, concurrency)


async def slowloris_run(proxy: Proc, connections: int, header_timeout: float, requests: int) -> None:
    """`connections` slowloris connections (a byte every 0.5 s) beside `requests` legitimate ones."""
    give_up = header_timeout + 5
    slow = [trickle(proxy.address, b"", ENDLESS_HEADERS, 0.5, give_up) for _ in range(connections)]
    results, statuses = await asyncio.gather(asyncio.gather(*slow), legit_traffic(proxy, requests))
    closes = [r.closed_after for r in results]
    assert None not in closes, f"{closes.count(None)} slow connections were still open after {give_up} s"
    times = [c for c in closes if c is not None]
    print(
        f"\n{connections} slowloris connections, header timeout {header_timeout} s: closed at "
        f"{spread(times, header_timeout)} from the deadline; legitimate: {len(statuses)} requests, "
        f"{statuses.count(200)} OK"
    )
    assert statuses == [200] * requests
    assert all(abs(t - header_timeout) <= 1.0 for t in times), sorted(times)
    assert all(r.data.startswith(b"HTTP/1.1 408 ") for r in results)
    async with aiohttp.ClientSession() as session:
        samples = await scrape(session, proxy.admin_url)
    assert samples['outrider_slow_clients_closed_total{phase="header"}'] == connections
    assert samples["outrider_internal_errors_total"] == 0


async def test_slowloris_is_closed_at_the_header_timeout_while_traffic_flows(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory
) -> None:
    stable, candidate = upstreams
    proxy = outrider(canary_yaml(stable.url, candidate.url), args=("--header-timeout", "2"))
    await slowloris_run(proxy, connections=50, header_timeout=2.0, requests=300)


@pytest.mark.slow
async def test_1000_slowloris_connections_at_the_default_header_timeout(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory
) -> None:
    assert raise_fd_limit(4096) >= 2200  # 1000 client + 1000 server sockets, plus the usual
    stable, candidate = upstreams
    # every connection here comes from 127.0.0.1: lift the per-client cap (256) so that the header deadline,
    # not that cap, is what meets the 1000 (the cap has its own test in tests/dataplane/test_hardening.py)
    per_client = ("--max-connections-per-client", "4096")
    proxy = outrider(canary_yaml(stable.url, candidate.url), args=per_client)
    await slowloris_run(proxy, connections=1000, header_timeout=10.0, requests=2000)


async def test_a_body_under_the_minimum_rate_gets_408_and_the_connection_closes(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory
) -> None:
    stable, candidate = upstreams
    proxy = outrider(canary_yaml(stable.url, candidate.url), args=("--header-timeout", "2"))

    def head(length: int) -> bytes:
        return (
            b"POST /v2/models/m/infer HTTP/1.1\r\nHost: models\r\nX-User-Id: slow\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % length
        )

    slow, fast = await asyncio.gather(
        # 10 bytes every 0.5 s = 20 B/s: the deadline is 2 s of grace + received/1024 s ≈ 2.03 s
        trickle(proxy.address, head(4000), b"x" * 4000, 0.5, 10.0, chunk=10),
        # 100 bytes every 0.04 s ≈ 2.5 KB/s for 3.2 s: longer than the grace, but over 1 KiB/s all the way
        trickle(proxy.address, head(8000), b"x" * 8000, 0.04, 10.0, chunk=100),
    )
    print(f"\nslow body: 408 after {slow.closed_after} s (deadline ≈ 2.03 s)")
    assert slow.data.startswith(b"HTTP/1.1 408 "), slow.data[:80]
    assert b'"code":"request_timeout"' in slow.data
    assert slow.closed_after is not None
    assert abs(slow.closed_after - 2.03) <= 1.0
    assert fast.data.startswith(b"HTTP/1.1 200 "), fast.data[:80]
    async with aiohttp.ClientSession() as session:
        samples = await scrape(session, proxy.admin_url)
    assert samples['outrider_slow_clients_closed_total{phase="body"}'] == 1
