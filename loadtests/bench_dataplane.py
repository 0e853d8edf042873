"""The data planes side by side: CPU µs per request of the outrider process and the p50 it adds, aiohttp vs
native, in front of nginx answering a fixed body (the upstream costs next to nothing, so the proxy is what
is measured).

Usage: .venv/bin/python -m loadtests.bench_dataplane [--rounds 3] [--seconds 5] [--out DIR]

Per round and plane (rounds interleaved, planes alternating, so both see the same machine):
`wrk -t1 -c32 -d{seconds}s -s loadtests/infer.lua` (1000 sticky users, a 100-byte JSON POST) with the
process' utime+stime read from /proc/PID/stat around it, then `wrk -t1 -c1` for the latency of one connection;
nginx is measured directly with `-c1` too, and "added p50" is the plane's p50 minus nginx's. Medians printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from experiments.builder import Canary, ExperimentDoc, Variant
from loadtests.bench_load import run_tool
from loadtests.bench_parse import LoadResult, parse_wrk
from loadtests.bench_procs import cpu_seconds
from loadtests.nginx import Nginx, fixed_server
from proxy.runtime.children import Child, outrider_exe

PATH = "/v2/models/m/infer"
BODY = b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[0.1,0.2,0.3,0.4]}],"id":"1"}'
EXPERIMENT = ExperimentDoc("bench", (), Canary((10, 25, 50)), prefix="/v2")
"""A canary whose two arms are the same upstream (added when it runs)."""
PLANES = ("aiohttp", "native")


def outrider_run(config: Path, data_dir: Path, *args: str) -> list[str]:
    """`outrider run` with `config` on ephemeral 127.0.0.1 ports, no drain delay, and `args`."""
    ports = ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
    return [
        outrider_exe(),
        "run",
        "-c",
        str(config),
        *ports,
        "--data-dir",
        str(data_dir),
        "--drain-delay",
        "0",
        *args,
    ]


async def wrk(url: str, body: Path, seconds: float, connections: int) -> LoadResult:
    """One wrk run with the infer script; its parsed figures."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", "loadtests/infer.lua"]
    return parse_wrk(await run_tool([*argv, url, "--", str(body), "1000"], seconds))


async def saturate(child: Child, body: Path, seconds: float) -> float:
    """CPU µs per request of `child` under 32 connections."""
    pid = child.proc.pid
    before = cpu_seconds([pid])
    result = await wrk(child.url + PATH, body, seconds, 32)
    used = cpu_seconds([pid]) - before
    if result.errors:
        raise RuntimeError(f"{result.errors} errors under load")
    return used / result.requests * 1e6


async def bench(rounds: int, seconds: float, out: Path) -> None:
    """Start nginx and one outrider per plane, measure `rounds` interleaved rounds, print the medians."""
    body = out / "body.json"
    body.write_bytes(BODY)
    ngx = await Nginx.start(out / "nginx", [fixed_server("model", PATH, b'{"outputs":[]}')])
    children: dict[str, Child] = {}
    try:
        config = out / "experiment.yaml"
        upstream = ngx.url("model")
        config.write_text(EXPERIMENT.adding(Variant.stable(upstream), Variant.candidate(upstream)).yaml())
        for plane in PLANES:
            cmd = outrider_run(config, out / plane, "--data-plane", plane)
            children[plane] = await Child.start(cmd, out / f"{plane}.log")
            await wrk(children[plane].url + PATH, body, 1.0, 8)  # warm-up
        cpu: dict[str, list[float]] = {p: [] for p in PLANES}
        p50: dict[str, list[float]] = {p: [] for p in (*PLANES, "nginx")}
        for r in range(rounds):
            for plane in PLANES if r % 2 == 0 else PLANES[::-1]:
                cpu[plane].append(await saturate(children[plane], body, seconds))
                p50[plane].append((await wrk(children[plane].url + PATH, body, seconds, 1)).p50_ms)
            p50["nginx"].append((await wrk(ngx.url("model") + PATH, body, seconds, 1)).p50_ms)
            print(f"round {r + 1}: cpu µs/req {cpu} p50 ms {p50}", flush=True)
        direct = statistics.median(p50["nginx"])
        for plane in PLANES:
            added = (statistics.median(p50[plane]) - direct) * 1000
            print(
                f"{plane:8s} CPU {statistics.median(cpu[plane]):7.1f} µs/request (median of {rounds}),"
                f" p50 at 1 connection {statistics.median(p50[plane]):.3f} ms (+{added:.0f} µs over nginx)"
            )
    finally:
        for child in children.values():
            await child.stop()
        await ngx.child.stop()


def main() -> None:
    """Parse the flags and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        asyncio.run(bench(args.rounds, args.seconds, args.out))
        return
    with tempfile.TemporaryDirectory(prefix="bench-dataplane-") as tmp:
        asyncio.run(bench(args.rounds, args.seconds, Path(tmp)))


if __name__ == "__main__":
    main()
