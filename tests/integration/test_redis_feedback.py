"""Rewards and drops of a Redis fleet: three `outrider run` replicas on one real redis-server.

Feedback posted to another replica than the one that answered is accepted, once for the fleet (a duplicate
is a 409 wherever it is posted), and only with the token of its own request (403); the leader's controller
judges the rewards (its checkpoint carries the feedback position), and the export carries them, so
`outrider analyze` reaches the live decision at the same record. A replica whose sink drops records (Redis
refuses its writes, a small queue) makes the leader hold promotion: the gate sees the fleet's drops.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from redis import Redis

from analysis.checkpoint import decode
from experiments.builder import Analysis, Canary, ExperimentDoc, Goal, Guardrail, Variant
from experiments.config import load_experiment
from experiments.redis_drops import fleet_key
from loadtests.redis_server import RedisServer, running_redis
from tests.integration.test_redis_fleet import export_store, state_of
from tests.support.cli import analyzed
from tests.support.fleet import eventually
from tests.support.http import outcome_invariant, scrape
from tests.support.procs import Proc, run_cmd, start
from tests.support.redis_fleet import LEASE_S, SECRET, Load, leader_of, start_replicas
from tests.support.wait import wait_until

NAME = "fleet"
TOKEN = "x-outrider-feedback-token"
FEEDBACK = "/outrider/v1/feedback"
REWARD_P = {"stable": 0.3, "candidate": 0.8}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis" / "redis.log") as server:
        yield server


def experiment(upstreams: tuple[Proc, Proc], tmp_path: Path, *, rewards: bool) -> Path:
    """One canary step of 50%, judged on latency (and on rewards)."""
    goals = (Goal("reward_mean", "increase", range=(0.0, 1.0)),) if rewards else ()
    analysis = Analysis(
        (Guardrail("latency_gmean", 1.5),), goals, interval="200ms", alpha=0.05, feedback_window="2s"
    )
    variants = (Variant.stable(upstreams[0].url), Variant.candidate(upstreams[1].url))
    doc = ExperimentDoc(NAME, variants, Canary((50,)), prefix="/v2/models/digits", analysis=analysis)
    path = tmp_path / "fleet.yaml"
    path.write_text(doc.yaml())
    return path


async def post(session: aiohttp.ClientSession, proc: Proc, body: dict[str, Any]) -> tuple[int, str]:
    async with session.post(f"{proc.url}{FEEDBACK}", data=orjson.dumps(body)) as r:
        return r.status, str((await r.json()).get("code", ""))


async def ask(session: aiohttp.ClientSession, proc: Proc, user: str) -> tuple[str, str, str]:
    """(request id, variant, feedback token) of one inference request."""
    headers = {"x-user-id": user, "content-type": "application/json"}
    async with session.post(f"{proc.url}/v2/models/digits/infer", data=b"{}", headers=headers) as r:
        await r.read()
        assert r.status == 200
        return r.headers["x-request-id"], r.headers["x-outrider-variant"], r.headers[TOKEN]


async def rate(fleet: list[Proc], rewarded: dict[str, float], done: asyncio.Event, seed: int) -> None:
    """One user's loop: ask replica k, post the reward to replica k + 1 (the request is not in its queue)."""
    rng = random.Random(seed)
    async with aiohttp.ClientSession() as session:
        turn = seed
        while not done.is_set():
            k, turn = turn % len(fleet), turn + 1
            rid, variant, token = await ask(session, fleet[k], f"user-{rng.randrange(3000)}")
            reward = float(rng.random() < REWARD_P[variant])
            status, code = await post(
                session, fleet[(k + 1) % len(fleet)], {"request_id": rid, "reward": reward, "token": token}
            )
            assert status == 200, code
            rewarded[rid] = reward


async def test_feedback_to_any_replica_is_judged_once_by_the_leader_and_exported(
    upstreams: tuple[Proc, Proc], redis_server: RedisServer, tmp_path: Path
) -> None:
    config = experiment(upstreams, tmp_path, rewards=True)
    fleet = start_replicas(config, tmp_path, redis_server.url, 3)
    rewarded: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession() as session:
            leader = await leader_of(session, fleet)
            rid, _, token = await ask(session, fleet[0], "alice")
            other, _, other_token = await ask(session, fleet[0], "bob")
            assert await post(session, fleet[1], {"request_id": rid, "reward": 1, "token": token}) == (
                200,
                "",
            )
            for proc in fleet:  # once for the fleet, wherever it is posted again
                duplicate = {"request_id": rid, "reward": 0, "token": token}
                assert await post(session, proc, duplicate) == (409, "duplicate_feedback")
            stolen = {"request_id": other, "reward": 1, "token": token}  # a token for another request
            assert await post(session, fleet[2], stolen) == (403, "bad_feedback_token")
            assert await post(
                session, fleet[2], {"request_id": other, "reward": 0, "token": other_token}
            ) == (
                200,
                "",
            )
            rewarded.update({rid: 1.0, other: 0.0})
            done = asyncio.Event()
            users = [asyncio.create_task(rate(fleet, rewarded, done, seed)) for seed in range(6)]
            try:

                async def promoted() -> dict[str, Any] | None:
                    state = await state_of(session, fleet[leader])
                    return state if state["phase"] != "progressing" else None

                state = await eventually(promoted, 90.0)
            finally:
                done.set()
                await asyncio.gather(*users)
            async with session.get(f"{fleet[leader].admin_url}/experiments/{NAME}") as r:
                analysis = (await r.json())["analysis"]
            counts = await scrape(session, fleet[leader].admin_url)
        assert state["phase"] == "promoted", state["history"]
        reward = next(m for m in analysis["snapshot"]["metrics"] if m["name"] == "reward_mean")
        assert reward["passed"], reward  # the leader judged the rewards
        assert reward["estimate"] > 0.2, reward
        assert counts['outrider_feedback_total{result="accepted"}'] < len(rewarded)  # others took the rest
        blob = Redis.from_url(redis_server.url).get(f"outrider:checkpoint:{NAME}")
        restored = decode(blob, SECRET, load_experiment(config)) if isinstance(blob, bytes) else None
        assert restored is not None
        assert restored[0].feedback_seq > 0  # the checkpoint carries the feedback read position
    finally:
        for proc in fleet:
            proc.stop()
    records = await asyncio.to_thread(export_store, redis_server.url, tmp_path / "export.jsonl")
    exported = {r["request_id"]: r["reward"] for r in records if r["reward"] is not None}
    assert exported == rewarded  # every accepted reward once, on its own record
    decided = [h for h in state["history"] if "decision" in h]
    offline = await analyzed(tmp_path / "export.jsonl", config)
    assert (offline["decision"], offline["decided_at_records"]) == ("PROMOTE", decided[-1]["at_records"])


def refusing_user(url: str) -> str:
    """A Redis user that may do everything but append to a stream: its outcome batches are refused."""
    client = Redis.from_url(url)
    client.acl_setuser(
        "dropper", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"], commands=["+@all", "-xadd"]
    )
    client.close()
    return url.replace("redis://", "redis://dropper:pw@")


async def test_a_replica_dropping_records_makes_the_leader_hold_promotion(
    upstreams: tuple[Proc, Proc], redis_server: RedisServer, tmp_path: Path
) -> None:
    config = experiment(upstreams, tmp_path, rewards=False)
    fleet = start_replicas(config, tmp_path, redis_server.url, 2)
    args = ("--store", refusing_user(redis_server.url), "--store-lease", f"{LEASE_S}s", "--store-queue", "20")
    try:
        async with aiohttp.ClientSession() as session:
            leader = await leader_of(session, fleet)
            secret = ("--feedback-secret-file", str(tmp_path / "feedback.secret"))
            fleet.append(
                start(run_cmd([config], tmp_path / "data-dropper", *args, *secret), tmp_path / "dropper.log")
            )
            # First the dropper alone: its records never reach the stream, so nothing can be promoted before
            # its drops are in the fleet's hash; then everyone, and the leader must hold.
            async with Load([fleet[2]], users=6):
                published = Redis.from_url(redis_server.url, decode_responses=True)
                try:
                    both_arms = lambda: len(published.hgetall(fleet_key(NAME))) == 2  # noqa: E731
                    await wait_until(both_arms, 30.0, every=0.1)  # both arms' drops, counted fleet-wide
                finally:
                    published.close()
            async with Load(fleet, users=6):

                async def held() -> dict[str, Any] | None:
                    async with session.get(f"{fleet[leader].admin_url}/experiments/{NAME}") as r:
                        analysis = (await r.json())["analysis"]
                    return analysis if analysis is not None and analysis["kind"] == "HOLD" else None

                look = await eventually(held, 60.0)
                started = time.monotonic()
                while time.monotonic() - started < 2.0:  # more looks, still no promotion
                    assert (await state_of(session, fleet[leader]))["phase"] == "progressing"
                    await asyncio.sleep(0.1)
            dropper = await scrape(session, fleet[2].admin_url)
            own = await scrape(session, fleet[leader].admin_url)
            assert any("outcomes dropped" in reason for reason in look["reasons"]), look["reasons"]
            assert all(m["passed"] for m in look["snapshot"]["metrics"])  # else it would have promoted
            lost = look["snapshot"]["drops"]
            assert lost["stable"] > 0
            assert lost["candidate"] > 0
            assert own.get('outrider_outcomes_dropped_total{reason="store_unavailable"}', 0.0) == 0.0
            assert dropper['outrider_outcomes_dropped_total{reason="store_unavailable"}'] > 0
            dropped = outcome_invariant(dropper)[3]  # by any reason

            async def persisted() -> dict[str, int] | None:  # the fleet's sum, as the leader keeps it
                extra = (await state_of(session, fleet[leader]))["extra"].get("dropped", {})
                return extra if sum(extra.values()) >= dropped else None

            assert sum((await eventually(persisted, 5.0)).values()) == dropped
    finally:
        fleet[-1].popen.kill()  # its queue cannot be flushed: no need to wait for the flush timeout
        for proc in fleet:
            proc.stop()
