"""`outrider run --workers 2`: one supervisor judging, two worker processes serving one port (SO_REUSEPORT).

A candidate failing 5x as often is rolled back exactly once and gets nothing a second after the decision,
with both workers serving and one outcome record per response; the host's /metrics is the sum of the
workers' and no counter goes back when a worker is killed and replaced; a second supervisor on the same data
dir runs no controllers and follows the leader's states, and its workers die with it; feedback works
whichever worker gets it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from experiments.builder import Analysis
from modelserver.testset import infer_body, read_test_set
from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.integration.test_decisions import digits_canary, model_pair
from tests.integration.test_feedback import TOKEN, rewarded
from tests.support.cli import exported
from tests.support.fleet import eventually, monotonic_samples, started_workers, summed
from tests.support.http import bounded_map, outcome_invariant, scrape
from tests.support.procs import Proc

WORKERS = ("--workers", "2")
ADMIN_TOKEN = "fleet-admin-token"
JUDGED = Analysis(interval="200ms")


@dataclass(frozen=True)
class Answer:
    """One response as the client saw it."""

    at: float
    variant: str
    request_id: str
    status: int


@pytest.fixture
def failing_candidate(models_dir: Path, tmp_path: Path) -> Iterator[tuple[Proc, Proc]]:
    """The digits model as stable (2% errors) and its int8 twin failing 5x as often (10%)."""
    yield from model_pair(models_dir, tmp_path, 0.02, 0.10)


async def state_of(session: aiohttp.ClientSession, admin_url: str, name: str) -> dict[str, Any]:
    async with session.get(f"{admin_url}/experiments/{name}") as r:
        assert r.status == 200
        state: dict[str, Any] = (await r.json())["state"]
        return state


async def drive_until_rolled_back(
    proxy: Proc, models: Path, name: str, seconds: float = 25.0
) -> tuple[dict[str, Any], list[Answer]]:
    """Sticky traffic (16 connections) until the experiment is rolled back and 200 answers came a second
    after the decision."""
    test_set = read_test_set(models / "test_set.json")
    rng = random.Random(5)
    answers: list[Answer] = []
    done = asyncio.Event()

    async def user(session: aiohttp.ClientSession) -> None:
        while not done.is_set():
            body = orjson.dumps(infer_body([test_set.x[rng.randrange(len(test_set.y))]]))
            headers = {"x-user-id": f"user-{rng.randrange(5000)}", "content-type": "application/json"}
            async with session.post(f"{proxy.url}/v2/models/digits/infer", data=body, headers=headers) as r:
                await r.read()
                answers.append(
                    Answer(time.time(), r.headers["x-outrider-variant"], r.headers["x-request-id"], r.status)
                )

    async with aiohttp.ClientSession() as session:
        users = [asyncio.get_running_loop().create_task(user(session)) for _ in range(16)]
        try:

            async def rolled_back() -> dict[str, Any] | None:
                state = await state_of(session, proxy.admin_url, name)
                return state if state["phase"] == "rolled_back" else None

            state = await eventually(rolled_back, seconds)
            decided = state["history"][-1]["at"]

            async def answered_well_after() -> bool:  # enough answers to show where traffic goes after it
                return sum(1 for a in answers if a.at > decided + 1.0) >= 200

            await eventually(answered_well_after, 10.0)
        finally:
            done.set()
            await asyncio.gather(*users)
    return state, answers


async def test_two_workers_roll_a_failing_candidate_back_once(
    failing_candidate: tuple[Proc, Proc], outrider: OutriderFactory, models_dir: Path, tmp_path: Path
) -> None:
    stable, candidate = failing_candidate
    text = digits_canary("fleet", stable.url, candidate.url, (50,))
    data_dir = tmp_path / "data"
    proxy = outrider(text, data_dir=data_dir, args=WORKERS)
    assert proxy.ready["workers"] == 2
    state, answers = await drive_until_rolled_back(proxy, models_dir, "fleet")

    decisions = [h["decision"] for h in state["history"] if "decision" in h]
    assert decisions == ["ROLLBACK"], state["history"]
    decided = state["history"][-1]
    assert "error_rate" in decided["reason"]
    late = [a.variant for a in answers if a.at > decided["at"] + 1.0]
    assert late
    assert set(late) == {"stable"}  # every worker put the rollback in force within a second

    workers = started_workers(proxy)
    assert sorted(workers) == [0, 1]
    async with aiohttp.ClientSession() as session:
        per_worker = [await scrape(session, w.admin_url) for w in workers.values()]
        host = await scrape(session, proxy.admin_url)
    served = [sum(v for k, v in s.items() if k.startswith("outrider_requests_total")) for s in per_worker]
    assert all(n > 0 for n in served), served  # the kernel spread the connections over both workers
    assert sum(served) == len(answers)
    assert host['outrider_decisions_total{decision="ROLLBACK",experiment="fleet"}'] == 1
    proxy.stop()

    records = await exported(data_dir)
    ids = [r["request_id"] for r in records]
    assert len(ids) == len(set(ids))  # no record twice, though two processes wrote the file
    assert set(ids) == {a.request_id for a in answers}  # one record per response
    after = [r["variant"] for r in records if r["ts"] > decided["at"] + 1.0]
    assert after
    assert set(after) == {"stable"}


async def test_host_metrics_sum_the_workers_and_survive_a_killed_worker(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory
) -> None:
    stable, candidate = upstreams
    proxy = outrider(canary_yaml(stable.url, candidate.url, steps=(50,)), args=WORKERS)

    async def send(n: int) -> None:
        connector = aiohttp.TCPConnector(force_close=True)  # a new connection each: both workers get some
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(i: int) -> int:
                async with session.post(f"{proxy.url}/v2/x", data=b"{}", headers={"x-user-id": f"u{i}"}) as r:
                    await r.read()
                    return r.status

            assert set(await bounded_map(list(range(n)), one, concurrency=8)) == {200}

    await send(300)
    workers = started_workers(proxy)
    async with aiohttp.ClientSession() as session:

        async def settled() -> dict[str, float] | None:
            host = await scrape(session, proxy.admin_url)
            produced, stored, pending, dropped = outcome_invariant(host)
            return host if produced == stored == 300 and pending == dropped == 0 else None

        before = await eventually(settled)
        own = [await scrape(session, w.admin_url) for w in workers.values()]
        of_workers = summed([monotonic_samples(s, "outrider_") for s in own])
        for key, value in monotonic_samples(before, "outrider_requests").items():
            assert value == pytest.approx(of_workers[key]), key
        assert sum(v for k, v in before.items() if k.startswith("outrider_requests_total")) == 300

        victim = next(
            w for w, s in zip(workers.values(), own, strict=True) if s["outrider_outcomes_stored_total"]
        )
        os.kill(victim.pid, signal.SIGKILL)

        async def replaced() -> dict[str, float] | None:
            again = started_workers(proxy).get(victim.index)
            host = await scrape(session, proxy.admin_url)
            fresh = again is not None and again.pid != victim.pid
            return host if fresh and host["outrider_workers"] == 2 else None

        after = await eventually(replaced, 15.0)
        assert after["outrider_worker_restarts_total"] == 1
        for key, value in monotonic_samples(before).items():  # nothing goes back, process CPU included
            assert after.get(key, 0.0) >= value or after[key] == pytest.approx(value, rel=1e-12), key
        await send(100)

        async def counted() -> dict[str, float] | None:
            host = await scrape(session, proxy.admin_url)
            produced, stored, pending, dropped = outcome_invariant(host)
            return host if produced == stored + pending + dropped and stored == 400 else None

        final = await eventually(counted)
    assert sum(v for k, v in final.items() if k.startswith("outrider_requests_total")) == 400


async def test_a_second_supervisor_on_the_data_dir_runs_no_controllers_and_follows(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    token_file = tmp_path / "token"
    token_file.write_text(ADMIN_TOKEN)
    args = (*WORKERS, "--admin-token-file", str(token_file))
    config = canary_yaml(stable.url, candidate.url, analysis=JUDGED)
    data_dir = tmp_path / "shared"
    leader = outrider(config, data_dir=data_dir, args=args)
    follower = outrider(config, data_dir=data_dir, args=args)
    assert [e for e in follower.log_lines() if e.get("event") == "not the leader"]
    assert not [e for e in leader.log_lines() if e.get("event") == "not the leader"]
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession() as session:
        assert (await scrape(session, leader.admin_url))["outrider_leader"] == 1
        assert (await scrape(session, follower.admin_url))["outrider_leader"] == 0
        async with session.post(f"{follower.admin_url}/experiments/split/rollback", headers=auth) as r:
            assert r.status == 503
            assert (await r.json())["code"] == "not_leader"
        async with session.post(f"{leader.admin_url}/experiments/split/rollback", headers=auth) as r:
            assert r.status == 200
        changed = time.monotonic()

        admins = [follower.admin_url, *(w.admin_url for w in started_workers(follower).values())]

        async def followed() -> bool:  # the follower's supervisor and both its workers
            phases = [(await state_of(session, admin, "split"))["phase"] for admin in admins]
            return phases == ["rolled_back"] * 3

        await eventually(followed, 2.0)
        assert time.monotonic() - changed < 1.0

        async def variant(i: int) -> str:
            async with session.post(f"{follower.url}/v2/x", data=b"{}", headers={"x-user-id": f"u{i}"}) as r:
                return r.headers["x-outrider-variant"]

        assert set(await bounded_map(list(range(100)), variant, concurrency=8)) == {"stable"}

    orphans = [w.pid for w in started_workers(follower).values()]
    follower.popen.kill()  # SIGKILL: the kernel sends the workers SIGTERM (PR_SET_PDEATHSIG)

    async def gone() -> bool:
        return not any(alive(pid) for pid in orphans)

    await eventually(gone, 10.0)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its new parent to reap it counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


async def test_feedback_reaches_the_record_whichever_worker_wrote_it(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    data_dir = tmp_path / "data"
    proxy = outrider(rewarded(stable.url, candidate.url), data_dir=data_dir, args=WORKERS)
    connector = aiohttp.TCPConnector(force_close=True)  # each call on a new connection, to either worker
    async with aiohttp.ClientSession(connector=connector) as session:

        async def ask_and_reward(i: int) -> int:
            async with session.post(f"{proxy.url}/v2/x", data=b"{}", headers={"x-user-id": f"u{i}"}) as r:
                rid, token = r.headers["x-request-id"], r.headers[TOKEN]
            post = orjson.dumps({"request_id": rid, "reward": 1, "token": token})
            async with session.post(f"{proxy.url}/outrider/v1/feedback", data=post) as r:  # at once
                return r.status

        statuses = await bounded_map(list(range(60)), ask_and_reward, concurrency=6)
    assert statuses == [200] * 60
    proxy.stop()
    rewards = [r.get("reward") for r in await exported(data_dir)]
    assert rewards == [1] * 60
