"""Three `outrider run` replicas sharing one real redis-server (`--store redis://…`, a 1 s lease).

A candidate failing 5x as often is rolled back exactly once for the fleet, every replica stops sending to it
within a second, and the export holds one record per response; the leader killed with SIGKILL, or paused
past its lease and resumed, is replaced within the lease plus one renewal, the new leader continues from the
checkpoint (the offline analysis of the export decides at the very record the live controller did), and the
paused one's writes are refused when it wakes up.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from redis import Redis

from analysis.checkpoint import decode
from experiments.config import load_experiment
from loadtests.redis_server import RedisServer, running_redis
from tests.integration.test_decisions import digits_canary
from tests.support.cli import analyzed
from tests.support.fleet import eventually
from tests.support.http import outcome_invariant, scrape
from tests.support.procs import Proc, outrider_cmd
from tests.support.redis_fleet import LEASE_S, SECRET, Load, events, leader_of, set_failing, start_replicas

NAME = "fleet"
TAKEOVER_S = LEASE_S + LEASE_S / 3


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis" / "redis.log") as server:
        yield server


@pytest.fixture
def config(upstreams: tuple[Proc, Proc], tmp_path: Path) -> Path:
    stable, candidate = upstreams
    path = tmp_path / "fleet.yaml"
    path.write_text(digits_canary(NAME, stable.url, candidate.url, (50,)))
    return path


@pytest.fixture
def fleet(config: Path, redis_server: RedisServer, tmp_path: Path) -> Iterator[list[Proc]]:
    procs = start_replicas(config, tmp_path, redis_server.url, 3)
    yield procs
    for proc in procs:
        proc.stop()


async def state_of(session: aiohttp.ClientSession, proc: Proc) -> dict[str, Any]:
    async with session.get(f"{proc.admin_url}/experiments/{NAME}") as r:
        assert r.status == 200
        state: dict[str, Any] = (await r.json())["state"]
        return state


async def rolled_back(session: aiohttp.ClientSession, procs: list[Proc], load: Load) -> dict[str, Any]:
    """Wait for the rollback, then for 150 answers of each live replica from a second after it."""

    async def decided() -> dict[str, Any] | None:
        for k, proc in enumerate(procs):
            if k not in load.dead and (state := await state_of(session, proc))["phase"] == "rolled_back":
                return state
        return None

    state = await eventually(decided, 30.0)
    at = state["history"][-1]["at"]

    async def enough() -> bool:
        live = [k for k in range(len(procs)) if k not in load.dead]
        return all(sum(1 for a in load.served_by(k) if a.at > at + 1.0) >= 150 for k in live)

    await eventually(enough, 15.0)
    return state


def export_store(url: str, out: Path) -> list[dict[str, Any]]:
    """`outrider export --store URL --experiment NAME` into `out`, parsed."""
    with out.open("wb") as fh:
        import subprocess

        subprocess.run(outrider_cmd("export", "--store", url, "--experiment", NAME), stdout=fh, check=True)
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


async def check_offline(
    url: str, config: Path, tmp_path: Path, state: dict[str, Any]
) -> list[dict[str, Any]]:
    """The export has no request twice, and `outrider analyze` on it decides as the live controller did."""
    records = await asyncio.to_thread(export_store, url, tmp_path / "export.jsonl")
    ids = [r["request_id"] for r in records]
    assert len(ids) == len(set(ids))
    decided = [h for h in state["history"] if "decision" in h]
    assert [h["decision"] for h in decided] == ["ROLLBACK"], state["history"]
    offline = await analyzed(tmp_path / "export.jsonl", config)
    assert offline["decision"] == "ROLLBACK"
    assert offline["decided_at_records"] == decided[0]["at_records"]
    return records


async def decisions(session: aiohttp.ClientSession, procs: list[Proc], dead: set[int]) -> float:
    """ROLLBACK decisions counted by the live replicas."""
    key = f'outrider_decisions_total{{decision="ROLLBACK",experiment="{NAME}"}}'
    total = 0.0
    for k, proc in enumerate(procs):
        if k not in dead:
            total += (await scrape(session, proc.admin_url)).get(key, 0.0)
    return total


async def test_three_replicas_roll_a_failing_candidate_back_once(
    fleet: list[Proc], upstreams: tuple[Proc, Proc], redis_server: RedisServer, config: Path, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as session:
        await set_failing(session, upstreams[0], 20)
        await set_failing(session, upstreams[1], 100)  # 5x as often
        try:
            async with Load(fleet) as load:
                state = await rolled_back(session, fleet, load)
        finally:
            await set_failing(session, upstreams[0], 0)
            await set_failing(session, upstreams[1], 0)
        at = state["history"][-1]["at"]
        for k in range(3):
            late = {a.variant for a in load.served_by(k) if a.at > at + 1.0}
            assert late == {"stable"}, k  # every replica put the rollback in force within a second
        assert await decisions(session, fleet, set()) == 1
        for proc in fleet:
            produced, stored, pending, dropped = outcome_invariant(await scrape(session, proc.admin_url))
            assert produced == stored + pending + dropped
            async with session.get(f"{proc.admin_url}/outcomes") as r:
                assert (await r.json())["balanced"] is True
    for proc in fleet:
        proc.stop()
    records = await check_offline(redis_server.url, config, tmp_path, state)
    assert {r["request_id"] for r in records} == {a.request_id for a in load.answers}  # one per response


async def until_checkpointed(redis_server: RedisServer, config: Path, records: int) -> None:
    """Wait until the leader has saved a checkpoint of at least `records` records (read with the secret)."""
    client = Redis.from_url(redis_server.url)
    experiment = load_experiment(config)

    async def there() -> bool:
        blob: bytes | None = client.get(f"outrider:checkpoint:{NAME}")  # type: ignore[assignment]
        restored = decode(blob, SECRET, experiment) if blob is not None else None
        return restored is not None and restored[1].records >= records

    try:
        await eventually(there, 30.0)
    finally:
        client.close()


async def new_leader(session: aiohttp.ClientSession, fleet: list[Proc], old: int, since: float) -> int:
    """The replica that took over from `old`; it took at most the lease plus one renewal (and a margin)."""
    others = [p for k, p in enumerate(fleet) if k != old]

    async def took_over() -> int | None:
        for proc in others:
            if events(proc, "leading"):
                return fleet.index(proc)
        return None

    k = await eventually(took_over, 10.0)
    assert time.monotonic() - since < TAKEOVER_S + 1.0
    assert await leader_of(session, others) == others.index(fleet[k])
    return k


async def test_the_leader_killed_is_replaced_and_the_fleet_decides_once(
    fleet: list[Proc], upstreams: tuple[Proc, Proc], redis_server: RedisServer, config: Path, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as session:
        old = await leader_of(session, fleet)
        async with Load(fleet) as load:
            await until_checkpointed(redis_server, config, 1000)
            before = await scrape(session, fleet[old].admin_url)
            load.dead.add(old)
            fleet[old].popen.kill()
            killed = time.monotonic()
            await new_leader(session, fleet, old, killed)
            await set_failing(session, upstreams[1], 100)
            try:
                state = await rolled_back(session, fleet, load)
            finally:
                await set_failing(session, upstreams[1], 0)
        assert await decisions(session, fleet, {old}) == 1
    for proc in fleet:
        proc.stop()
    records = await check_offline(redis_server.url, config, tmp_path, state)
    exported = {r["request_id"] for r in records}
    assert {a.request_id for a in load.answers if a.replica != old} <= exported
    of_old = sum(1 for a in load.served_by(old) if a.request_id in exported)
    assert of_old >= before["outrider_outcomes_stored_total"]  # what it had stored is there


async def test_a_leader_paused_past_its_lease_is_fenced_and_steps_down(
    fleet: list[Proc], upstreams: tuple[Proc, Proc], redis_server: RedisServer, config: Path, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as session:
        old = await leader_of(session, fleet)
        async with Load(fleet) as load:
            await until_checkpointed(redis_server, config, 1000)
            load.dead.add(old)
            os.kill(fleet[old].popen.pid, signal.SIGSTOP)
            paused = time.monotonic()
            try:
                await new_leader(session, fleet, old, paused)
            finally:
                os.kill(fleet[old].popen.pid, signal.SIGCONT)

            async def stepped_down() -> dict[str, float] | None:
                metrics = await scrape(session, fleet[old].admin_url)
                return (
                    metrics
                    if events(fleet[old], "stepped down") and metrics["outrider_leader"] == 0
                    else None
                )

            metrics = await eventually(stepped_down, 5.0)
            assert metrics["outrider_fenced_writes_total"] >= 1  # its first write after waking was refused
            load.dead.discard(old)
            await set_failing(session, upstreams[1], 100)
            try:
                state = await rolled_back(session, fleet, load)
            finally:
                await set_failing(session, upstreams[1], 0)
        assert await decisions(session, fleet, set()) == 1
    for proc in fleet:
        proc.stop()
    records = await check_offline(redis_server.url, config, tmp_path, state)
    assert {r["request_id"] for r in records} == {a.request_id for a in load.answers}


async def test_replicas_route_and_buffer_while_redis_is_away_and_resend_when_it_is_back(
    fleet: list[Proc], redis_server: RedisServer
) -> None:
    async with aiohttp.ClientSession() as session:
        await leader_of(session, fleet)
        redis_server.kill()
        async with Load(fleet, users=4) as load:

            async def buffered() -> bool:
                return len(load.answers) >= 300

            await eventually(buffered, 20.0)
        assert {a.status for a in load.answers} == {200}  # routing goes on with the last state
        pending = [outcome_invariant(await scrape(session, p.admin_url)) for p in fleet]
        assert all(p == s + q + d and q > 0 for p, s, q, d in pending), pending
        redis_server.launch()

        async def resent() -> bool:
            for proc in fleet:
                produced, stored, pending_now, dropped = outcome_invariant(
                    await scrape(session, proc.admin_url)
                )
                if not (produced == stored and pending_now == dropped == 0):
                    return False
            return True

        await eventually(resent, 15.0)
        client = Redis.from_url(redis_server.url)
        try:
            assert int(client.hget("outrider:counts", NAME) or 0) == len(load.answers)
        finally:
            client.close()
        await leader_of(session, fleet)  # one replica leads again
