"""The int8 model as a shadow of the fp32 model, judged live: the agreement verdict reaches the experiment
state, and `outrider analyze` and the report show the same verdict; the offline agreement is inside the
live anytime interval."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from experiments.builder import (
    Analysis,
    Canary,
    Compare,
    ExperimentDoc,
    Guardrail,
    Mirror,
    Shadow,
    ShadowOnly,
    Variant,
)
from modelserver.testset import infer_body, read_test_set
from tests.integration.conftest import OutriderFactory
from tests.support.cli import exported
from tests.support.procs import Proc, outrider_cmd, start
from tests.support.wait import eventually, wait_until

COPIES = Shadow(sample=1.0, timeout="1s", compare=Compare("oip-top1", agreement_min=0.99))
EXPERIMENT = ExperimentDoc(
    "digits-shadow",
    (),
    Canary((10, 50), min_requests_per_step=1000000),
    prefix="/v2/models/digits",
    salt="shadow-test",
    shadow=COPIES,
    analysis=Analysis((Guardrail("error_rate", 1.2),), interval="200ms"),
)
"""A canary that never advances, an int8 shadow beside it (add the variants)."""


def offline_agreement(models_dir: Path) -> float:
    """Top-1 agreement of int8 with fp32 on every held-out digit, computed here with onnxruntime."""
    import numpy as np
    import onnxruntime as ort

    test_set = read_test_set(models_dir / "test_set.json")
    x = np.asarray(test_set.x, dtype=np.float32)
    top1 = [
        ort.InferenceSession(str(models_dir / f), providers=["CPUExecutionProvider"])
        .run(None, {"input": x})[0]
        .argmax(axis=1)
        for f in ("digits.onnx", "digits-int8.onnx")
    ]
    return float(np.mean(top1[0] == top1[1]))


@pytest.fixture
def models(models_dir: Path, tmp_path: Path) -> Iterator[tuple[Proc, Proc]]:
    procs = tuple(
        start(
            outrider_cmd("serve-model", "--model", str(models_dir / f), "--name", "digits", "--port", "0"),
            tmp_path / f"{f}.log",
        )
        for f in ("digits.onnx", "digits-int8.onnx")
    )
    yield procs[0], procs[1]
    for proc in procs:
        proc.stop()


async def drive(proxy: Proc, models_dir: Path, until: float) -> dict[str, Any]:
    """Traffic until the shadow verdict is in the state (or `until`); returns the experiment view."""
    test_set = read_test_set(models_dir / "test_set.json")
    rng = random.Random(5)
    view: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            while time.monotonic() < until and not view.get("done"):
                body = orjson.dumps(infer_body([test_set.x[rng.randrange(len(test_set.y))]]))
                headers = {"x-user-id": f"u{rng.randrange(3000)}", "content-type": "application/json"}
                async with session.post(
                    f"{proxy.url}/v2/models/digits/infer", data=body, headers=headers
                ) as r:
                    assert r.status == 200
                    await r.read()

        workers = [asyncio.get_running_loop().create_task(worker()) for _ in range(12)]
        while time.monotonic() < until:
            async with session.get(f"{proxy.admin_url}/experiments/digits-shadow") as r:
                view = await r.json()
            if view["state"]["extra"].get("shadow_verdicts", {}).get("int8") == "OK":
                view["done"] = True
                break
            await asyncio.sleep(0.2)
        await asyncio.gather(*workers)
    return view


async def test_int8_shadow_agrees_with_fp32_and_the_verdict_is_everywhere(
    models: tuple[Proc, Proc], outrider: OutriderFactory, models_dir: Path, tmp_path: Path
) -> None:
    stable, shadow = models
    variants = (Variant.stable(stable.url), Variant.candidate(stable.url), Variant.shadow(shadow.url, "int8"))
    text = EXPERIMENT.adding(*variants).yaml()
    data_dir = tmp_path / "data"
    proxy = outrider(text, data_dir=data_dir)
    view = await drive(proxy, models_dir, time.monotonic() + 90)
    assert view["state"]["extra"]["shadow_verdicts"] == {"int8": "OK"}
    live = view["analysis"]["snapshot"]["shadow"]["int8"]
    offline = await asyncio.to_thread(offline_agreement, models_dir)
    assert live["agreement"]["ci_low"] <= offline <= live["agreement"]["ci_high"]
    assert live["agreement"]["ci_low"] > 0.99
    proxy.stop()

    config = tmp_path / "shadow.yaml"
    config.write_text(text)

    def offline_tools() -> tuple[dict[str, Any], str]:
        export = subprocess.run(
            outrider_cmd("export", "--data-dir", str(data_dir)), capture_output=True, check=True
        )
        (tmp_path / "e.jsonl").write_bytes(export.stdout)
        out = subprocess.run(
            outrider_cmd("analyze", str(tmp_path / "e.jsonl"), "-c", str(config), "--json"),
            capture_output=True,
            check=True,
        )
        report = tmp_path / "report"
        subprocess.run(
            outrider_cmd(
                "report", "--data-dir", str(data_dir), "--experiment", "digits-shadow", "-o", str(report)
            ),
            capture_output=True,
            check=True,
        )
        return orjson.loads(out.stdout), (report / "report.md").read_text()

    analyzed, markdown = await asyncio.to_thread(offline_tools)
    assert analyzed["shadow"]["int8"]["verdict"] == "OK"
    assert "| int8 | **OK** |" in markdown


GATED = EXPERIMENT.with_(
    name="digits-gated",
    shadow=dataclasses.replace(COPIES, require_ok=True, mirror=Mirror(("POST",), ("/infer",))),
)
"""The same, with the canary held until the shadow's verdict is OK (the candidate is the int8 model too)."""


async def test_the_canary_waits_for_the_shadow_verdict(
    models: tuple[Proc, Proc], outrider: OutriderFactory, models_dir: Path, tmp_path: Path
) -> None:
    stable, int8 = models
    variants = (Variant.stable(stable.url), Variant.candidate(int8.url), Variant.shadow(int8.url, "int8"))
    proxy = outrider(GATED.adding(*variants).yaml(), data_dir=tmp_path / "data")
    test_set = read_test_set(models_dir / "test_set.json")
    seen: list[tuple[str, str]] = []  # (phase at the time, variant)
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 90
        phase = "shadowing"
        for i in range(20_000):
            if time.monotonic() > deadline:
                break
            body = orjson.dumps(infer_body([test_set.x[i % len(test_set.y)]]))
            headers = {"x-user-id": f"u{i % 3000}", "content-type": "application/json"}
            async with session.post(f"{proxy.url}/v2/models/digits/infer", data=body, headers=headers) as r:
                assert r.status == 200
                seen.append((phase, r.headers["x-outrider-variant"]))
            if i % 100 == 99:
                async with session.get(f"{proxy.admin_url}/experiments/digits-gated") as r:
                    view = await r.json()
                if phase == "shadowing" and view["phase"] == "progressing":
                    # the router applied the new weights before the state was visible here
                    phase = "progressing"
                    seen.append(("switch", ""))
                if phase == "progressing" and sum(1 for p, v in seen if p == "progressing") > 500:
                    break
    assert phase == "progressing", view
    history = view["state"]["history"]
    assert history[0]["reason"] == "created"  # version 1
    assert history[1]["decision"] == "SHADOW_OK"
    assert view["weights"] == {"stable": 90.0, "candidate": 10.0}
    switch = seen.index(("switch", ""))
    before = [
        v for p, v in seen[: switch - 100] if p == "shadowing"
    ]  # a poll's worth of slack before the switch
    assert before
    assert set(before) == {"stable"}
    after = [v for p, v in seen[switch:] if p == "progressing"]
    assert "candidate" in after


SHADOW_ONLY = ExperimentDoc(
    "digits-shadow",
    (),
    ShadowOnly(),
    prefix="/v2/models/digits",
    salt="shadow-only",
    shadow=dataclasses.replace(COPIES, compare=Compare("oip-top1", agreement_min=0.95)),
)


async def test_a_shadow_only_experiment_ends_on_its_verdict_with_a_report(
    models: tuple[Proc, Proc], outrider: OutriderFactory, models_dir: Path, tmp_path: Path
) -> None:
    stable, shadow = models
    text = SHADOW_ONLY.adding(Variant.stable(stable.url), Variant.shadow(shadow.url, "int8")).yaml()
    data_dir = tmp_path / "data"
    proxy = outrider(text, data_dir=data_dir)
    view = await drive(proxy, models_dir, time.monotonic() + 90)
    assert view["state"]["extra"]["shadow_verdicts"] == {"int8": "OK"}
    async with aiohttp.ClientSession() as session:

        async def promoted() -> dict[str, Any] | None:
            """The state once promoted: the state change follows the verdict within a look."""
            async with session.get(f"{proxy.admin_url}/experiments/digits-shadow") as r:
                state: dict[str, Any] = (await r.json())["state"]
            return state if state["phase"] == "promoted" else None

        state = await eventually(promoted, 5.0)
    assert state["weights"] == {"stable": 100.0}  # nothing moves: the verdict is the result
    assert state["history"][-1]["decision"] == "SHADOW_OK"
    report = data_dir / "reports" / "digits-shadow" / "report.md"
    await wait_until(report.exists, 5.0)
    assert "int8" in report.read_text()
    proxy.stop()
    records = await exported(data_dir)
    assert records
    assert {r["variant"] for r in records} == {"stable"}
    assert all(r["shadows"] for r in records[:50])
    config = tmp_path / "shadow-only.yaml"
    config.write_text(text)
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    out = await asyncio.to_thread(
        subprocess.run,
        outrider_cmd("analyze", str(jsonl), "-c", str(config), "--json"),
        capture_output=True,
        check=True,
    )
    analyzed = orjson.loads(out.stdout)
    assert analyzed["shadow"]["int8"]["verdict"] == "OK"
    assert analyzed["decision"] == "SHADOW_OK"  # the same result offline
