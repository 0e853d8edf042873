"""CPU per request of two outrider source trees side by side (a change to the hot path, before and after).

Usage: python -m loadtests.bench_ab BEFORE_TREE AFTER_TREE [--rounds 5] [--seconds 5]
  e.g. git worktree add /tmp/before HEAD~1; python -m loadtests.bench_ab /tmp/before .
A tree runs what is built in it: a fresh worktree runs pure Python; `python setup.py build_ext --inplace` in
it compiles the request path as an install does (docs/dataplane.md, "Compiled modules").
Both run the bench's 10% sticky canary in front of one nginx `return 200` upstream and take `wrk -t1 -c32` in
interleaved rounds, so drift on a shared machine hits both alike; the figure is the outrider process' CPU
(user + system, all threads) per answered request, median of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from experiments.builder import Variant
from loadtests.bench_auth import AuthKit
from loadtests.bench_fleet import CANARY_CONFIG, INFER_PATH
from loadtests.nginx import Nginx, fixed_server
from modelserver.testset import infer_body, read_test_set

REPO = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
ANSWER = orjson.dumps(
    {"model_name": "digits", "outputs": [{"name": "label", "shape": [1], "datatype": "INT64", "data": [6]}]}
)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start(
    tree: Path, config: Path, data_dir: Path, log: Path, extra: list[str]
) -> tuple[subprocess.Popen[bytes], str]:
    """outrider from `tree` (its own modules first on the path); its data-port address once it listens."""
    cmd = [sys.executable, "-m", "proxy.cli", "run", "-c", str(config), "--listen", "127.0.0.1:0"]
    cmd += ["--admin", "127.0.0.1:0", "--data-dir", str(data_dir), "--drain-delay", "0", *extra]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen(cmd, cwd=tree, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if '"listening"' in line:
                return proc, str(orjson.loads(line)["address"])
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise SystemExit(f"{tree}: outrider did not start:\n{log.read_text()[-3000:]}")  # the log goes with tmp


def wrk(url: str, body: Path, seconds: float, token: str | None = None) -> int:
    """Answered requests of one `wrk -t1 -c32` run (with `Authorization: Bearer token` when given)."""
    script = str(REPO / "loadtests" / "infer.lua")
    cmd = ["wrk", "-t1", "-c32", f"-d{seconds:g}s", "-s", script, url, "--", str(body)]
    cmd += ["1000", token] if token else []
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    found = re.search(r"(\d+) requests in", out)
    assert found is not None, out
    return int(found.group(1))


async def compare(trees: list[Path], rounds: int, seconds: float, auth: bool) -> dict[Path, list[float]]:
    """µs of CPU per request of each tree, per round (`auth`: with `make bench`'s JWT and rate limit on)."""
    with tempfile.TemporaryDirectory(prefix="outrider-ab-") as tmp_name:
        tmp = Path(tmp_name)
        kit = AuthKit.make(tmp / "auth") if auth else None
        extra, token = (kit.flags(), kit.token) if kit else ([], None)
        nginx = await Nginx.start(tmp / "nginx", [fixed_server("fixed", INFER_PATH, ANSWER)])
        upstream = nginx.url("fixed")
        config = tmp / "canary.yaml"
        config.write_text(CANARY_CONFIG.adding(Variant.stable(upstream), Variant.candidate(upstream)).yaml())
        body = tmp / "body.json"
        body.write_bytes(orjson.dumps(infer_body(read_test_set(REPO / "models" / "test_set.json").x[:1])))
        procs: list[tuple[subprocess.Popen[bytes], str]] = []
        runs: dict[Path, list[float]] = {t: [] for t in trees}
        try:  # nginx and every outrider started are stopped, however this ends (one that did not start too)
            for i, t in enumerate(trees):
                procs.append(start(t, config, tmp / f"data-{i}", tmp / f"outrider-{i}.log", extra))
            for _, address in procs:
                wrk(f"http://{address}{INFER_PATH}", body, 2, token)  # warm: pooled connections, caches
            for r in range(rounds):
                for tree, (proc, address) in zip(trees, procs, strict=True):
                    before = cpu_s(proc.pid)
                    answered = wrk(f"http://{address}{INFER_PATH}", body, seconds, token)
                    runs[tree].append((cpu_s(proc.pid) - before) / answered * 1e6)
                    print(f"round {r + 1} {tree}: {runs[tree][-1]:.1f} µs/request", flush=True)
        finally:
            for proc, _ in procs:
                proc.terminate()
                proc.wait(10)
            await nginx.child.stop()
    return runs


def main(argv: list[str] | None = None) -> None:
    """Print each tree's median and the ratio after/before."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--auth", action="store_true", help="JWT auth and a rate limit on, as `make bench`'s")
    args = parser.parse_args(argv)
    trees = [args.before.resolve(), args.after.resolve()]
    runs = asyncio.run(compare(trees, args.rounds, args.seconds, args.auth))
    medians = [statistics.median(runs[t]) for t in trees]
    for tree, median in zip(trees, medians, strict=True):
        print(f"{tree}: median {median:.1f} µs/request ({', '.join(f'{x:.0f}' for x in runs[tree])})")
    print(f"after/before: {medians[1] / medians[0]:.3f}×")


if __name__ == "__main__":
    main()
