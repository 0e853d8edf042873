"""Every process of the benchmark, started once on ephemeral 127.0.0.1 ports and stopped by id at the end.

Two upstream cases — `model` (the fp32 digits model server) and `fixed` (nginx answering a canned copy of
the model's own answer, so that the proxy and not the model is measured) — each reached six ways: `direct`,
through `nginx` (reverse proxy, upstream keep-alive), through `haproxy` (one thread, server keep-alive),
through `outrider` (the demo's 10% canary, sticky on x-user-id), through `outrider+auth` (the same with
RS256 JWT verification and a rate limit keyed by the token's subject, set high enough never to refuse), and
through the `bare` aiohttp forwarder.
Usage: async with fleet(tmp, Path("models"), body) as targets: ...
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from experiments.builder import Canary, ExperimentDoc, Variant
from loadtests.bench_auth import AuthKit
from loadtests.haproxy import HAProxy
from loadtests.nginx import Nginx, Server, fixed_server, proxy_server
from proxy.runtime.children import Child, outrider_exe

CASES = ("model", "fixed")
TARGETS = ("direct", "nginx", "haproxy", "outrider", "outrider+auth", "bare")
INFER_PATH = "/v2/models/digits/infer"
CANARY_PERCENT = 10

CANARY_CONFIG = ExperimentDoc(
    "bench-canary", (), Canary((CANARY_PERCENT, 100)), prefix="/v2/models/digits", salt="bench"
)
"""A 10% canary sticky on x-user-id, no analysis section: the split and the outcome records are paid for,
and no decision changes the route in the middle of a run."""


@dataclass(frozen=True, slots=True)
class Target:
    """One way of reaching one upstream: the infer URL, and the processes whose CPU is the proxy's cost."""

    case: str
    name: str
    url: str
    pids: tuple[int, ...]
    token: str | None = None
    """A bearer token every request of the load carries (the auth target)."""


async def _child(stack: AsyncExitStack, cmd: list[str], log: Path) -> Child:
    child = await Child.start(cmd, log)
    stack.push_async_callback(child.stop)
    return child


async def _nginx(stack: AsyncExitStack, root: Path, servers: list[Server]) -> Nginx:
    ngx = await Nginx.start(root, servers)
    stack.push_async_callback(ngx.child.stop)
    return ngx


async def model_answer(url: str, body: bytes) -> bytes:
    """The model server's answer to `body` (the fixed upstream replays it)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + INFER_PATH, data=body, headers={"Content-Type": "application/json"}) as resp,
    ):
        if resp.status != 200:
            raise RuntimeError(f"the model server answered {resp.status}: {await resp.text()}")
        return await resp.read()


@asynccontextmanager
async def fleet(tmp: Path, models: Path, body: bytes) -> AsyncIterator[list[Target]]:
    """Start upstreams, nginx, outrider and the bare forwarder for both cases; yield the 8 targets."""
    exe = outrider_exe()
    async with AsyncExitStack() as stack:
        model = await _child(
            stack,
            [exe, "serve-model", "--model", str(models / "digits.onnx"), "--name", "digits", "--port", "0"],
            tmp / "model.log",
        )
        fixed = await _nginx(
            stack,
            tmp / "nginx-fixed",
            [fixed_server("fixed", INFER_PATH, await model_answer(model.url, body))],
        )
        upstreams = {"model": model.url, "fixed": fixed.url("fixed")}
        proxy = await _nginx(
            stack,
            tmp / "nginx-proxy",
            [proxy_server(case, url.removeprefix("http://")) for case, url in upstreams.items()],
        )
        hap = await HAProxy.start(
            tmp / "haproxy", {c: u.removeprefix("http://") for c, u in upstreams.items()}
        )
        stack.push_async_callback(hap.child.stop)
        kit = await asyncio.to_thread(AuthKit.make, tmp / "auth")
        targets: list[Target] = []
        for case, upstream in upstreams.items():
            config = tmp / f"experiment-{case}.yaml"
            # The demo's canary (sticky on x-user-id), both variants on the same upstream: the split is paid
            # for, and every answer comes from the same place.
            config.write_text(
                CANARY_CONFIG.adding(Variant.stable(upstream), Variant.candidate(upstream)).yaml()
            )
            ports = ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
            data_dir = str(tmp / f"data-{case}")
            run = [exe, "run", "-c", str(config), *ports, "--data-dir", data_dir, "--drain-delay", "0"]
            sidecar = await _child(stack, run, tmp / f"outrider-{case}.log")
            auth_run = [*run[:-4], "--data-dir", data_dir + "-auth", "--drain-delay", "0", *kit.flags()]
            guarded = await _child(stack, auth_run, tmp / f"outrider-auth-{case}.log")
            bare = await _child(
                stack,
                [sys.executable, "-m", "loadtests.bare_forwarder", "--upstream", upstream, "--port", "0"],
                tmp / f"bare-{case}.log",
            )
            targets += [
                Target(case, "direct", upstream + INFER_PATH, ()),
                Target(case, "nginx", proxy.url(case) + INFER_PATH, proxy.pids()),
                Target(case, "haproxy", hap.url(case) + INFER_PATH, hap.pids()),
                Target(case, "outrider", sidecar.url + INFER_PATH, (sidecar.proc.pid,)),
                Target(case, "outrider+auth", guarded.url + INFER_PATH, (guarded.proc.pid,), kit.token),
                Target(case, "bare", bare.url + INFER_PATH, (bare.proc.pid,)),
            ]
        yield targets
