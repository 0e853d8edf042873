"""Automatic decisions end to end with real model servers: a regression is rolled back (and gets no traffic
within a second), a better candidate is promoted through every step, `outrider analyze` on the export agrees,
and the report says why."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from experiments.builder import Analysis, Canary, ExperimentDoc, Guardrail, Variant
from modelserver.testset import infer_body, read_test_set
from tests.integration.conftest import OutriderFactory
from tests.support.procs import Proc, outrider_cmd, start
from tests.support.wait import wait_until

JUDGED = Analysis(
    (Guardrail("error_rate", 1.2), Guardrail("latency_gmean", 1.5)),
    interval="200ms",
    alpha=0.05,
    max_requests=100000,
    on_inconclusive="rollback",
)


def digits_canary(name: str, stable: str, candidate: str, steps: tuple[float, ...], per_step: int = 0) -> str:
    """A canary of the digits model judged on errors and latency every 200 ms (salt: its name)."""
    variants = (Variant.stable(stable), Variant.candidate(candidate))
    strategy = Canary(steps, min_requests_per_step=per_step)
    return ExperimentDoc(name, variants, strategy, prefix="/v2/models/digits", analysis=JUDGED).yaml()


def model_server(models: Path, log: Path, model: str, error_rate: float, seed: int) -> Proc:
    return start(
        outrider_cmd(
            "serve-model",
            "--model",
            str(models / model),
            "--name",
            "digits",
            "--port",
            "0",
            "--error-rate",
            str(error_rate),
            "--seed",
            str(seed),
        ),
        log,
    )


def model_pair(
    models: Path, logs: Path, stable_rate: float, candidate_rate: float
) -> Iterator[tuple[Proc, Proc]]:
    """fp32 digits as stable, int8 as candidate, failing at these rates; both stopped after use."""
    procs = (
        model_server(models, logs / "stable.log", "digits.onnx", stable_rate, 1),
        model_server(models, logs / "candidate.log", "digits-int8.onnx", candidate_rate, 2),
    )
    yield procs
    for proc in procs:
        proc.stop()


@pytest.fixture
def servers(models_dir: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Proc, Proc]]:
    yield from model_pair(models_dir, tmp_path, *request.param)


async def drive_until(
    proxy: Proc, models: Path, phase: str, seconds: float = 90.0
) -> tuple[dict[str, Any], list[tuple[float, str]]]:
    """Sticky traffic until the experiment reaches `phase`; returns its state and (time, variant) pairs."""
    test_set = read_test_set(models / "test_set.json")
    rng = random.Random(3)
    answers: list[tuple[float, str]] = []
    done = asyncio.Event()
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while not done.is_set() and time.monotonic() < deadline:
            body = orjson.dumps(infer_body([test_set.x[rng.randrange(len(test_set.y))]]))
            headers = {"x-user-id": f"user-{rng.randrange(5000)}", "content-type": "application/json"}
            async with session.post(f"{proxy.url}/v2/models/digits/infer", data=body, headers=headers) as r:
                await r.read()
                answers.append((time.time(), r.headers["x-outrider-variant"]))

    async with aiohttp.ClientSession() as session:
        workers = [asyncio.get_running_loop().create_task(worker(session)) for _ in range(16)]
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            async with session.get(f"{proxy.admin_url}/experiments/{proxy.ready['experiments'][0]}") as r:
                state = (await r.json())["state"]
            if state["phase"] == phase:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.5)  # keep sending: nothing may reach the loser after the decision
        done.set()
        await asyncio.gather(*workers)
    return state, answers


def analyze(data_dir: Path, config: Path, tmp_path: Path) -> dict[str, Any]:
    export = subprocess.run(
        outrider_cmd("export", "--data-dir", str(data_dir)), capture_output=True, check=True
    )
    jsonl = tmp_path / "export.jsonl"
    jsonl.write_bytes(export.stdout)
    out = subprocess.run(
        outrider_cmd("analyze", str(jsonl), "-c", str(config), "--json"), capture_output=True, check=True
    )
    result: dict[str, Any] = orjson.loads(out.stdout)
    return result


@pytest.mark.parametrize("servers", [(0.01, 0.05)], indirect=True)
async def test_a_5x_error_regression_is_rolled_back_and_analyze_agrees(
    servers: tuple[Proc, Proc], outrider: OutriderFactory, models_dir: Path, tmp_path: Path
) -> None:
    stable, candidate = servers
    text = digits_canary("regression", stable.url, candidate.url, (20, 50))
    data_dir = tmp_path / "data"
    proxy = outrider(text, data_dir=data_dir)
    state, answers = await drive_until(proxy, models_dir, "rolled_back")
    assert state["phase"] == "rolled_back", state
    decision = state["history"][-1]
    assert decision["decision"] == "ROLLBACK"
    assert "error_rate" in decision["reason"]
    late = [variant for at, variant in answers if at > decision["at"] + 1.0]
    assert late
    assert set(late) == {"stable"}  # no traffic to the candidate within one second of the decision
    report = data_dir / "reports" / "regression" / "report.md"
    await wait_until(lambda: report.exists() and "ROLLBACK" in report.read_text(), 10.0)
    proxy.stop()

    config = tmp_path / "regression.yaml"
    config.write_text(text)
    result = await asyncio.to_thread(analyze, data_dir, config, tmp_path)
    assert result["decision"] == "ROLLBACK"
    assert result["decided_at"] == decision["at_candidate_requests"]
    assert any("error_rate" in r for r in result["reasons"])
    assert {m["name"] for m in result["metrics"]} >= {"error_rate", "latency_gmean"}
    assert set(result["srm"]) >= {"log_bf", "flagged"}


@pytest.mark.parametrize("servers", [(0.03, 0.0)], indirect=True)
async def test_a_better_candidate_is_promoted_through_every_step(
    servers: tuple[Proc, Proc], outrider: OutriderFactory, models_dir: Path, tmp_path: Path
) -> None:
    stable, candidate = servers
    text = digits_canary("better", stable.url, candidate.url, (10, 30), per_step=300)
    proxy = outrider(text, data_dir=tmp_path / "data")
    state, answers = await drive_until(proxy, models_dir, "promoted")
    assert state["phase"] == "promoted", state
    assert [h.get("decision") for h in state["history"]] == [None, "ADVANCE", "PROMOTE"]  # v1: created
    assert state["weights"] == {"stable": 0.0, "candidate": 100.0}
    late = [variant for at, variant in answers if at > state["history"][-1]["at"] + 1.0]
    assert late
    assert set(late) == {"candidate"}
