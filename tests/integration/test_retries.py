"""Connect-failure retries in a real outrider: a refused candidate is a fast 502, retried only within its
budget (20%, min 3 per 10 s), never at the stable's expense; once the candidate listens again it answers."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import aiohttp
import orjson

from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.http import scrape
from tests.support.procs import Proc, start


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def retries_allowed(requests: int, ratio: float = 0.2, minimum: int = 3) -> int:
    """How many of `requests` failing requests in one window may retry: the rule, spelled out."""
    retries = 0
    for seen in range(1, requests + 1):
        if retries < max(minimum, ratio * seen):
            retries += 1
    return retries


async def post(session: aiohttp.ClientSession, url: str, user: str) -> tuple[int, str, float, bytes]:
    started = time.monotonic()
    async with session.post(url, data=b"{}", headers={"x-user-id": user}) as r:
        body = await r.read()
        return r.status, r.headers["x-outrider-variant"], time.monotonic() - started, body


async def test_refused_candidate_is_a_fast_502_retried_within_budget_until_it_comes_back(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, _ = upstreams
    port = closed_port()
    proxy = outrider(canary_yaml(stable.url, f"http://127.0.0.1:{port}", steps=(50,)))
    url = f"{proxy.url}/v2/models/m/infer"
    users = [f"user-{i}" for i in range(40)]
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        answers = {user: await post(session, url, user) for user in users}
        assert time.monotonic() - started < 9.0  # all within one 10 s budget window
        refused = [user for user, (_, variant, _, _) in answers.items() if variant == "candidate"]
        assert 10 <= len(refused) <= 30
        for user, (status, variant, elapsed, body) in answers.items():
            if variant == "candidate":
                assert status == 502, user
                assert orjson.loads(body)["code"] == "upstream_unavailable"
                assert elapsed < 0.1, (user, elapsed)
            else:
                assert status == 200, user
        samples = await scrape(session, proxy.admin_url)
        allowed = retries_allowed(len(refused))
        assert samples['outrider_upstream_retries_total{result="failed"}'] == allowed
        assert samples['outrider_upstream_retries_total{result="budget_exhausted"}'] == len(refused) - allowed
        assert samples['outrider_upstream_retries_total{result="recovered"}'] == 0

        back = start(
            [sys.executable, "-m", "tests.support.upstream", "--name", "candidate", "--port", str(port)],
            tmp_path / "candidate-back.log",
        )
        try:
            for user in refused[:5]:
                status, variant, _, _ = await post(session, url, user)
                assert (status, variant) == (200, "candidate")
        finally:
            back.stop()
