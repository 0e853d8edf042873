"""`storeRetention` end to end: `outrider run --store redis://… --store-retention 1s` under load keeps the
outcome stream short (its leader trims what its checkpoints consumed), while the store still counts every
record. tests/experiments/test_redis_retention.py shows that without the setting a checkpoint trims nothing
and that trimming leaves a new leader's statistics unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis import Redis

from experiments.builder import Analysis, Canary, ExperimentDoc, Goal, Guardrail, Variant
from loadtests.redis_server import RedisServer, running_redis
from tests.support.http import scrape
from tests.support.procs import Proc, run_cmd, start
from tests.support.redis_fleet import SECRET, Load
from tests.support.wait import wait_until

NAME = "kept"
STREAM = f"outrider:outcomes:{NAME}"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis" / "redis.log") as server:
        yield server


def experiment(upstreams: tuple[Proc, Proc], tmp_path: Path) -> Path:
    """A canary that stays undecided: it is promoted only on rewards, and none are posted (a decision would
    stop its controller, and with it the checkpoints that trim)."""
    goals = (Goal("reward_mean", "increase", range=(0.0, 1.0)),)
    analysis = Analysis((Guardrail("latency_gmean", 50.0),), goals, interval="200ms")  # no rollback either
    variants = (Variant.stable(upstreams[0].url), Variant.candidate(upstreams[1].url))
    doc = ExperimentDoc(NAME, variants, Canary((50,)), prefix="/v2/models/digits", analysis=analysis)
    path = tmp_path / f"{NAME}.yaml"
    path.write_text(doc.yaml())
    return path


def stream(raw: Redis) -> dict[str, Any]:
    info: dict[str, Any] = raw.xinfo_stream(STREAM) if raw.exists(STREAM) else {}
    return info


async def test_a_leader_with_a_retention_keeps_the_stream_short(
    upstreams: tuple[Proc, Proc], redis_server: RedisServer, tmp_path: Path
) -> None:
    raw = Redis.from_url(redis_server.url, decode_responses=True)
    raw.config_set("stream-node-max-entries", 5)  # XTRIM ~ trims whole nodes: small ones, a tight bound
    secret = tmp_path / "feedback.secret"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    args = ("--store", redis_server.url, "--store-retention", "1s", "--feedback-secret-file", str(secret))
    proc = start(run_cmd([experiment(upstreams, tmp_path)], tmp_path / "data", *args), tmp_path / "o.log")
    try:
        async with Load([proc], users=8):  # batches every 50 ms: ~20 entries a second

            def trimmed() -> bool:
                info = stream(raw)
                return bool(
                    info.get("entries-added", 0) >= 120 and info["length"] * 2 < info["entries-added"]
                )

            await wait_until(trimmed, timeout=60.0)
        info = stream(raw)
        print(f"\nentries added {info['entries-added']}, kept {info['length']}")
        assert int(raw.hget("outrider:counts", NAME) or 0) >= info["entries-added"]  # every record counted
        async with aiohttp.ClientSession() as session:
            sampled = await scrape(session, proc.admin_url)
        assert sampled["outrider_store_trimmed_total"] >= info["entries-added"] - info["length"] > 0
    finally:
        proc.stop()
    raw.close()
