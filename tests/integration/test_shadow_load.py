"""A hung shadow under load (docs/reliability.md, shadow isolation): 200 requests/s to each of two sidecars
for 20 s — one without shadow, one mirroring every request to a shadow that never answers — interleaved
request by request so both see the same machine. The shadowed one: no primary errors, p99 ≤ 1.3× the
other's, the queue never above its bound, memory growth ≤ 10 MiB, shadow counters exact."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.integration.test_shadow import with_shadow
from tests.support.http import scrape
from tests.support.procs import Proc, start

RATE = 200  # per sidecar
SECONDS = 20.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.99 * (len(ordered) - 1))]


async def interleaved_load(plain: Proc, shadowed: Proc, seconds: float) -> dict[str, list[float]]:
    """Open-loop load alternating between the two sidecars; latency (s) per sidecar; raises on any error."""
    latencies: dict[str, list[float]] = {"plain": [], "shadowed": []}
    targets = [("plain", plain), ("shadowed", shadowed)]
    gate = asyncio.Semaphore(128)
    errors: list[str] = []

    async def one(session: aiohttp.ClientSession, name: str, proxy: Proc, i: int) -> None:
        async with gate:
            started = time.perf_counter()
            headers = {"x-user-id": f"u{i % 5000}", "content-type": "application/json"}
            async with session.post(f"{proxy.url}/v2/models/m/infer", data=b'{"x": 1}', headers=headers) as r:
                await r.read()
                if r.status != 200:
                    errors.append(f"{name}: {r.status}")
            latencies[name].append(time.perf_counter() - started)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        pending: set[asyncio.Task[None]] = set()
        start_at = time.perf_counter()
        total = int(seconds * RATE * 2)
        for i in range(total):
            delay = start_at + i / (RATE * 2) - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            name, proxy = targets[i % 2]
            task = asyncio.get_running_loop().create_task(one(session, name, proxy, i))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
    assert not errors, errors[:5]
    return latencies


@pytest.mark.slow  # 45 s of load and a latency ratio: `make reliability`, not the default run
async def test_a_hung_shadow_under_load_costs_the_primary_nothing(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    hung = start(
        [sys.executable, "-m", "tests.support.upstream", "--name", "shadow", "--fault", "hang"],
        tmp_path / "shadow.log",
    )
    try:
        plain = outrider(canary_yaml(stable.url, candidate.url, steps=(10,)), data_dir=tmp_path / "plain")
        shadowed = outrider(with_shadow(stable.url, candidate.url, hung.url), data_dir=tmp_path / "shadowed")
        await interleaved_load(plain, shadowed, 2.0)  # warm-up: pools, caches, the queue filling up
        rss_before = rss_kib(shadowed.popen.pid)
        cpu_before = cpu_s(plain.popen.pid), cpu_s(shadowed.popen.pid)
        latencies = await interleaved_load(plain, shadowed, SECONDS)
        cpu_after = cpu_s(plain.popen.pid), cpu_s(shadowed.popen.pid)
        rss_after = rss_kib(shadowed.popen.pid)
        per_request = [(a - b) / (SECONDS * RATE) * 1e6 for a, b in zip(cpu_after, cpu_before, strict=True)]
        print(f"CPU µs/request: plain {per_request[0]:.0f}, shadowed {per_request[1]:.0f}")
        # the counters checked below are counted on admission, in the request's path: nothing to wait for
        async with aiohttp.ClientSession() as session:
            samples = await scrape(session, shadowed.admin_url)
    finally:
        hung.stop()
    assert len(latencies["shadowed"]) == int(SECONDS * RATE)
    ratio = p99(latencies["shadowed"]) / p99(latencies["plain"])
    growth = (rss_after - rss_before) / 1024
    plain_ms, shadowed_ms = 1000 * p99(latencies["plain"]), 1000 * p99(latencies["shadowed"])
    high = samples["outrider_shadow_queue_depth_max"]
    print(
        f"p99 ms: plain {plain_ms:.1f}, shadowed {shadowed_ms:.1f}, ratio {ratio:.2f}; "
        f"RSS growth {growth:.1f} MiB; queue max {high:.0f}"
    )
    assert ratio <= 1.3, (ratio, p99(latencies["shadowed"]), p99(latencies["plain"]))
    assert samples["outrider_shadow_queue_depth_max"] <= 100
    dropped = sum(v for k, v in samples.items() if k.startswith("outrider_shadow_dropped_total"))
    assert samples["outrider_shadow_eligible_total"] == (
        samples["outrider_shadow_enqueued_total"] + dropped + samples["outrider_shadow_sampled_out_total"]
    )
    # The bound did its job: copies were dropped (queue full, then the open circuit), never awaited.
    assert samples['outrider_shadow_dropped_total{reason="circuit_open"}'] > 0
    assert (rss_after - rss_before) / 1024 <= 10.0, (rss_before, rss_after)
