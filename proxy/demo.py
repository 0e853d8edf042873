"""`outrider demo`: two real model versions behind outrider, thousands of sticky users, a printed scorecard.

Usage: outrider demo [--requests N] [--users N] [--canary PCT]
Starts the fp32 digits model (stable) and the deliberately weaker model (candidate) with `serve-model`,
outrider with a canary experiment, sends labelled digits from many users, prints per-variant counts, error
rates, latency quantiles and accuracy, checks stickiness and the outcome invariant, and stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

from modelserver.testset import TestSet, infer_body, read_test_set
from proxy.children import Child, outrider_exe
from proxy.demo_report import print_scorecard

CONFIG = """\
apiVersion: outrider.dev/v1alpha1
kind: Experiment
metadata:
  name: digits-canary
spec:
  match:
    pathPrefix: /v2/models/digits
  variants:
    - {{name: stable, role: stable, upstream: "{stable}"}}
    - {{name: candidate, role: candidate, upstream: "{candidate}"}}
  assignment:
    unit: header:x-user-id
    salt: digits-demo
  strategy:
    canary:
      steps: [{canary}, 100]
      minRequestsPerStep: 2000
"""


@dataclass
class Tally:
    """What the load generator saw, per variant."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    correct: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    user_variants: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    failed: int = 0


async def drive(url: str, test_set: TestSet, args: argparse.Namespace, tally: Tally) -> float:
    """Send `args.requests` labelled requests from `args.users` users; returns the elapsed seconds."""
    rng = random.Random(7)
    jobs: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    for _ in range(args.requests):
        jobs.put_nowait((f"user-{rng.randrange(args.users)}", rng.randrange(len(test_set.y))))

    async def worker(session: aiohttp.ClientSession) -> None:
        while not jobs.empty():
            user, row = jobs.get_nowait()
            body = orjson.dumps(infer_body([test_set.x[row]]))
            started = time.perf_counter()
            try:
                async with session.post(
                    url, data=body, headers={"x-user-id": user, "content-type": "application/json"}
                ) as resp:
                    payload = await resp.read()
                    variant = resp.headers.get("x-outrider-variant", "?")
            except aiohttp.ClientError:
                tally.failed += 1
                continue
            tally.latencies[variant].append((time.perf_counter() - started) * 1000)
            tally.user_variants[user].add(variant)
            if resp.status != 200:
                tally.errors[variant] += 1
                continue
            probs = orjson.loads(payload)["outputs"][0]["data"]
            tally.correct[variant] += int(max(range(10), key=probs.__getitem__) == test_set.y[row])

    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(args.concurrency)))
    return time.perf_counter() - started


async def outcome_counters(admin_url: str) -> dict[str, float]:
    """The outcome counters from outrider's /metrics."""
    async with aiohttp.ClientSession() as session, session.get(f"{admin_url}/metrics") as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("outrider_outcomes_") and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def run_demo(args: argparse.Namespace) -> int:
    """Start everything, drive load, print, stop everything; 0 if all went well."""
    models = Path(args.models_dir)
    if not (models / "digits.onnx").exists():
        print(f"outrider demo: no models in {models}/ — run `make models` first", file=sys.stderr)
        return 2
    test_set = await asyncio.to_thread(read_test_set, models / "test_set.json")
    exe = outrider_exe()
    children: list[Child] = []
    with tempfile.TemporaryDirectory(prefix="outrider-demo-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = Path("outrider-data/demo") if args.keep_data else tmp / "data"
        try:
            print("starting model servers (stable: fp32 MLP, candidate: the weaker model) ...")
            for name, model in (("stable", "digits.onnx"), ("candidate", "digits-weak.onnx")):
                children.append(
                    await Child.start(
                        [
                            exe,
                            "serve-model",
                            "--model",
                            str(models / model),
                            "--name",
                            "digits",
                            "--port",
                            "0",
                        ],
                        tmp / f"{name}.log",
                    )
                )
            config = tmp / "digits-canary.yaml"
            config.write_text(
                CONFIG.format(stable=children[0].url, candidate=children[1].url, canary=args.canary)
            )
            sidecar = await Child.start(
                [
                    exe,
                    "run",
                    "-c",
                    str(config),
                    "--listen",
                    "127.0.0.1:0",
                    "--admin",
                    "127.0.0.1:0",
                    "--data-dir",
                    str(data_dir),
                ],
                tmp / "outrider.log",
            )
            children.append(sidecar)
            print(
                f"outrider on {sidecar.url} (admin {sidecar.admin_url}), canary {args.canary:g}% "
                f"— sending {args.requests} requests from {args.users} users ..."
            )
            tally = Tally()
            elapsed = await drive(f"{sidecar.url}/v2/models/digits/infer", test_set, args, tally)
            await asyncio.sleep(0.3)  # let the last outcome batch commit
            counters = await outcome_counters(sidecar.admin_url)
            return print_scorecard(tally, elapsed, args, counters)
        finally:
            for child in reversed(children):
                await child.stop()
            print(f"stopped {len(children)} processes")
