"""Fuzzed and malformed requests against a real outrider (docs/reliability.md "input"): no 5xx from outrider
itself, no crash, no connection left hanging, RSS growth < 20 MiB, `outrider_internal_errors_total` stays 0,
and valid requests afterwards all succeed.

Every request routes to an in-test upstream that answers 200 to anything, so any 5xx is outrider's. The
inputs (`tests.integration.fuzz_inputs`) are deterministic: hypothesis-drawn raw requests, byte mutations
of valid ones, and well-formed but odd requests sent through aiohttp. The default run sends 1,000; `-m slow`
sends 10,000. Counts per outcome print with `-s`.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.integration.fuzz_inputs import Weird, drawn, mutated, raw_requests, weird_requests
from tests.support.http import bounded_map, scrape
from tests.support.procs import Proc

HEADER_TIMEOUT = 0.5  # short, so truncated requests are cut off quickly (it is the body grace too)
GIVE_UP_S = HEADER_TIMEOUT + 2.5  # a connection neither answered nor closed by then is a hang

STATUS = re.compile(rb"HTTP/\d\.\d (\d{3}) ")


def statuses(data: bytes) -> list[int]:
    """The status of every response in `data`, walking Content-Length bodies (responses may be pipelined)."""
    found = []
    while (match := STATUS.match(data)) is not None:
        found.append(int(match.group(1)))
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", data[:end])
        data = data[end + 4 + (int(length.group(1)) if length else 0) :]
    return found


def complete(data: bytes) -> bool:
    """Whether `data` holds at least one whole response."""
    end = data.find(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", data[: max(end, 0)])
    return end >= 0 and len(data) >= end + 4 + (int(length.group(1)) if length else 0)


async def send_raw(address: str, payload: bytes) -> tuple[str, bytes]:
    """Send `payload` on a new connection: (outcome, bytes received). The outcome is the first status, or
    `http/0.9` (an answer without a status line, as aiohttp answers HTTP/0.9), `closed` (closed without an
    answer) or `hung` (neither answered nor closed within GIVE_UP_S)."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(payload)
    data, hung = b"", False
    try:
        async with asyncio.timeout(GIVE_UP_S):
            while True:
                try:  # a keep-alive answer is not followed by a close: a short quiet spell ends it
                    block = await asyncio.wait_for(reader.read(65536), 0.05 if complete(data) else None)
                except TimeoutError:
                    break
                if not block:
                    break
                data += block
    except TimeoutError:
        hung = not data
    except ConnectionResetError:
        pass
    writer.close()
    found = statuses(data)
    if found:
        return str(found[0]), data
    return ("hung" if hung else "http/0.9" if data else "closed"), data


@pytest.fixture
async def echo_upstream() -> AsyncIterator[str]:
    """An upstream that reads the request and answers 200 to anything."""

    async def handle(request: web.BaseRequest) -> web.Response:
        await request.read()
        return web.json_response({"ok": True})

    runner = web.ServerRunner(web.Server(handle), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site.port}"
    await runner.cleanup()


def rss_mib(proc: Proc) -> float:
    """VmRSS of the process in MiB."""
    with open(f"/proc/{proc.popen.pid}/status") as fh:
        kib = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    return kib / 1024


@dataclass
class Tally:
    """Outcomes per kind of input, and the bodies of any 5xx."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    server_errors: list[bytes] = field(default_factory=list)

    def add(self, kind: str, outcome: str, data: bytes = b"") -> None:
        self.counts.setdefault(kind, Counter())[outcome] += 1
        if outcome.startswith("5") and outcome != "505":  # 505: a client's HTTP version (docs/reliability.md)
            self.server_errors.append(data[:300])


async def send_weird(session: aiohttp.ClientSession, base: str, req: Weird) -> str:
    url = URL(base).with_path(req.path)
    async with session.request(req.method, url, headers=req.headers, data=req.body or None) as resp:
        await resp.read()
        return str(resp.status)


async def fuzz(proxy: Proc, n: int, seed: int, drawn_share: float) -> None:
    """Send `n` inputs (`drawn_share` from hypothesis, 5% odd-but-valid via aiohttp, the rest mutations,
    the raw ones shuffled together) and check the pass criteria; the first 10% warm up before RSS is read."""
    rng = random.Random(seed)
    started = time.monotonic()
    raw = [("hypothesis", r) for r in drawn(raw_requests(), int(n * drawn_share))]
    weird = drawn(weird_requests, n // 20)
    raw += [("mutation", m) for m in mutated(rng, n - len(raw) - len(weird))]
    rng.shuffle(raw)
    generated = time.monotonic()
    tally = Tally()

    async def one(item: tuple[str, bytes]) -> None:
        outcome, data = await send_raw(proxy.address, item[1])
        tally.add(item[0], outcome, data)

    async with aiohttp.ClientSession() as session:
        await valid_requests(session, proxy, 100)  # warm-up: pools, caches, lazy imports
        await bounded_map(raw[: n // 10], one, concurrency=64)
        rss_before = rss_mib(proxy)
        await bounded_map(raw[n // 10 :], one, concurrency=64)
        for req in weird:
            tally.add("aiohttp", await send_weird(session, proxy.url, req))
        rss_after = rss_mib(proxy)
        await valid_requests(session, proxy, 200)
        samples = await scrape(session, proxy.admin_url)
    print(
        f"\n{len(raw) + len(weird)} fuzzed requests: generated in {generated - started:.1f} s, "
        f"sent in {time.monotonic() - generated:.1f} s; RSS {rss_before:.1f} → {rss_after:.1f} MiB"
    )
    for kind, counts in tally.counts.items():
        print(f"  {kind}: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    assert proxy.popen.poll() is None, "outrider died"
    assert not tally.server_errors, tally.server_errors[:5]
    assert sum(c["hung"] for c in tally.counts.values()) == 0
    assert samples["outrider_internal_errors_total"] == 0
    assert rss_after - rss_before < 20, f"RSS grew {rss_after - rss_before:.1f} MiB"


async def valid_requests(session: aiohttp.ClientSession, proxy: Proc, n: int) -> None:
    """`n` valid inference POSTs, every one answered 200 by the upstream."""

    async def one(i: int) -> int:
        url = f"{proxy.url}/v2/models/m/infer"
        async with session.post(url, data=b'{"x":1}', headers={"x-user-id": f"u{i}"}) as resp:
            await resp.read()
            return resp.status

    assert await bounded_map(range(n), one, 16) == [200] * n


def outrider_for(outrider: OutriderFactory, upstream: str, *extra: str) -> Proc:
    args = ("--default-upstream", upstream, "--header-timeout", str(HEADER_TIMEOUT), *extra)
    return outrider(canary_yaml(upstream, upstream), args=args)


async def test_1000_fuzzed_requests(outrider: OutriderFactory, echo_upstream: str) -> None:
    await fuzz(outrider_for(outrider, echo_upstream), 1000, seed=1, drawn_share=0.2)


@pytest.mark.slow
async def test_10000_fuzzed_requests(outrider: OutriderFactory, echo_upstream: str) -> None:
    await fuzz(outrider_for(outrider, echo_upstream), 10_000, seed=2, drawn_share=0.45)
