"""Config reload in a real outrider under load: corrupted, half-written and statistically unsafe files are
rejected (counted, logged with FILE:LINE:COL) while the last good config keeps serving; a good change is
applied without a failed request; SIGHUP reloads at once."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.integration.conftest import canary_yaml
from tests.support.http import scrape
from tests.support.procs import Proc, echo_upstream, run_cmd, start
from tests.support.wait import eventually, wait_until

URL_PATH = "/v2/models/m/infer"


@pytest.fixture
def third(tmp_path: Path) -> Iterator[Proc]:
    proc = echo_upstream("candidate2", tmp_path / "c2.log")
    yield proc
    proc.stop()


def write_atomically(path: Path, text: str) -> None:
    """Like an editor or a ConfigMap update: the file is replaced whole (the text itself may be broken)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def start_outrider(tmp_path: Path, config: Path, interval: str) -> Proc:
    return start(
        run_cmd([config], tmp_path / "data", "--reload-interval", interval), tmp_path / "outrider.log"
    )


async def reloads(session: aiohttp.ClientSession, proc: Proc, result: str) -> float:
    return (await scrape(session, proc.admin_url)).get(
        f'outrider_config_reloads_total{{result="{result}"}}', 0
    )


async def wait_for_count(session: aiohttp.ClientSession, proc: Proc, result: str, want: float) -> None:
    async def reached() -> bool:
        return await reloads(session, proc, result) >= want

    await eventually(reached, 5.0)


async def load(url: str, stop: asyncio.Event, statuses: Counter[int], upstreams: Counter[str]) -> None:
    async with aiohttp.ClientSession() as session:
        i = 0
        while not stop.is_set() and i < 20_000:
            i += 1
            headers = {"x-user-id": f"u{i % 500}"}
            async with session.post(url, data=b"{}", headers=headers) as r:
                await r.read()
                statuses[r.status] += 1
                upstreams[f"{r.headers.get('x-outrider-variant')}={r.headers.get('x-upstream-name')}"] += 1


async def test_bad_configs_keep_the_last_good_one_and_good_ones_apply(
    upstreams: tuple[Proc, Proc], third: Proc, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    good = canary_yaml(stable.url, candidate.url, steps=(50,))
    config = tmp_path / "experiment.yaml"
    config.write_text(good)
    proc = start_outrider(tmp_path, config, "0.2")
    statuses: Counter[int] = Counter()
    served_by: Counter[str] = Counter()
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        loads = [
            asyncio.ensure_future(load(proc.url + URL_PATH, stop, statuses, served_by)) for _ in range(4)
        ]
        try:
            write_atomically(config, "apiVersion: outrider.dev/v1alpha1\nkind: [Experiment\n")
            await wait_for_count(session, proc, "rejected", 1)
            write_atomically(config, good[: len(good) // 2])  # a half-written file
            await wait_for_count(session, proc, "rejected", 2)
            write_atomically(config, canary_yaml(stable.url, candidate.url, steps=(10, 50)))
            await wait_for_count(session, proc, "rejected", 3)
            assert await reloads(session, proc, "applied") == 0
            # the load runs on through the rejections (a busy machine may need longer than they took)
            await wait_until(lambda: sum(statuses.values()) > 100, 10.0)
            before = sum(statuses.values())
            write_atomically(config, canary_yaml(stable.url, third.url, steps=(50,)))
            await wait_for_count(session, proc, "applied", 1)
            applied_at = sum(statuses.values())  # requests routed before the reload may still be answered:
            await wait_until(lambda: sum(statuses.values()) >= applied_at + 20, 10.0)  # let them land first
            served_by.clear()
            await wait_until(lambda: served_by["candidate=candidate2"] >= 20, 10.0)
        finally:
            stop.set()
            await asyncio.gather(*loads)
    proc.stop()
    assert statuses == Counter({200: statuses[200]}), statuses  # 0 failed requests throughout
    assert before > 100
    assert served_by["candidate=candidate2"] > 0
    assert served_by["candidate=candidate"] == 0
    rejected = [line["problem"] for line in proc.log_lines() if line.get("event") == "config rejected"]
    located = re.compile(re.escape(str(config)) + r":\d+:\d+: ")
    assert rejected
    assert all(located.match(p) for p in rejected), rejected
    assert any("spec.strategy: cannot change while the experiment runs" in p for p in rejected), rejected


async def test_sighup_reloads_at_once(upstreams: tuple[Proc, Proc], third: Proc, tmp_path: Path) -> None:
    stable, candidate = upstreams
    config = tmp_path / "experiment.yaml"
    config.write_text(canary_yaml(stable.url, candidate.url, steps=(50,)))
    proc = start_outrider(tmp_path, config, "0")  # 0: no polling, SIGHUP only
    async with aiohttp.ClientSession() as session:
        write_atomically(config, canary_yaml(stable.url, third.url, steps=(50,)))
        await asyncio.sleep(0.5)  # the subject: without polling, nothing is applied however long one waits
        assert await reloads(session, proc, "applied") == 0
        proc.signal(signal.SIGHUP)
        await wait_for_count(session, proc, "applied", 1)
        names = set()
        for i in range(40):
            async with session.post(proc.url + URL_PATH, data=b"{}", headers={"x-user-id": f"u{i}"}) as r:
                assert r.status == 200
                names.add(r.headers["x-upstream-name"])
        assert names == {"stable", "candidate2"}
    assert proc.stop() == 0
