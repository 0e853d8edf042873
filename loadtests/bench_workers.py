"""`outrider run --workers 1` vs `--workers 2`, and the Redis store vs the embedded one, in front of nginx
answering a fixed body: throughput, and CPU per request of outrider (every process of it), wrk, nginx and
redis-server side by side, since they all share the machine's cores.

Usage: python -m loadtests.bench_workers [--rounds 3] [--seconds 7] [--connections 32] [--no-docs]
(`make bench` runs it after its own rounds; `python -m loadtests.bench --no-workers` skips it.)

Three outrider instances run at once, each with bench_dataplane's experiment (a 10% canary sticky on
x-user-id, outcome records on, no analysis): `--workers 1` and `--workers 2` on their own SQLite data dirs,
and `--workers 1 --store redis://…` on a redis-server started here. In each round every target gets a 1 s
warm-up and then `wrk -t1 -c{connections} -d{seconds}s` with loadtests/infer.lua (1,000 users), in an order
that rotates from round to round; the CPU time of each process group is read from /proc around the run
(wrk's from this process' reaped children). Medians over the rounds are printed, written to
bench-out/bench-workers.json and to the generated section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from experiments.builder import Variant
from loadtests.bench_dataplane import BODY, EXPERIMENT, PATH, outrider_run
from loadtests.bench_doc import update_doc
from loadtests.bench_load import LUA, run_tool, warm_up
from loadtests.bench_machine import machine
from loadtests.bench_parse import parse_wrk
from loadtests.bench_procs import busy_seconds, cpu_seconds, descendants
from loadtests.bench_workers_report import (
    BEGIN,
    END,
    TARGETS,
    Sample,
    render_markdown,
    render_text,
    summarize,
)
from loadtests.nginx import Nginx, fixed_server, nginx_exe
from loadtests.redis_server import REDIS_SERVER, RedisServer, running_redis
from proxy.runtime.children import Child

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Bed:
    """The started processes: outrider by target, the upstream, the Redis store."""

    outriders: dict[str, Child]
    nginx: Nginx
    redis: RedisServer

    def groups(self, target: str) -> dict[str, list[int]]:
        """Process ids whose CPU is measured around a run of `target` (wrk's is read after it exits)."""
        root = self.outriders[target].proc.pid
        workers = descendants(root)
        assert self.redis.popen is not None
        return {
            "outrider": [root, *workers],
            "supervisor": [root] if workers else [],
            "nginx": list(self.nginx.pids()),
            "redis": [self.redis.popen.pid],
        }


def target_args(target: str, redis_url: str) -> list[str]:
    """The `outrider run` arguments that make `target`."""
    return {
        "workers-1": ["--workers", "1"],
        "workers-2": ["--workers", "2"],
        "redis": ["--workers", "1", "--store", redis_url],
    }[target]


@asynccontextmanager
async def started_bed(tmp: Path) -> AsyncIterator[Bed]:
    """nginx, redis-server and the three outriders; each stopped by its process id on the way out."""
    async with AsyncExitStack() as stack:
        ngx = await Nginx.start(tmp / "nginx", [fixed_server("model", PATH, b'{"outputs":[]}')])
        stack.push_async_callback(ngx.child.stop)
        redis = stack.enter_context(running_redis(tmp / "redis" / "redis.log"))
        config = tmp / "experiment.yaml"
        upstream = ngx.url("model")
        config.write_text(EXPERIMENT.adding(Variant.stable(upstream), Variant.candidate(upstream)).yaml())
        outriders: dict[str, Child] = {}
        for target in TARGETS:
            cmd = outrider_run(config, tmp / target, *target_args(target, redis.url))
            outriders[target] = await Child.start(cmd, tmp / f"{target}.log")
            stack.push_async_callback(outriders[target].stop)
        yield Bed(outriders, ngx, redis)


def children_cpu() -> float:
    """CPU seconds of this process' children that have ended and been reaped (wrk, once it exits)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def saturate(
    bed: Bed, target: str, body: Path, seconds: float, connections: int, round_no: int
) -> Sample:
    """One wrk run against `target` with the CPU of every process group read around it."""
    groups = bed.groups(target)
    before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    before |= {"wrk": children_cpu(), "machine": busy_seconds()}
    started = time.monotonic()
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(LUA)]
    result = parse_wrk(
        await run_tool([*argv, bed.outriders[target].url + PATH, "--", str(body), "1000"], seconds)
    )
    wall = time.monotonic() - started
    after = {name: cpu_seconds(pids) for name, pids in groups.items()}
    after |= {"wrk": children_cpu(), "machine": busy_seconds()}
    if bed.groups(target)["outrider"] != groups["outrider"]:
        raise RuntimeError(f"{target}: a worker was replaced during the run; its CPU would be lost")
    if result.errors:
        raise RuntimeError(f"{target}: {result.errors} errors under load")
    return Sample(round_no, target, result, wall, {k: after[k] - before[k] for k in after})


def _progress(s: Sample) -> str:
    per = "  ".join(f"{g} {s.us_per_request(g):6.1f}" for g in ("outrider", "wrk", "nginx", "redis"))
    other = f"other {s.cores('other'):.2f} cores"
    return f"round {s.round} {s.target:<9} {s.result.rps:>9,.0f} req/s  CPU µs/req: {per}  {other}"


async def run_rounds(bed: Bed, body: Path, rounds: int, seconds: float, connections: int) -> list[Sample]:
    """Every target once per round, in an order rotated by one each round (drift hits all alike)."""
    samples: list[Sample] = []
    for round_no in range(1, rounds + 1):
        k = (round_no - 1) % len(TARGETS)
        for target in (*TARGETS[k:], *TARGETS[:k]):
            await warm_up(bed.outriders[target].url + PATH, body)
            samples.append(await saturate(bed, target, body, seconds, connections, round_no))
            print(_progress(samples[-1]), flush=True)
    return samples


async def bench_workers(
    rounds: int, seconds: float, connections: int, out: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start the test bed, run the rounds, stop everything; (summary, facts)."""
    started = time.monotonic()
    facts: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load": f"wrk -t1 -c{connections} -d{seconds:g}s --latency -s loadtests/infer.lua",
    }
    with tempfile.TemporaryDirectory(prefix="outrider-bench-workers-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "body.json").write_bytes(BODY)
        async with started_bed(tmp) as bed:
            print(
                f"workers bench: {len(TARGETS)} outriders, nginx and redis-server up; logs in {tmp}",
                flush=True,
            )
            samples = await run_rounds(bed, tmp / "body.json", rounds, seconds, connections)
    facts["wall_s"] = time.monotonic() - started
    summary = summarize(samples)
    runs = [
        {
            "round": s.round,
            "target": s.target,
            "rps": s.result.rps,
            "requests": s.result.requests,
            "wall_s": s.wall_s,
            "cpu_s": s.cpu_s,
        }
        for s in samples
    ]
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    (out / "bench-workers.json").write_bytes(
        orjson.dumps({"facts": facts, "summary": summary, "runs": runs}, option=orjson.OPT_INDENT_2)
    )
    return summary, facts


def missing_tools() -> list[str]:
    """What this benchmark needs and does not find."""
    missing = [] if shutil.which("wrk") else ["wrk"]
    missing += [] if nginx_exe() else ["nginx"]
    return missing + ([] if Path(REDIS_SERVER).exists() else ["redis-server"])


async def run(
    rounds: int, seconds: float, out: Path, doc: Path | None, connections: int = 32, command: str = ""
) -> dict[str, Any]:
    """Measure, print, and rewrite the generated section of `doc` (unless None); the summary. `command`: how
    the run was started, for the doc (this module's own command line by default)."""
    summary, facts = await bench_workers(rounds, seconds, connections, out)
    own = f"--rounds {rounds} --seconds {seconds:g} --connections {connections}"
    facts["command"] = command or f"python -m loadtests.bench_workers {own}"
    print(render_text(summary), flush=True)
    if doc is not None:
        update_doc(doc, render_markdown(summary, facts), BEGIN, END)
        print(f"wrote the workers figures in {doc}", flush=True)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit 2 when a tool is missing."""
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench_workers", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; medians are taken over them"
    )
    parser.add_argument("--seconds", type=float, default=7.0, help="duration of each measured wrk run")
    parser.add_argument(
        "--connections", type=int, default=32, help="wrk's connections (at least 32: saturated)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench-out")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite the figures in --doc")
    args = parser.parse_args(argv)
    if missing := missing_tools():
        print(f"missing {', '.join(missing)}: `make bench` installs them (apt-get)", file=sys.stderr)
        return 2
    doc = None if args.no_docs else args.doc
    asyncio.run(run(args.rounds, args.seconds, args.out, doc, args.connections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
