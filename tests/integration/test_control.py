"""Manual control on the admin port, state that survives a restart, and the feedback endpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson

from experiments.builder import Analysis, Goal
from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.cli import exported
from tests.support.procs import Proc

TOKEN = "s3cret-admin-token"


async def shares(session: aiohttp.ClientSession, proxy: Proc, n: int = 200) -> dict[str, int]:
    seen: dict[str, int] = {}
    for i in range(n):
        async with session.post(f"{proxy.url}/v2/x", data=b"{}", headers={"x-user-id": f"u{i}"}) as r:
            seen[r.headers["x-outrider-variant"]] = seen.get(r.headers["x-outrider-variant"], 0) + 1
    return seen


async def test_manual_control_needs_the_token_and_survives_restart(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config = canary_yaml(stable.url, candidate.url)
    proxy = outrider(config, args=("--admin-token-file", str(token_file)))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{proxy.admin_url}/experiments/split/promote") as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        async with session.post(
            f"{proxy.admin_url}/experiments/split/promote", headers={"Authorization": "Bearer x"}
        ) as r:
            assert r.status == 401
        async with session.post(f"{proxy.admin_url}/experiments/split/resume", headers=auth) as r:
            assert r.status == 409
        async with session.post(f"{proxy.admin_url}/experiments/split/pause", headers=auth) as r:
            assert r.status == 200
            assert (await r.json())["phase"] == "paused"
        async with session.post(f"{proxy.admin_url}/experiments/split/rollback", headers=auth) as r:
            state = await r.json()
        assert state["phase"] == "rolled_back"
        assert state["weights"] == {"stable": 100.0}
        assert [h["reason"] for h in state["history"]] == [
            "created",
            "manual pause (admin API)",
            "manual rollback (admin API)",
        ]
        assert await shares(session, proxy) == {"stable": 200}
        async with session.post(f"{proxy.admin_url}/experiments/split/promote", headers=auth) as r:
            assert r.status == 409  # finished experiments stay finished
    proxy.stop()
    again = outrider(config)  # same data dir, no token: the rollback is remembered, mutations are refused
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{again.admin_url}/experiments/split") as r:
            restored = await r.json()
        assert restored["phase"] == "rolled_back"
        assert await shares(session, again) == {"stable": 200}
        async with session.post(f"{again.admin_url}/experiments/split/resume", headers=auth) as r:
            assert r.status == 403


async def test_feedback_joins_a_reward_to_the_outcome(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    goal = Goal("reward_mean", "increase", range=(0, 1))
    config = canary_yaml(stable.url, candidate.url, analysis=Analysis(goals=(goal,), feedback_window="1s"))
    proxy = outrider(config, data_dir=tmp_path / "fb")
    url = f"{proxy.url}/outrider/v1/feedback"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{proxy.url}/v2/x", data=b"{}", headers={"x-user-id": "fb"}) as r:
            rid, variant = r.headers["x-request-id"], r.headers["x-outrider-variant"]
            token = r.headers["x-outrider-feedback-token"]
        async with session.post(
            url, data=orjson.dumps({"request_id": rid, "reward": 1.0, "token": token})
        ) as r:
            assert r.status == 200, await r.text()
            assert (await r.json()) == {"request_id": rid, "experiment": "split", "variant": variant}
        async with session.post(
            url, data=orjson.dumps({"request_id": rid, "reward": 0.0, "token": token})
        ) as r:
            assert r.status == 409
        unknown = {"request_id": "never-seen", "reward": 1, "token": token}
        async with session.post(url, data=orjson.dumps(unknown)) as r:
            assert r.status == 403  # a token of another request: nothing is learnt about the id
            assert (await r.json())["code"] == "bad_feedback_token"
        for bad in (
            b"not json",
            b"[]",
            b'{"request_id": "x"}',
            b'{"request_id": "x", "reward": "1"}',
            b'{"request_id": "", "reward": 1}',
            b'{"request_id": "x", "reward": true}',
        ):
            async with session.post(url, data=bad) as r:
                assert r.status == 400, bad
                assert (await r.json())["code"] == "bad_request"
        async with session.post(f"{proxy.url}/v2/x", data=b"{}", headers={"x-user-id": "late"}) as r:
            late = {"request_id": r.headers["x-request-id"], "reward": 1.0}
            late["token"] = r.headers["x-outrider-feedback-token"]
        await asyncio.sleep(1.2)  # the subject: past the 1 s feedbackWindow
        async with session.post(url, data=orjson.dumps(late)) as r:
            assert r.status == 422
            assert (await r.json())["code"] == "feedback_late"
        async with session.get(f"{proxy.admin_url}/metrics") as r:
            text = await r.text()
    assert 'outrider_feedback_total{result="accepted"} 1.0' in text
    assert 'outrider_feedback_total{result="duplicate"} 1.0' in text
    assert 'outrider_feedback_total{result="late"} 1.0' in text
    assert 'outrider_feedback_total{result="forbidden"} 1.0' in text
    proxy.stop()
    records = await exported(tmp_path / "fb")
    assert [(r["request_id"], r["reward"]) for r in records] == [(rid, 1.0), (late["request_id"], None)]


async def test_concurrent_promotes_change_the_state_once(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    proxy = outrider(canary_yaml(stable.url, candidate.url), args=("--admin-token-file", str(token_file)))
    url = f"{proxy.admin_url}/experiments/split/promote"
    auth = {"Authorization": f"bearer {TOKEN}"}  # the scheme is case-insensitive (RFC 9110 §11.1)

    async def promote(session: aiohttp.ClientSession) -> int:
        async with session.post(url, headers=auth) as r:
            return r.status

    async with aiohttp.ClientSession() as session:
        statuses = await asyncio.gather(*(promote(session) for _ in range(8)))
        async with session.get(f"{proxy.admin_url}/experiments/split") as r:
            state = await r.json()
    assert sorted(statuses) == [200] + [409] * 7
    assert state["version"] == 2
    assert [h["reason"] for h in state["state"]["history"]] == ["created", "manual promote (admin API)"]
