"""Reports end to end: a live experiment rolls back and writes report.json, .md and .html; `outrider report
--input` on its export, offline, writes the same three files with the same decision at the same record."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from experiments.builder import Analysis, Canary, Compare, ExperimentDoc, Guardrail, Shadow, Variant
from proxy.cli import main as outrider_main
from tests.integration.conftest import OutriderFactory
from tests.support.procs import Proc, outrider_cmd, start

EXPERIMENT = ExperimentDoc(
    "reported",
    (),
    Canary((50,)),
    shadow=Shadow(sample=0.2, compare=Compare("json-exact")),
    analysis=Analysis((Guardrail("error_rate", 1.2), Guardrail("latency_gmean", 1.5)), interval="200ms"),
)
FILES = ("report.json", "report.md", "report.html")
PLOT_IDS = ('id="plot-evalues"', 'id="plot-intervals"', 'id="plot-weights"', 'id="plot-latency"')


@pytest.fixture
def broken_candidate(tmp_path: Path) -> Iterator[Proc]:
    """An echo upstream that answers every request with 500."""
    cmd = [sys.executable, "-m", "tests.support.upstream", "--name", "candidate", "--fault", "500"]
    proc = start(cmd, tmp_path / "candidate.log")
    yield proc
    proc.stop()


async def drive_until_rolled_back(proxy: Proc, seconds: float = 30.0) -> dict[str, Any]:
    """Sticky traffic until the experiment is rolled back; its state then."""
    rng = random.Random(5)
    done = asyncio.Event()

    async def worker(session: aiohttp.ClientSession) -> None:
        while not done.is_set():
            headers = {"x-user-id": f"user-{rng.randrange(5000)}", "content-type": "application/json"}
            async with session.post(f"{proxy.url}/v2/m/infer", data=b'{"x": 1}', headers=headers) as r:
                await r.read()

    deadline = time.monotonic() + seconds
    state: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        workers = [asyncio.get_running_loop().create_task(worker(session)) for _ in range(16)]
        while time.monotonic() < deadline and state.get("phase") != "rolled_back":
            await asyncio.sleep(0.2)
            async with session.get(f"{proxy.admin_url}/experiments/reported") as r:
                state = (await r.json())["state"]
        done.set()
        await asyncio.gather(*workers)
    return state


def wait_for(path: Path, seconds: float = 15.0) -> bool:
    """Whether `path` appeared within `seconds` (blocking: run it in a thread)."""
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return path.exists()


def export_and_report(data_dir: Path, config: Path, out: Path) -> subprocess.CompletedProcess[bytes]:
    export = subprocess.run(
        outrider_cmd("export", "--data-dir", str(data_dir)), capture_output=True, check=True
    )
    jsonl = out.parent / "export.jsonl"
    jsonl.write_bytes(export.stdout)
    cmd = outrider_cmd("report", "--input", str(jsonl), "-c", str(config), "-o", str(out))
    return subprocess.run(cmd, capture_output=True, check=False)


async def test_offline_report_from_an_export_matches_the_live_one(
    upstreams: tuple[Proc, Proc], broken_candidate: Proc, outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams[0].url, broken_candidate.url
    text = EXPERIMENT.adding(
        Variant.stable(stable), Variant.candidate(candidate), Variant.shadow(stable, "mirror")
    ).yaml()
    data_dir = tmp_path / "data"
    proxy = outrider(text, data_dir=data_dir)
    state = await drive_until_rolled_back(proxy)
    assert state["phase"] == "rolled_back", state
    live_dir = data_dir / "reports" / "reported"
    assert await asyncio.to_thread(wait_for, live_dir / "report.html")  # written in a thread after the end
    proxy.stop()

    config = tmp_path / "reported.yaml"
    config.write_text(text)
    out = tmp_path / "offline"
    done = await asyncio.to_thread(export_and_report, data_dir, config, out)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == [str(out / name) for name in FILES]

    live, offline = (orjson.loads((d / "report.json").read_bytes()) for d in (live_dir, out))
    assert live["decision"] == offline["decision"] == "ROLLBACK"
    assert offline["decided_at"] == live["decided_at"] == state["history"][-1]["at_candidate_requests"]
    assert offline["decided_at_records"] == live["decided_at_records"]
    assert offline["reasons"] == live["reasons"]
    assert offline["metrics"] == live["metrics"]  # the statistics the decision was taken on
    for doc in (live, offline):
        assert doc["series"]["looks"]["records"], "no look in the series"
        assert [d["kind"] for d in doc["series"]["decisions"]] == ["ROLLBACK"]
    for d in (live_dir, out):
        html = (d / "report.html").read_text()
        assert all(plot in html for plot in (*PLOT_IDS, 'id="plot-shadow"'))  # the experiment has a shadow
        assert "ROLLBACK" in (d / "report.md").read_text()


@pytest.mark.parametrize(
    "args",
    [
        ["--input", "x.jsonl", "-o", "out"],  # no experiment file
        ["--input", "x.jsonl", "-c", "e.yaml", "--data-dir", "d", "-o", "out"],  # a data dir too
        ["--experiment", "e", "-c", "e.yaml", "-o", "out"],  # -c without --input
    ],
)
def test_report_refuses_mixed_sources(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert outrider_main(["report", *args]) == 2
    assert "--input needs -c" in capsys.readouterr().err


def test_report_input_names_a_bad_experiment_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.jsonl").write_bytes(b"")
    (tmp_path / "e.yaml").write_text("kind: Experiment\n")
    out = tmp_path / "out"
    args = ["report", "--input", str(tmp_path / "x.jsonl"), "-c", str(tmp_path / "e.yaml"), "-o", str(out)]
    assert outrider_main(args) == 2
    assert "e.yaml" in capsys.readouterr().err
    assert not out.exists()
