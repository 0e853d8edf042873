"""`make bench`: one load sent directly, through nginx, through outrider and through a bare aiohttp forwarder.

Two upstreams (the digits model server; nginx answering a fixed body) × four targets × two loads (wrk
saturating; hey at a fixed 400 req/s), in interleaved rounds; prints medians, the ratios outrider/direct and
outrider/nginx, each proxy's CPU time per request, and a py-spy profile of outrider. Writes
bench-out/bench.json and the generated section of docs/benchmarks.md. Then `--workers 1` vs `--workers 2` and
the Redis store vs the embedded one (loadtests/bench_workers.py; `--no-workers` skips it). Everything runs on
127.0.0.1.
Usage: python -m loadtests.bench [--rounds 3] [--seconds 7] [--no-profile | --profile] [--no-workers]
       [--no-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from loadtests.bench_doc import render_markdown, update_doc
from loadtests.bench_fleet import CASES, Target, fleet
from loadtests.bench_load import LOADS, measure, warm_up
from loadtests.bench_machine import machine
from loadtests.bench_profile import Profile, profile, render_profile
from loadtests.bench_report import Run, render_text, summarize, write_json
from loadtests.bench_sse import sse_case
from loadtests.bench_workers import missing_tools
from loadtests.bench_workers import run as run_workers
from loadtests.haproxy import haproxy_exe
from loadtests.nginx import nginx_exe
from modelserver.testset import infer_body, read_test_set
from proxy.runtime import loop

REPO = Path(__file__).resolve().parents[1]
PROFILE_SECONDS = 8.0


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; medians are taken over them"
    )
    parser.add_argument("--seconds", type=float, default=7.0, help="duration of each measured load run")
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench-out", help="where bench.json and raw files go"
    )
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite the figures in --doc")
    parser.add_argument(
        "--no-workers",
        action="store_true",
        help="skip `--workers 1` vs `--workers 2` and the Redis store (loadtests/bench_workers.py)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--profile", action="store_true", help="only profile outrider with py-spy (no rounds)")
    mode.add_argument("--no-profile", action="store_true", help="skip the py-spy profile after the rounds")
    return parser


def _progress(run: Run) -> str:
    r = run.result
    cpu = "" if r.cpu_us_per_request is None else f"  CPU {r.cpu_us_per_request:,.0f} µs/req"
    return (
        f"round {run.round} {run.case:<6} {run.target:<9} {run.load:<10} {r.rps:>9,.1f} req/s  "
        f"p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:7.2f} ms  errors {r.errors}{cpu}"
    )


async def run_rounds(targets: list[Target], body: Path, rounds: int, seconds: float) -> list[Run]:
    """for round: for case: for target: warm up, then each load once (so drift hits every target alike)."""
    runs: list[Run] = []
    for round_no in range(1, rounds + 1):
        for case in CASES:
            for target in (t for t in targets if t.case == case):
                await warm_up(target.url, body, token=target.token)
                for load in LOADS:
                    result = await measure(load, target.url, body, seconds, target.pids, target.token)
                    runs.append(Run(round_no, case, target.name, load.name, result))
                    print(_progress(runs[-1]), flush=True)
    return runs


async def profile_outrider(targets: list[Target], body: Path, out: Path) -> Profile:
    """py-spy on outrider in front of the fixed-body upstream, where the proxy's own costs show best."""
    target = next(t for t in targets if t.case == "fixed" and t.name == "outrider")
    await warm_up(target.url, body)
    print(f"profiling outrider with py-spy for {PROFILE_SECONDS:g} s under wrk ...", flush=True)
    prof = await profile(target.pids[0], target.url, body, PROFILE_SECONDS, out)
    print(render_profile(prof), flush=True)
    return prof


async def bench(args: argparse.Namespace) -> int:
    """Start the fleet, run the rounds (or only the profile), report, stop the fleet."""
    started = time.monotonic()
    facts: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "settings": {"rounds": args.rounds, "seconds": args.seconds},
    }
    test_set = await asyncio.to_thread(read_test_set, args.models_dir / "test_set.json")
    body = orjson.dumps(infer_body([test_set.x[0]]))
    with tempfile.TemporaryDirectory(prefix="outrider-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "body.json").write_bytes(body)
        async with fleet(tmp, args.models_dir, body) as targets:
            print(
                f"started {len(targets)} targets in {time.monotonic() - started:.1f} s; logs in {tmp}",
                flush=True,
            )
            if args.profile:
                await profile_outrider(targets, tmp / "body.json", args.out)
                return 0
            runs = await run_rounds(targets, tmp / "body.json", args.rounds, args.seconds)
            prof = None if args.no_profile else await profile_outrider(targets, tmp / "body.json", args.out)
        print("streaming case: 100 SSE answers per target ...", flush=True)
        facts["sse"] = await sse_case(tmp)
        print(facts["sse"], flush=True)
    cells = summarize(runs)
    print(render_text(cells, args.seconds, args.rounds))
    facts["wall_s"] = time.monotonic() - started
    facts["profile"] = prof
    write_json(args.out / "bench.json", runs, cells, facts)
    if not args.no_docs:
        update_doc(args.doc, render_markdown(cells, facts, prof))
    if not args.no_workers:
        print("workers and stores: --workers 1 vs 2, Redis vs SQLite ...", flush=True)
        command = f"python -m loadtests.bench --rounds {args.rounds} --seconds {args.seconds:g}"
        await run_workers(
            args.rounds, args.seconds, args.out, None if args.no_docs else args.doc, command=command
        )
    print(
        f"\nwall time {facts['wall_s']:.0f} s; wrote {args.out / 'bench.json'}"
        + ("" if args.no_docs else f" and the figures in {args.doc}")
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit 2 when a tool or the models are missing."""
    args = build_parser().parse_args(argv)
    missing = [tool for tool in ("wrk", "hey") if shutil.which(tool) is None]
    missing += [] if nginx_exe() else ["nginx"]
    missing += [] if haproxy_exe() else ["haproxy"]
    missing += [] if args.no_workers or args.profile else [t for t in missing_tools() if t not in missing]
    if missing:
        print(f"missing {', '.join(missing)}: `make bench` installs them (apt-get)", file=sys.stderr)
        return 2
    if not (args.models_dir / "digits.onnx").exists():
        print(f"no models in {args.models_dir}: run `make models`", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    return loop.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
