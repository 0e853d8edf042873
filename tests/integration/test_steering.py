"""No client steers a decision: candidate-hashed users with heavy, slow requests cannot force a rollback; a
sample-ratio mismatch they cause holds promotion only, survives a restart, and does not keep a candidate that
doubles the errors from being rolled back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from experiments.assignment import bucket_of
from experiments.builder import Analysis, Guardrail
from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.integration.test_restart import analyze
from tests.support.procs import Proc, echo_upstream
from tests.support.wait import eventually

SALT = "steer-1"


def users_on(side: str, count: int, prefix: str) -> list[str]:
    """`count` user ids that a 50% canary sends to `side` (candidates own the low buckets)."""
    out: list[str] = []
    i = 0
    while len(out) < count:
        key = f"{prefix}{i}"
        if (bucket_of(SALT, key) < 5000) == (side == "candidate"):
            out.append(key)
        i += 1
    return out


@pytest.fixture
def own_upstreams(tmp_path: Path) -> Iterator[tuple[Proc, Proc]]:
    """Two echo upstreams of this test only (it makes them fail on purpose)."""
    procs = [echo_upstream(name, tmp_path / f"{name}.log") for name in ("stable", "candidate")]
    yield procs[0], procs[1]
    for proc in procs:
        proc.stop()


def experiment(stable: Proc, candidate: Proc, guardrails: tuple[Guardrail, ...], unit_cap: int = 1000) -> str:
    analysis = Analysis(guardrails, interval="100ms", unit_cap=unit_cap, max_requests=1000000)
    return canary_yaml(
        stable.url, candidate.url, steps=(50,), salt=SALT, max_body_bytes=4_194_304, analysis=analysis
    )


async def send(
    proxy: Proc, users: list[str], path: str = "/v2/x", body: bytes = b"{}", each: int = 1
) -> None:
    async with aiohttp.ClientSession() as session:

        async def one(user: str) -> None:
            for _ in range(each):
                async with session.post(f"{proxy.url}{path}", data=body, headers={"x-user-id": user}) as r:
                    await r.read()

        for start in range(0, len(users), 16):
            await asyncio.gather(*(one(u) for u in users[start : start + 16]))


async def admin(proxy: Proc) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{proxy.admin_url}/experiments/split") as r:
        doc: dict[str, Any] = await r.json()
        return doc


async def looked_at(proxy: Proc, records: int, timeout: float = 30.0) -> dict[str, Any]:
    """The experiment once the controller has looked at `records` outcomes (or finished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = await admin(proxy)
        if doc["phase"] != "progressing" or (doc["analysis"] or {}).get("records", 0) >= records:
            return doc
        await asyncio.sleep(0.1)
    raise AssertionError(f"the controller never looked at {records} records")


async def test_candidate_hashed_heavy_users_cannot_force_a_rollback(
    own_upstreams: tuple[Proc, Proc], outrider: OutriderFactory
) -> None:
    stable, candidate = own_upstreams
    rules = (Guardrail("error_rate", 1.2), Guardrail("latency_gmean", 1.05))
    proxy = outrider(experiment(stable, candidate, rules, unit_cap=20))
    attackers = users_on("candidate", 5, "evil")
    heavy = b"x" * 262_144
    # The audit's attack: a burst of slow, heavy requests on a few candidate users, before anyone else comes.
    await send(proxy, attackers, "/v2/sleep/60", heavy, each=60)
    early = await looked_at(proxy, 300)
    assert early["phase"] == "progressing", early["state"]["history"]
    assert early["analysis"]["kind"] == "WARMUP"
    # Then ordinary users arrive (one request each, on both arms) while the attack goes on.
    legit = [f"user{i}" for i in range(500)]  # 300 + 500 + 200 records: the last look sees them all
    await asyncio.gather(send(proxy, legit), send(proxy, attackers, "/v2/sleep/60", heavy, each=40))
    doc = await looked_at(proxy, 1000)
    snap = doc["analysis"]["snapshot"]
    assert doc["phase"] == "progressing", doc["state"]["history"][-1]
    assert doc["analysis"]["kind"] != "ROLLBACK"
    assert snap["unit_of_analysis"] == "unit"
    assert snap["capped"]["candidate"] == 5 * (100 - 20)  # each attacker counts with 20 records at most
    assert snap["units"]["candidate"] >= 100 + 5


async def test_srm_latch_survives_a_restart_and_never_blocks_a_rollback(
    own_upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = own_upstreams
    text = experiment(stable, candidate, (Guardrail("error_rate", 1.2),))
    data_dir = tmp_path / "data"
    first = outrider(text, data_dir=data_dir)
    # A client mints candidate-hashed user ids: the units' split is no longer the planned 50/50.
    await send(first, users_on("candidate", 300, "mint") + [f"a{i}" for i in range(100)])
    doc = await looked_at(first, 400)
    assert doc["analysis"]["snapshot"]["srm"]["flagged"]

    async def latched() -> bool:
        return bool((await admin(first))["state"]["extra"].get("srm_latched") == ["candidate"])

    await eventually(latched, 10.0)
    first.stop()

    second = outrider(text, data_dir=data_dir)
    assert (await admin(second))["state"]["extra"]["srm_latched"] == ["candidate"]
    async with aiohttp.ClientSession() as session:
        for proc, permille in ((stable, 100), (candidate, 200)):  # 10% vs 20% of users fail: 2× errors
            async with session.put(f"{proc.url}/__fail_permille/{permille}") as r:
                assert r.status == 200
    await send(second, [f"b{i}" for i in range(2400)])
    doc = await looked_at(second, 2800)
    assert doc["phase"] == "rolled_back", doc["analysis"]
    last = doc["state"]["history"][-1]
    assert last["decision"] == "ROLLBACK"
    assert "error_rate: harm" in last["reasons"][0]
    assert last["snapshot"]["srm"]["flagged"]
    second.stop()
    # `outrider analyze` on the export replays the same looks without a restart: same decision, same record.
    config = tmp_path / "split.yaml"
    config.write_text(text)
    offline = await asyncio.to_thread(analyze, data_dir, config)
    assert offline["decision"] == "ROLLBACK"
    assert offline["decided_at_records"] == last["at_records"]
    assert offline["unit_of_analysis"] == "unit"
