"""`outrider demo --scenario llm`: two text servers behind outrider, streamed chat completions, many users.

The candidate's first token comes 40% later (70 ms against 50 ms) while its whole answer takes as long as
stable's (its other 15 tokens come faster: 8.67 ms apart against 10 ms), so the latency guardrail sees
nothing and the `ttft_gmean` guardrail rolls it back. The demo then runs `outrider export` and `outrider
analyze` on the export and prints whether the offline replay decides the same, at the same record.
Usage: await run_llm_scenario(args, tmp_dir)  (proxy.demo.scenarios dispatches here)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from experiments.builder import Analysis, Canary, ExperimentDoc, Guardrail, Variant
from experiments.openai_stream import CompletionStream
from plumbing.http_client import http_session
from proxy.demo.load import Load, Tally
from proxy.demo.report import quantile
from proxy.demo.scenarios import Scenario, outcome_counters, watch
from proxy.runtime.children import Child, outrider_exe

NAME = "llm-canary"
TOKENS = 16
SCENARIO = Scenario(
    "llm",
    "candidate: first token 40% later (70 vs 50 ms), every answer as long (200 ms for 16 tokens)",
    ("--ttft-ms", "50", "--itl-ms", "10"),
    ("--ttft-ms", "70", "--itl-ms", f"{130 / 15:.4f}"),
    "rolled_back",
)
CONFIG = ExperimentDoc(
    NAME,
    (),
    Canary((50,), min_requests_per_step=500),
    prefix="/v1",
    salt="llm-demo",
    analysis=Analysis(
        (Guardrail("error_rate", 1.2), Guardrail("latency_gmean", 1.10), Guardrail("ttft_gmean", 1.10)),
        interval="500ms",
        alpha=0.05,
        max_requests=20000,
        on_inconclusive="rollback",
    ),
)
"""The LLM canary, between the two servers it adds."""


@dataclass
class LlmTally(Tally):
    """The load's view: whole-answer latency (`latencies`) and time to first token per variant."""

    ttft: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


async def _one(
    session: aiohttp.ClientSession, url: str, rng: random.Random, load: Load, tally: LlmTally
) -> None:
    user = f"user-{rng.randrange(load.users)}"
    body = {
        "model": "tiny-llm",
        "messages": [{"role": "user", "content": f"question {rng.randrange(1000)}"}],
        "max_tokens": TOKENS,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    tap = CompletionStream(time.perf_counter)
    started = time.perf_counter()
    tally.sent += 1
    try:
        async with session.post(url, data=orjson.dumps(body), headers={"x-user-id": user}) as r:
            async for chunk in r.content.iter_any():
                tap.feed(chunk)
            variant = r.headers.get("x-outrider-variant", "?")
    except aiohttp.ClientError:
        tally.failed += 1
        return
    tap.close()
    tally.latencies[variant].append((time.perf_counter() - started) * 1000)
    tally.user_variants[user].add(variant)
    if r.status != 200 or tap.first_s is None:
        tally.errors[variant] += 1
        return
    tally.ttft[variant].append((tap.first_s - started) * 1000)


async def drive_llm(url: str, load: Load, stop: asyncio.Event, tally: LlmTally) -> float:
    """Streamed chat completions until `stop`, `max_requests` or `max_seconds`; returns elapsed seconds."""
    rng = random.Random(load.seed)
    started = time.perf_counter()
    deadline = time.monotonic() + load.max_seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while not stop.is_set() and tally.sent < load.max_requests and time.monotonic() < deadline:
            await _one(session, url, rng, load, tally)

    async with http_session() as session:
        await asyncio.gather(*(worker(session) for _ in range(load.concurrency)))
    return time.perf_counter() - started


def print_llm_scorecard(
    tally: LlmTally, elapsed: float, view: dict[str, Any], counters: dict[str, float], report: Path
) -> None:
    """The decision and its reasons, then per variant: requests, errors, time to first token, whole answer."""
    print()
    for entry in (view.get("state") or {}).get("history") or []:
        print(
            f"  v{entry.get('version')}: {entry.get('phase')} step {entry.get('step')} "
            f"— {entry.get('reason')}"
        )
    print(f"outrider decided: {str(view.get('phase')).upper()}; report: {report}")
    total = tally.total
    print(f"{total} streamed answers in {elapsed:.1f}s, {tally.failed} connection failures")
    print(f"{'variant':<10} {'requests':>8} {'errors':>7} {'ttft p50':>9} {'ttft p99':>9} {'total p50':>10}")
    for variant in sorted(tally.latencies):
        lat, ttft = tally.latencies[variant], tally.ttft[variant]
        print(
            f"{variant:<10} {len(lat):>8} {tally.errors[variant]:>7} {quantile(ttft, 0.5):>9.1f} "
            f"{quantile(ttft, 0.99):>9.1f} {quantile(lat, 0.5):>10.1f}"
        )
    produced = counters.get("outrider_outcomes_produced_total", 0.0)
    print(f"outcomes: produced {produced:.0f}; responses seen by the users: {total}")


async def _output(*cmd: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed: {err.decode(errors='replace')[-2000:]}")
    return out


async def print_offline_check(exe: str, data_dir: Path, config: Path, view: dict[str, Any]) -> bool:
    """`outrider export` then `outrider analyze --json` on it: the same decision at the same record?"""
    export = data_dir / "export.jsonl"
    records = await _output(exe, "export", "--data-dir", str(data_dir), "--experiment", NAME)
    await asyncio.to_thread(export.write_bytes, records)
    result = orjson.loads(await _output(exe, "analyze", str(export), "-c", str(config), "--json"))
    history = (view.get("state") or {}).get("history") or [{}]
    live = (history[-1].get("decision"), history[-1].get("at_candidate_requests"))
    offline = (result.get("decision"), result.get("decided_at"))
    agree = live == offline
    print(
        f"outrider analyze on the export: {offline[0]} at {offline[1]} candidate requests; "
        f"live: {live[0]} at {live[1]} — {'agrees' if agree else 'DISAGREES'}"
    )
    return agree


async def run_llm_scenario(args: argparse.Namespace, tmp: Path) -> bool:
    """The LLM scenario end to end; True when outrider rolled back and the offline replay agrees."""
    exe, children = outrider_exe(), []
    print(f"\n=== {SCENARIO.name}: {SCENARIO.story}")
    try:
        for role, knobs in (("stable", SCENARIO.stable), ("candidate", SCENARIO.candidate)):
            cmd = [exe, "serve-model", "--port", "0", "--name", "tiny-llm", *knobs]
            children.append(await Child.start(cmd, tmp / f"llm-{role}.log"))
        config = tmp / "llm.yaml"
        variants = (Variant.stable(children[0].url), Variant.candidate(children[1].url))
        config.write_text(CONFIG.adding(*variants).yaml())
        data_dir = Path(args.data_dir) / SCENARIO.name
        await asyncio.to_thread(shutil.rmtree, data_dir, True)
        run = [exe, "run", "-c", str(config), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
        sidecar = await Child.start(
            [*run, "--data-dir", str(data_dir), "--drain-delay", "0"], tmp / "llm-outrider.log"
        )
        children.append(sidecar)
        tally, stop = LlmTally(), asyncio.Event()
        load = Load(users=args.users, concurrency=max(args.concurrency, 32), max_seconds=args.max_seconds)
        driving = asyncio.get_running_loop().create_task(
            drive_llm(f"{sidecar.url}/v1/chat/completions", load, stop, tally)
        )
        view = await watch(sidecar.admin_url, NAME, tally, stop, sys.stdout.isatty(), SCENARIO)
        stop.set()
        elapsed = await driving
        await asyncio.sleep(0.3)  # the last outcome batch commits
        counters = await outcome_counters(sidecar.admin_url)
        await sidecar.stop()
        report = data_dir / "reports" / NAME / "report.md"
        print_llm_scorecard(tally, elapsed, view, counters, report)
        agrees = await print_offline_check(exe, data_dir, config, view)
        return view.get("phase") == SCENARIO.expect and agrees
    finally:
        for child in reversed(children):
            await child.stop()
        print(f"stopped {len(children)} processes")
