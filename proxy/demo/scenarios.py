"""`outrider demo`: real model versions behind outrider, thousands of sticky users; outrider decides alone.

Usage: outrider demo [--scenario regression|better|aa|latency|shadow|llm|all|everything]
Each scenario starts two model servers (`serve-model`, with the fault knobs it needs), outrider with a canary
experiment judged by the sequential statistics, and a load of many users; it shows live progress, ends with
outrider's own decision and the report's path, prints a per-variant scorecard, and stops what it started.
`all` (the default) runs `regression` (rolled back) and then `better` (promoted through every step). `llm`
(proxy.demo.llm) streams chat completions and rolls back a candidate whose first token comes 40% later.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.builder import Analysis, Canary, Compare, ExperimentDoc, Guardrail, Shadow, Variant
from modelserver.testset import read_test_set
from plumbing.http_client import http_session
from proxy.demo.load import Load, Tally, drive
from proxy.demo.report import offline_agreement, print_progress, print_scorecard, print_shadow
from proxy.runtime.children import Child, outrider_exe

STEPS = (5, 10, 25, 50)
CONFIG = ExperimentDoc(
    "digits",
    (),
    Canary(STEPS, min_requests_per_step=500),
    prefix="/v2/models/digits",
    analysis=Analysis(
        (Guardrail("error_rate", 1.2), Guardrail("latency_gmean", 1.10)),
        interval="500ms",
        alpha=0.05,
        max_requests=60000,
        on_inconclusive="rollback",
    ),
)
"""The demo's canary, named and salted per scenario, between the variants it adds."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """Two model versions and what outrider is expected to decide."""

    name: str
    story: str
    stable: tuple[str, ...]
    candidate: tuple[str, ...]
    expect: str
    """`promoted` / `rolled_back` (the canary's end), or `shadow:OK` / `shadow:FAIL` (the shadow verdict)."""
    shadow: tuple[str, ...] | None = None
    """The shadow model server (model file and knobs), when the scenario mirrors traffic."""


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "regression",
            "candidate: the weaker model, failing 5x as often (5% vs 1%)",
            ("digits.onnx", "--error-rate", "0.01"),
            ("digits-weak.onnx", "--error-rate", "0.05"),
            "rolled_back",
        ),
        Scenario(
            "better",
            "candidate: the int8 model, failing less (0.5% vs 2%)",
            ("digits.onnx", "--error-rate", "0.02"),
            ("digits-int8.onnx", "--error-rate", "0.005"),
            "promoted",
        ),
        Scenario(
            "aa",
            "candidate: the same fp32 model (A/A)",
            ("digits.onnx", "--error-rate", "0.01"),
            ("digits.onnx", "--error-rate", "0.01"),
            "promoted",
        ),
        Scenario(
            "latency",
            "candidate: the int8 model, 15 ms slower",
            ("digits.onnx",),
            ("digits-int8.onnx", "--latency-ms", "15"),
            "rolled_back",
        ),
        Scenario(
            "shadow",
            "stable: fp32; the int8 model as a shadow, compared answer by answer (oip-top1, ≥ 99% agreement)",
            ("digits.onnx",),
            ("digits.onnx",),
            "shadow:OK",
            shadow=("digits-int8.onnx",),
        ),
    )
}

SHADOW_SECTION = Shadow(sample=1.0, timeout="1s", compare=Compare("oip-top1", agreement_min=0.99))


def experiment_text(scenario: Scenario, urls: list[str]) -> str:
    """The demo's experiment file; the shadow scenario adds its shadow and never advances the canary."""
    doc = CONFIG.with_(name=f"digits-{scenario.name}", salt=f"digits-demo-{scenario.name}")
    doc = doc.adding(Variant.stable(urls[0]), Variant.candidate(urls[1]))
    if scenario.shadow is None:
        return doc.yaml()
    never = Canary(STEPS, min_requests_per_step=10000000)
    return doc.adding(Variant.shadow(urls[2], "int8")).with_(strategy=never, shadow=SHADOW_SECTION).yaml()


def finished(view: Mapping[str, Any], scenario: Scenario) -> bool:
    """The canary ended, or (shadow scenario) the shadow has a verdict."""
    if scenario.shadow is not None:
        verdicts = (view.get("state") or {}).get("extra", {}).get("shadow_verdicts", {})
        return bool(verdicts.get("int8", "NOT_ENOUGH_DATA") != "NOT_ENOUGH_DATA")
    return view.get("phase") in ("promoted", "rolled_back")


def outcome(view: Mapping[str, Any], scenario: Scenario) -> str:
    """What happened, in the terms of `Scenario.expect`."""
    if scenario.shadow is not None:
        verdicts = (view.get("state") or {}).get("extra", {}).get("shadow_verdicts", {})
        return f"shadow:{verdicts.get('int8', 'NOT_ENOUGH_DATA')}"
    return str(view.get("phase"))


async def watch(
    admin: str, name: str, tally: Tally, stop: asyncio.Event, tty: bool, scenario: Scenario
) -> dict[str, Any]:
    """Poll the admin API, print progress, set `stop` when the scenario is decided; returns the last view."""
    view: dict[str, Any] = {}
    async with http_session() as session:
        while not stop.is_set():
            async with session.get(f"{admin}/experiments/{name}") as r:
                view = await r.json()
            print_progress(name, view, tally, tty)
            if finished(view, scenario):
                stop.set()
                break
            await asyncio.sleep(0.5)
    return view


async def outcome_counters(admin_url: str) -> dict[str, float]:
    """The outcome counters from outrider's /metrics."""
    async with http_session() as session, session.get(f"{admin_url}/metrics") as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("outrider_outcomes_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def start_servers(scenario: Scenario, models: Path, exe: str, tmp: Path, into: list[Child]) -> None:
    """Start the scenario's model servers (stable, candidate, and its shadow if any), each on a free port,
    into `into` as each starts (so that the caller stops those that did if a later one fails)."""
    servers = [("stable", scenario.stable), ("candidate", scenario.candidate)]
    if scenario.shadow is not None:
        servers.append(("shadow", scenario.shadow))
    for role, (model, *knobs) in servers:
        cmd = [exe, "serve-model", "--model", str(models / model), "--name", "digits", "--port", "0", *knobs]
        into.append(await Child.start(cmd, tmp / f"{scenario.name}-{role}.log"))


async def run_scenario(scenario: Scenario, args: argparse.Namespace, tmp: Path) -> bool:
    """One scenario end to end; True when outrider decided as expected."""
    models = Path(args.models_dir)
    exe = outrider_exe()
    children: list[Child] = []
    print(f"\n=== {scenario.name}: {scenario.story}")
    try:
        await start_servers(scenario, models, exe, tmp, children)
        config = tmp / f"{scenario.name}.yaml"
        config.write_text(experiment_text(scenario, [c.url for c in children]))
        data_dir = Path(args.data_dir) / scenario.name
        # Each run is a new experiment: an earlier run's outcomes and state would be replayed as history.
        await asyncio.to_thread(shutil.rmtree, data_dir, True)
        run = [exe, "run", "-c", str(config), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
        # the demo stops its own sidecar once the load is over: no balancer to wait for
        run += ["--data-dir", str(data_dir), "--drain-delay", "0"]
        sidecar = await Child.start(run, tmp / f"{scenario.name}-outrider.log")
        children.append(sidecar)
        test_set = await asyncio.to_thread(read_test_set, models / "test_set.json")
        tally, stop = Tally(), asyncio.Event()
        load = Load(users=args.users, concurrency=args.concurrency, max_seconds=args.max_seconds)
        name = f"digits-{scenario.name}"
        driving = asyncio.get_running_loop().create_task(
            drive(f"{sidecar.url}/v2/models/digits/infer", test_set, load, stop, tally)
        )
        view = await watch(sidecar.admin_url, name, tally, stop, sys.stdout.isatty(), scenario)
        stop.set()
        elapsed = await driving
        await asyncio.sleep(0.3)  # the last outcome batch commits
        counters = await outcome_counters(sidecar.admin_url)
        report = data_dir / "reports" / name / "report.md"
        print_scorecard(tally, elapsed, view, report, counters)
        if scenario.shadow is not None:
            print_shadow(view, await asyncio.to_thread(offline_agreement, models))
        return outcome(view, scenario) == scenario.expect
    finally:
        for child in reversed(children):
            await child.stop()
        print(f"stopped {len(children)} processes")


async def run_demo(args: argparse.Namespace) -> int:
    """Run the chosen scenarios; 0 when every decision was the expected one."""
    names = ["regression", "better"] if args.scenario == "all" else [args.scenario]
    if args.scenario == "everything":
        names = [*SCENARIOS, "llm"]
    if names != ["llm"] and not (Path(args.models_dir) / "digits.onnx").exists():
        print(f"outrider demo: no models in {args.models_dir}/ — run `make models` first", file=sys.stderr)
        return 2
    results: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="outrider-demo-") as tmp:
        for name in names:
            if name == "llm":  # text servers, no model files (imported here: it imports this module)
                from proxy.demo.llm import run_llm_scenario

                results[name] = await run_llm_scenario(args, Path(tmp))
            else:
                results[name] = await run_scenario(SCENARIOS[name], args, Path(tmp))
    print()
    for name, ok in results.items():
        expect = "rolled_back" if name == "llm" else SCENARIOS[name].expect
        print(f"{name}: {'as expected' if ok else 'NOT as expected'} ({expect})")
    return 0 if all(results.values()) else 1
