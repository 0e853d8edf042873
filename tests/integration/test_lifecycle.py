"""Lifecycle of a real outrider under load: SIGTERM drains (readiness off at once, 0 failed in-flight
requests, one stored record per response, exit within the grace period); kill -9 loses no acknowledged
record."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from pathlib import Path
from signal import SIGTERM

import aiohttp
import orjson

from tests.integration.conftest import canary_yaml
from tests.support.http import outcome_invariant, scrape
from tests.support.procs import Proc, outrider_cmd, run_cmd, start
from tests.support.wait import wait_until

DRAIN_DELAY_S, DRAIN_TIMEOUT_S = 1.0, 15.0


def run_outrider(tmp_path: Path, config: Path, data: Path, *args: str, log: str = "outrider.log") -> Proc:
    return start(run_cmd([config], data, *args), tmp_path / log)


def exported(data: Path) -> list[dict[str, object]]:
    out = subprocess.run(
        outrider_cmd("export", "--data-dir", str(data)), capture_output=True, check=True, timeout=60
    ).stdout
    return [orjson.loads(line) for line in out.splitlines()]


async def worker(
    url: str, stop: asyncio.Event, ok_ids: list[str], failures: Counter[str], n: int, limit: int = 5000
) -> None:
    async with aiohttp.ClientSession() as session:
        for i in range(limit):
            if stop.is_set():
                return
            rid = f"w{n}-{i}"
            try:
                headers = {"x-user-id": f"u{n}-{i % 50}", "x-request-id": rid}
                async with session.post(url, data=b"{}", headers=headers) as r:
                    await r.read()
                    if r.status == 200:
                        ok_ids.append(rid)
                    else:
                        failures[str(r.status)] += 1
            except aiohttp.ClientError as err:
                failures[type(err).__name__] += 1


async def readiness_lost(admin_url: str, since: float) -> float:
    """Seconds from `since` until /readyz answers 503 (the signal is handled on the next loop turn)."""
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - since < 2.0:
            async with session.get(f"{admin_url}/readyz") as r:
                if r.status == 503:
                    return time.monotonic() - since
            await asyncio.sleep(0.005)
    raise AssertionError("/readyz still 200 two seconds after SIGTERM")


async def test_sigterm_drains_in_flight_requests(upstreams: tuple[Proc, Proc], tmp_path: Path) -> None:
    stable, candidate = upstreams
    config = tmp_path / "experiment.yaml"
    config.write_text(canary_yaml(stable.url, candidate.url, steps=(50,)))
    data = tmp_path / "data"
    proc = run_outrider(
        tmp_path, config, data, "--drain-delay", str(DRAIN_DELAY_S), "--drain-timeout", str(DRAIN_TIMEOUT_S)
    )
    url = f"{proc.url}/v2/models/m/sleep/300/infer"  # every request is in flight for 300 ms
    ok_ids: list[str] = []
    failures: Counter[str] = Counter()
    stop_sending = asyncio.Event()
    load = [asyncio.ensure_future(worker(url, stop_sending, ok_ids, failures, n)) for n in range(16)]
    try:
        await wait_until(lambda: len(ok_ids) >= 16, 30.0)  # the load is under way: requests keep completing
        in_flight_at_sigterm = len(ok_ids)
        signalled = time.monotonic()
        proc.signal(SIGTERM)
        # clients keep sending until half-way through the drain delay (a balancer notices readiness that fast)
        asyncio.get_running_loop().call_later(DRAIN_DELAY_S / 2, stop_sending.set)
        not_ready_after = await readiness_lost(proc.admin_url, signalled)
        await asyncio.gather(*load)
        code = await asyncio.to_thread(proc.popen.wait, DRAIN_DELAY_S + DRAIN_TIMEOUT_S + 5)
        exit_after = time.monotonic() - signalled
    finally:
        proc.stop()
    assert code == 0
    assert not failures, failures
    assert len(ok_ids) > in_flight_at_sigterm + 16  # requests kept succeeding during the drain delay
    assert not_ready_after < 0.5
    assert exit_after < DRAIN_DELAY_S + DRAIN_TIMEOUT_S
    records = exported(data)
    assert sorted(str(r["request_id"]) for r in records) == sorted(ok_ids)  # one record per response
    stopped = [line for line in proc.log_lines() if line.get("event") == "stopped"]
    assert stopped[0]["outcomes"]["pending"] == 0


async def test_kill_9_loses_no_acknowledged_record(upstreams: tuple[Proc, Proc], tmp_path: Path) -> None:
    stable, candidate = upstreams
    config = tmp_path / "experiment.yaml"
    config.write_text(canary_yaml(stable.url, candidate.url, steps=(50,)))
    data = tmp_path / "data"
    proc = run_outrider(tmp_path, config, data)
    ok_ids: list[str] = []
    failures: Counter[str] = Counter()
    until = time.monotonic() + 30
    stop_sending = asyncio.Event()
    cap = asyncio.get_running_loop().call_later(30, stop_sending.set)
    load = [
        asyncio.ensure_future(worker(f"{proc.url}/v2/models/m/infer", stop_sending, ok_ids, failures, n))
        for n in range(8)
    ]
    acknowledged = 0.0
    try:
        async with aiohttp.ClientSession() as session:
            # until 1000 answers and 500 of their records stored: the writer commits every 50 ms (group
            # commit), so how far `stored` trails the answers depends on how fast they come
            while (len(ok_ids) < 1000 or acknowledged <= 500) and time.monotonic() < until:
                produced, stored, pending, dropped = outcome_invariant(await scrape(session, proc.admin_url))
                assert produced == stored + pending + dropped
                acknowledged = stored  # durably committed and reported as such
                await asyncio.sleep(0.05)
    finally:
        proc.popen.kill()  # SIGKILL: no flush, no cleanup
        proc.popen.wait(10)
        stop_sending.set()
        cap.cancel()
        await asyncio.gather(*load)
    assert acknowledged > 500
    sent = {f"w{n}-{i}" for n in range(8) for i in range(5000)}
    restarted = run_outrider(tmp_path, config, data, log="restarted.log")
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{restarted.url}/v2/models/m/infer", data=b"{}") as r,
    ):
        assert r.status == 200  # the store recovered and takes new records
    restarted.stop()
    records = exported(data)
    ids = [str(r["request_id"]) for r in records]
    assert len(ids) == len(set(ids))  # no record written twice
    assert len(records) >= acknowledged + 1  # every acknowledged record survived (+ the one after restart)
    assert set(ids) - sent == {ids[-1]}  # nothing but what was sent (and the post-restart request)
    lost = len(set(ok_ids) - set(ids))
    print(
        f"kill -9: acknowledged {acknowledged:.0f}, stored {len(records) - 1}, answered {len(ok_ids)}, "
        f"answered but not yet stored when killed {lost}"
    )
