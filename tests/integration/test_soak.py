"""Soak: a real outrider under mixed load (canary, shadow copies, feedback with and without its token,
upstream faults switched on and off, malformed requests) keeps memory, file descriptors and tasks flat, and
the outcome invariant in every scrape.

The default run soaks for 20 s; `make reliability` runs 10 minutes (OUTRIDER_SOAK_SECONDS overrides both).
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.integration.conftest import OutriderFactory
from tests.integration.test_shadow import with_shadow
from tests.support.http import outcome_invariant, scrape
from tests.support.procs import Proc, echo_upstream

MiB = 1024 * 1024
FAULTS = ("/reset", "/sleep/80", "/status/500")
FEEDBACK_TOKEN = "x-outrider-feedback-token"
EXPECTED = {"200", "400", "403", "404", "409", "413", "500", "502", "ClientOSError"}
REWARD_GOAL = """\
  analysis:
    goals:
      - {metric: reward_mean, direction: increase}
"""


@dataclass
class Soak:
    """What the load saw and the samples of the sidecar's health."""

    statuses: Counter[str] = field(default_factory=Counter)
    answered: list[tuple[str, str]] = field(default_factory=list)
    """(request id, feedback token) of answered requests."""
    samples: list[tuple[float, float, float, float]] = field(default_factory=list)
    """(seconds since start, RSS MiB, open fds, asyncio tasks)."""
    fault: str = ""


@pytest.fixture
def shadow_upstream(tmp_path: Path) -> Iterator[Proc]:
    proc = echo_upstream("shadow", tmp_path / "shadow.log")
    yield proc
    proc.stop()


async def client(url: str, soak: Soak, until: float, seed: int) -> None:
    rng = random.Random(seed)
    async with aiohttp.ClientSession() as session:
        for i in range(200_000):
            if time.monotonic() >= until:
                return
            roll = rng.random()
            headers = {"x-user-id": f"u{seed}-{i % 300}", "content-type": "application/json"}
            body: bytes | io.BytesIO
            if roll < 0.05 and soak.answered:  # valid once, then duplicates; 1 in 5 with a wrong token
                target = f"{url}/outrider/v1/feedback"
                rid, token = rng.choice(soak.answered)
                token = token if rng.random() < 0.8 else token[::-1]
                body = orjson.dumps({"request_id": rid, "reward": 1.0, "token": token})
            elif roll < 0.08:
                target, body = f"{url}/v2/models/m/infer", io.BytesIO(b"x" * (2 * MiB))  # over the cap
            elif roll < 0.12:
                target, body = f"{url}/outrider/v1/feedback", b"{not json"
            else:
                target, body = f"{url}/v2/models/m{soak.fault}/infer", b'{"x": 1}'
            try:
                async with session.post(target, data=body, headers=headers) as r:
                    await r.read()
                    soak.statuses[str(r.status)] += 1
                    if r.status == 200 and len(soak.answered) < 10_000 and FEEDBACK_TOKEN in r.headers:
                        soak.answered.append((r.headers["x-request-id"], r.headers[FEEDBACK_TOKEN]))
            except aiohttp.ClientError as err:  # a 413 may close the connection mid-upload
                soak.statuses[type(err).__name__] += 1


async def monitor(proxy: Proc, soak: Soak, until: float, started: float) -> None:
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < until:
            s = await scrape(session, proxy.admin_url)
            produced, stored, pending, dropped = outcome_invariant(s)
            assert produced == stored + pending + dropped
            soak.samples.append(
                (
                    time.monotonic() - started,
                    s["process_resident_memory_bytes"] / MiB,
                    s["process_open_fds"],
                    s["outrider_asyncio_tasks"],
                )
            )
            soak.fault = FAULTS[len(soak.samples) // 5 % len(FAULTS)] if len(soak.samples) % 10 >= 5 else ""
            await asyncio.sleep(1.0)


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return 60 * sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


async def run_soak(
    seconds: float, upstreams: tuple[Proc, Proc], shadow: Proc, outrider: OutriderFactory, tmp_path: Path
) -> Soak:
    stable, candidate = upstreams
    config = with_shadow(stable.url, candidate.url, shadow.url) + REWARD_GOAL  # responses carry tokens
    proxy = outrider(config, data_dir=tmp_path / "data")
    soak, started = Soak(), time.monotonic()
    until = started + seconds
    await asyncio.gather(
        monitor(proxy, soak, until, started), *(client(proxy.url, soak, until, seed) for seed in range(8))
    )
    warm = [s for s in soak.samples if s[0] >= seconds / 4]
    rss = [s[1] for s in warm]
    fds = [s[2] for s in warm]
    tasks = [s[3] for s in warm]
    slope = slope_per_minute([(t, m) for t, m, _, _ in warm])
    print(
        f"soak {seconds:.0f}s: {sum(soak.statuses.values())} requests {dict(soak.statuses)}; after warm-up "
        f"RSS {min(rss):.1f}..{max(rss):.1f} MiB (slope {slope:+.2f} MiB/min), "
        f"fds {min(fds):.0f}..{max(fds):.0f}, "
        f"tasks {min(tasks):.0f}..{max(tasks):.0f}"
    )
    assert not set(soak.statuses) - EXPECTED, soak.statuses
    assert max(rss) - min(rss) < 20
    assert max(fds) - min(fds) <= 40  # 8 clients + upstream pools: bounded, not growing
    assert max(tasks) < 200
    if seconds >= 300:  # a 20 s run is too short for a slope to mean anything
        assert slope < 0.5  # MiB/min after warm-up: ≈ 0 (5 MiB over 10 minutes at most)
    return soak


async def test_soak_short(
    upstreams: tuple[Proc, Proc], shadow_upstream: Proc, outrider: OutriderFactory, tmp_path: Path
) -> None:
    seconds = float(os.environ.get("OUTRIDER_SOAK_SECONDS", "20"))
    await run_soak(seconds, upstreams, shadow_upstream, outrider, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_soak_ten_minutes(
    upstreams: tuple[Proc, Proc], shadow_upstream: Proc, outrider: OutriderFactory, tmp_path: Path
) -> None:
    seconds = float(os.environ.get("OUTRIDER_SOAK_SECONDS", "600"))
    await run_soak(seconds, upstreams, shadow_upstream, outrider, tmp_path)
