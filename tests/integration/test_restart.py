"""A restart in the middle of an experiment continues the same e-values: the live statistics after the restart
equal an offline replay of the whole export, which never restarted."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from experiments.builder import Analysis, Guardrail
from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.procs import Proc, outrider_cmd

ANALYSIS = Analysis((Guardrail("error_rate", 1.2),), interval="100ms", max_requests=1000000)
# Only the error rate is judged: its outcomes depend on the users alone (every 7th fails on both arms), so the
# test is deterministic; latency would differ between two upstream processes and could legitimately decide.


async def send(proxy: Proc, users: range) -> None:
    async with aiohttp.ClientSession() as session:
        for user in users:
            path = "/v2/status/500" if user % 7 == 0 else "/v2/x"
            async with session.post(f"{proxy.url}{path}", data=b"{}", headers={"x-user-id": f"u{user}"}) as r:
                assert r.status == (500 if user % 7 == 0 else 200)


async def look_at(proxy: Proc, records: int) -> dict[str, Any]:
    """The controller's last look, once it has judged `records` outcomes."""
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            async with session.get(f"{proxy.admin_url}/experiments/split") as r:
                analysis = (await r.json())["analysis"]
            if analysis is not None and analysis["records"] == records:
                return dict(analysis)
            await asyncio.sleep(0.1)
    raise AssertionError(f"the controller never looked at {records} records")


def analyze(data_dir: Path, config: Path) -> dict[str, Any]:
    export = subprocess.run(
        outrider_cmd("export", "--data-dir", str(data_dir)), capture_output=True, check=True
    )
    jsonl = data_dir.parent / "export.jsonl"
    jsonl.write_bytes(export.stdout)
    out = subprocess.run(
        outrider_cmd("analyze", str(jsonl), "-c", str(config), "--json"), capture_output=True, check=True
    )
    result: dict[str, Any] = orjson.loads(out.stdout)
    return result


async def test_restart_continues_the_same_evalues(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    text = canary_yaml(stable.url, candidate.url, steps=(50,), analysis=ANALYSIS)
    data_dir = tmp_path / "data"
    first = outrider(text, data_dir=data_dir)
    await send(first, range(1000))
    before = await look_at(first, 1000)
    first.stop()

    second = outrider(text, data_dir=data_dir)
    await send(second, range(1000, 1500))
    after = await look_at(second, 1500)
    assert after["candidate_requests"] > before["candidate_requests"]
    second.stop()

    config = tmp_path / "split.yaml"
    config.write_text(text)
    offline = await asyncio.to_thread(analyze, data_dir, config)
    assert offline["records"] == 1500
    assert offline["decision"] == "CONTINUE"
    live = {m["name"]: m for m in after["snapshot"]["metrics"]}
    assert live["error_rate"]["log_e_harm"] != 0.0
    for metric in offline["metrics"]:
        for key in ("log_e_harm", "log_e_noninf", "estimate"):
            assert live[metric["name"]][key] == metric[key], (metric["name"], key)

    out = tmp_path / "report"
    cmd = outrider_cmd("report", "--data-dir", str(data_dir), "--experiment", "split", "-o", str(out))
    made = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, check=True)
    assert made.stdout.decode().split() == [str(out / f"report.{ext}") for ext in ("json", "md", "html")]
    doc = orjson.loads((out / "report.json").read_bytes())
    assert doc["experiment"] == "split"
    assert doc["phase"] == "progressing"
    assert doc["counts"]["records"] == 1500
    assert {m["name"] for m in doc["metrics"]} == {"error_rate"}
    assert doc["feedback"] == {"timely": 0, "late": 0, "arrival_share": 0.0}
    assert "| error_rate |" in (out / "report.md").read_text()


async def test_a_fresh_data_dir_starts_at_version_1_with_its_creation_and_a_restart_keeps_it(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    text = canary_yaml(stable.url, candidate.url, steps=(10, 50))
    data_dir = tmp_path / "fresh"
    for _ in range(2):  # the same state after a restart: nothing is created twice
        proxy = outrider(text, data_dir=data_dir)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{proxy.admin_url}/experiments/split") as r,
        ):
            view = await r.json()
        proxy.stop()
        assert (view["version"], view["step_label"]) == (1, "1/2")
        history = view["state"]["history"]
        assert [(h["version"], h["reason"], h["phase"], h["step"]) for h in history] == [
            (1, "created", "progressing", 0)
        ]
