"""The demo's load: many sticky users posting labelled digits until told to stop (bounded in time and count).

Usage: tally = Tally(); await drive(url, test_set, users=5000, concurrency=16, stop=event, tally=tally, ...)
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field

import aiohttp
import orjson

from modelserver.testset import TestSet, infer_body
from plumbing.http_client import http_session


@dataclass
class Tally:
    """What the load generator saw, per variant."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    correct: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    user_variants: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    failed: int = 0
    sent: int = 0

    @property
    def total(self) -> int:
        """Responses received."""
        return sum(len(v) for v in self.latencies.values())


@dataclass(frozen=True, slots=True)
class Load:
    """How much traffic to send."""

    users: int = 5000
    concurrency: int = 16
    max_requests: int = 200_000
    max_seconds: float = 120.0
    seed: int = 7


async def _one(
    session: aiohttp.ClientSession, url: str, test_set: TestSet, rng: random.Random, load: Load, tally: Tally
) -> None:
    user, row = f"user-{rng.randrange(load.users)}", rng.randrange(len(test_set.y))
    body = orjson.dumps(infer_body([test_set.x[row]]))
    started = time.perf_counter()
    tally.sent += 1
    try:
        async with session.post(
            url, data=body, headers={"x-user-id": user, "content-type": "application/json"}
        ) as r:
            payload = await r.read()
            variant = r.headers.get("x-outrider-variant", "?")
    except aiohttp.ClientError:
        tally.failed += 1
        return
    tally.latencies[variant].append((time.perf_counter() - started) * 1000)
    tally.user_variants[user].add(variant)
    if r.status != 200:
        tally.errors[variant] += 1
        return
    probs = orjson.loads(payload)["outputs"][0]["data"]
    tally.correct[variant] += int(max(range(10), key=probs.__getitem__) == test_set.y[row])


async def drive(url: str, test_set: TestSet, load: Load, stop: asyncio.Event, tally: Tally) -> float:
    """Send until `stop` is set, `max_requests` were sent or `max_seconds` passed; returns elapsed seconds."""
    rng = random.Random(load.seed)
    started = time.perf_counter()
    deadline = time.monotonic() + load.max_seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while not stop.is_set() and tally.sent < load.max_requests and time.monotonic() < deadline:
            await _one(session, url, test_set, rng, load, tally)

    async with http_session() as session:
        await asyncio.gather(*(worker(session) for _ in range(load.concurrency)))
    return time.perf_counter() - started
