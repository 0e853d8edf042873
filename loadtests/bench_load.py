"""The two loads of the benchmark and how one measured run goes: CPU before, the load, CPU after.

Saturating: wrk with a closed loop of connections (loadtests/infer.lua varies the user id per request).
Moderate: hey at a fixed rate (hey's -q is per worker, so the rate is workers × q), as one user.
Usage: result = await measure(SATURATING, url, body_file, 8.0, proxy_pids)
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shlex
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests.bench_parse import LoadResult, parse_hey, parse_wrk
from loadtests.bench_procs import cpu_seconds

LUA = Path(__file__).with_name("infer.lua")


@dataclass(frozen=True, slots=True)
class Load:
    """One kind of load: a command line (URL and body file go last), and how to read what it prints."""

    name: str
    kind: str
    template: str
    tail: Callable[[str, Path], list[str]]
    parse: Callable[[str], LoadResult]
    auth: Callable[[str], list[str]] = lambda token: []
    """Extra arguments that make every request carry `Authorization: Bearer TOKEN`."""

    def command(self, seconds: float, lua: str = "loadtests/infer.lua") -> str:
        """The command line as a person would type it (without URL and body)."""
        return self.template.format(seconds=f"{seconds:g}", lua=lua)

    def argv(self, url: str, body: Path, seconds: float, token: str | None = None) -> list[str]:
        """The command line to run against `url`, posting the contents of `body` (with `token`, if any)."""
        extra = self.auth(token) if token else []
        return [*shlex.split(self.command(seconds, str(LUA))), *self.tail(url, body), *extra]


SATURATING = Load(
    "saturating",
    "closed loop, 32 connections",
    "wrk -t1 -c32 -d{seconds}s --latency -s {lua}",
    lambda url, body: [url, "--", str(body)],
    parse_wrk,
    lambda token: ["1000", token],  # infer.lua's USERS and TOKEN arguments
)
MODERATE = Load(
    "moderate",
    "open loop, 400 req/s (hey's -q is per worker)",
    "hey -z {seconds}s -c 8 -q 50 -m POST -T application/json -H 'x-user-id: bench-user'",
    lambda url, body: ["-D", str(body), url],
    parse_hey,
    lambda token: [],
)
WARM_UP = dataclasses.replace(SATURATING, name="warm-up", template="wrk -t1 -c8 -d{seconds}s -s {lua}")
LOADS = (SATURATING, MODERATE)


async def run_tool(argv: Sequence[str], seconds: float) -> str:
    """Run a load generator and return its stdout; killed (by its id) if it overruns by 30 s."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), seconds + 30)
    except TimeoutError:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise RuntimeError(f"{argv[0]} overran its {seconds:g}s by 30 s") from None
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n{text[-2000:]}")
    return text


async def measure(
    load: Load, url: str, body: Path, seconds: float, pids: Sequence[int], token: str | None = None
) -> LoadResult:
    """One run of `load`; with `pids`, the CPU those processes spent per completed request."""
    before = cpu_seconds(pids)
    argv = load.argv(url, body, seconds, token)
    if token and load.name == "moderate":  # hey takes headers before the URL
        argv = [*argv[:-1], "-H", f"Authorization: Bearer {token}", argv[-1]]
    result = load.parse(await run_tool(argv, seconds))
    if not pids or result.requests == 0:
        return result
    used = cpu_seconds(pids) - before
    return dataclasses.replace(result, cpu_us_per_request=used / result.requests * 1e6)


async def warm_up(url: str, body: Path, seconds: float = 1.0, token: str | None = None) -> None:
    """A short wrk run: connection pools filled, code paths warm, before anything is measured."""
    await run_tool(WARM_UP.argv(url, body, seconds, token), seconds)
