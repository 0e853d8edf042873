"""Traffic splitting through a real outrider process: share, stickiness across restarts, monotone ramps,
and the outcome invariant with a full export."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiohttp
import orjson

from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.http import bounded_map, outcome_invariant, scrape
from tests.support.procs import Proc, outrider_cmd
from tests.support.wait import eventually


def export(data_dir: Path, *args: str) -> bytes:
    """stdout of `outrider export --data-dir DIR ARGS`."""
    cmd = outrider_cmd("export", "--data-dir", str(data_dir), *args)
    return subprocess.run(cmd, capture_output=True, check=True).stdout


async def variants_of(proxy: Proc, users: list[str], concurrency: int = 48) -> list[tuple[str, str, str]]:
    """(variant header, answering upstream, request id) for one request per user."""
    async with aiohttp.ClientSession() as session:

        async def one(user: str) -> tuple[str, str, str]:
            async with session.post(
                f"{proxy.url}/v2/models/m/infer", data=b"{}", headers={"x-user-id": user}
            ) as r:
                assert r.status == 200, await r.text()
                await r.read()
                return (
                    r.headers["x-outrider-variant"],
                    r.headers["x-upstream-name"],
                    r.headers["x-request-id"],
                )

        return await bounded_map(users, one, concurrency)


async def test_ten_percent_canary_over_20000_units_and_every_outcome_exported(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    data_dir = tmp_path / "data"
    proxy = outrider(canary_yaml(stable.url, candidate.url), data_dir=data_dir)
    users = [f"unit-{i}" for i in range(20_000)]
    async with aiohttp.ClientSession() as session:
        load = asyncio.get_running_loop().create_task(variants_of(proxy, users))
        while not load.done():  # the invariant holds at every scrape, under load
            produced, stored, pending, dropped = outcome_invariant(await scrape(session, proxy.admin_url))
            assert produced == stored + pending + dropped
            await asyncio.sleep(0.2)  # the scrape interval, not a wait for something
        results = await load

        async def settled() -> tuple[float, float, float, float] | None:  # the last batch committed
            counts = outcome_invariant(await scrape(session, proxy.admin_url))
            return counts if counts[2] == 0 else None

        produced, stored, pending, dropped = await eventually(settled, 10.0)
    assert all(variant == upstream for variant, upstream, _ in results)  # the header tells the truth
    share = sum(v == "candidate" for v, _, _ in results) / len(results)
    assert abs(share - 0.10) <= 0.006, share
    assert (produced, stored, pending, dropped) == (20_000, 20_000, 0, 0)

    assert proxy.stop() == 0
    out = await asyncio.to_thread(export, data_dir)
    records = [orjson.loads(line) for line in out.splitlines()]
    assert len(records) == 20_000
    assert {r["request_id"] for r in records} == {rid for _, _, rid in results}
    by_id = {rid: variant for variant, _, rid in results}
    for rec in records:
        assert rec["experiment"] == "split"
        assert rec["variant"] == by_id[rec["request_id"]]
        assert rec["p_variant"] == (0.1 if rec["variant"] == "candidate" else 0.9)
        assert rec["status"] == 200
        assert rec["error"] is None
        assert rec["latency_ms"] >= rec["upstream_ms"] > 0
        assert len(rec["unit"]) == 16
        assert not rec["unit"].startswith("unit-")
        assert rec["shadows"] == []
        assert rec["reward"] is None
    assert await asyncio.to_thread(export, data_dir, "--experiment", "nope") == b""
    assert len((await asyncio.to_thread(export, data_dir, "--experiment", "split")).splitlines()) == 20_000


async def test_units_stay_sticky_across_restart_and_a_raise_only_moves_stable_units(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory
) -> None:
    stable, candidate = upstreams
    users = [f"sticky-{i}" for i in range(1_000)]
    first = outrider(canary_yaml(stable.url, candidate.url, steps=(10, 50)))
    before = [v for v, _, _ in await variants_of(first, users)]
    first.stop()

    again = outrider(canary_yaml(stable.url, candidate.url, steps=(10, 50)))
    assert [v for v, _, _ in await variants_of(again, users)] == before
    again.stop()

    raised = outrider(canary_yaml(stable.url, candidate.url, steps=(25, 50)))
    after = [v for v, _, _ in await variants_of(raised, users)]
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert moved
    assert all(pair == ("stable", "candidate") for pair in moved)
    assert 0.08 <= before.count("candidate") / 1000 <= 0.12
    assert 0.21 <= after.count("candidate") / 1000 <= 0.29


async def test_replicas_agree_on_every_unit_without_sharing_anything(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    # Assignment is a pure function of (salt, unit): two sidecars with their own data directories (two pods)
    # send each user to the same variant, so a user who is balanced between replicas keeps the arm.
    stable, candidate = upstreams
    config = canary_yaml(stable.url, candidate.url, steps=(30, 50))
    replicas = [outrider(config, data_dir=tmp_path / f"replica-{i}") for i in range(2)]
    users = [f"replica-user-{i}" for i in range(600)]
    seen = [[v for v, _, _ in await variants_of(proxy, users)] for proxy in replicas]
    assert seen[0] == seen[1]
    assert 0.24 <= seen[0].count("candidate") / len(users) <= 0.36
