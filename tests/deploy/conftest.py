"""One real outrider that has made every operational metric exist: a rolled-back canary, a shadow, upstream
errors and a delivered webhook event. Its /metrics page is what the dashboard and alert tests check
their queries against."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.deploy.promql import Inventory
from tests.support.ops import drive_until_decided, ops_yaml, upstream_resets
from tests.support.procs import outrider_cmd, start

REPO = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")


async def scrape_text(admin_url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"{admin_url}/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


@pytest.fixture(scope="session")
def live_metrics(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    """The /metrics inventory of an outrider after a rollback, shadow traffic and upstream resets."""
    tmp = tmp_path_factory.mktemp("deploy")
    upstream = start([sys.executable, "-m", "tests.support.upstream"], tmp / "upstream.log")
    procs = [upstream]
    try:
        (tmp / "ops.yaml").write_text(ops_yaml(upstream.url))
        proxy = start(
            outrider_cmd(
                *("run", "-c", str(tmp / "ops.yaml"), "--data-dir", str(tmp / "data")),
                *("--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--drain-delay", "0"),
                *("--webhook-url", f"{upstream.url}/hook"),  # the echo upstream accepts any POST
            ),
            tmp / "outrider.log",
        )
        procs.append(proxy)
        state = asyncio.run(drive_until_decided(proxy, "ops"))
        assert state["phase"] == "rolled_back", state
        assert 502 in asyncio.run(upstream_resets(proxy))
        return Inventory.from_text(asyncio.run(scrape_text(proxy.admin_url)))
    finally:
        for proc in reversed(procs):
            proc.stop()
