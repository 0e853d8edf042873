"""`outrider run --workers 2 --store redis://…`: the supervisor holds the lease and judges, both workers
follow the state from Redis.

A candidate failing 5x as often is rolled back exactly once, and from a second after the decision neither
worker sends anything more to it (each worker's own per-variant counters, scraped on its private admin port,
stop growing for the candidate while they grow for stable).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from loadtests.redis_server import RedisServer, running_redis
from tests.integration.conftest import OutriderFactory
from tests.integration.test_decisions import digits_canary
from tests.support.fleet import Started, eventually, started_workers
from tests.support.http import outcome_invariant, scrape
from tests.support.procs import Proc
from tests.support.redis_fleet import LEASE_S, Load, set_failing

NAME = "fleet"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis" / "redis.log") as server:
        yield server


def served(samples: dict[str, float], variant: str) -> float:
    """Requests of the experiment this process answered from `variant`."""
    prefix = f'outrider_requests_total{{destination_version="{variant}",experiment="{NAME}"'
    return sum(v for k, v in samples.items() if k.startswith(prefix))


async def per_worker(session: aiohttp.ClientSession, workers: list[Started]) -> list[dict[str, float]]:
    return [await scrape(session, w.admin_url) for w in workers]


async def test_two_workers_on_a_redis_store_roll_a_failing_candidate_back_once(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, redis_server: RedisServer
) -> None:
    stable, candidate = upstreams
    text = digits_canary(NAME, stable.url, candidate.url, (50,))
    args = ("--workers", "2", "--store", redis_server.url, "--store-lease", f"{LEASE_S}s")
    proxy = outrider(text, args=args)
    assert proxy.ready["workers"] == 2
    workers = list(started_workers(proxy).values())
    assert len(workers) == 2
    async with aiohttp.ClientSession() as session:
        assert (await scrape(session, proxy.admin_url))["outrider_leader"] == 1
        await set_failing(session, stable, 20)
        await set_failing(session, candidate, 100)  # 5x as often
        try:
            async with Load([proxy], users=16) as load:

                async def rolled_back() -> dict[str, Any] | None:
                    async with session.get(f"{proxy.admin_url}/experiments/{NAME}") as r:
                        state: dict[str, Any] = (await r.json())["state"]
                    return state if state["phase"] == "rolled_back" else None

                state = await eventually(rolled_back, 15.0)
                decided = state["history"][-1]

                async def a_second_after() -> bool:
                    return time.time() > float(decided["at"]) + 1.0

                await eventually(a_second_after, 3.0)
                then = await per_worker(session, workers)

                async def both_served_stable() -> list[dict[str, float]] | None:
                    now = await per_worker(session, workers)
                    grown = [
                        served(n, "stable") - served(t, "stable") for n, t in zip(now, then, strict=True)
                    ]
                    return now if min(grown) >= 50 else None

                later = await eventually(both_served_stable, 10.0)
        finally:
            await set_failing(session, stable, 0)
            await set_failing(session, candidate, 0)
        host = await scrape(session, proxy.admin_url)

    assert [h["decision"] for h in state["history"] if "decision" in h] == ["ROLLBACK"]
    assert "error_rate" in decided["reason"]
    assert host[f'outrider_decisions_total{{decision="ROLLBACK",experiment="{NAME}"}}'] == 1
    assert all(served(t, "candidate") > 0 for t in then)  # both workers had sent to the candidate ...
    for t, n in zip(then, later, strict=True):
        assert served(n, "candidate") == served(t, "candidate")  # ... and neither does a second after
    assert {a.variant for a in load.answers if a.at > decided["at"] + 1.0} == {"stable"}
    produced, stored, pending, dropped = outcome_invariant(host)
    assert produced == stored + pending + dropped
