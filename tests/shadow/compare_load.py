"""Where should large comparisons run? Figures for `shadow.compare.pool`:
`python -m tests.shadow.compare_load [--rate 3] [--seconds 6] [--workers 4]`.

1. The cost of one comparison inline, by kind and answer size (what `inline_bytes` trades against).
2. For each pool mode (`inline`, `thread`, `process`): a server process — uvloop and aiohttp, as in the
   sidecar — answers small GETs while it pairs ~1 MiB json-exact answers through the real `Pair` and
   `ComparePool` at `--rate` pairs a second; this process times `--workers` clients of small GETs and prints
   p50 / p99 / max beside a run without comparisons. Serving is the only other work of the server, so the
   difference between the rows is the comparisons' cost to the event loop.

`python -m tests.shadow.compare_load --serve MODE` is the server (started by the figures run).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import sys
import time

import aiohttp
import orjson
from aiohttp import web

from experiments.outcome import OutcomeRecord
from proxy.runtime.loop import run
from shadow.compare.base import comparator
from shadow.compare.pool import ComparePool
from shadow.limits import CompareLimits
from shadow.pairing import Pair, ShadowResult
from tests.support.wait import eventually


def objects_body(size: int) -> bytes:
    """A JSON answer of about `size` bytes made of small objects: json-exact's slow case."""
    # The items of tests/integration/test_hardening.py's upstream (~81 bytes each).
    items = [
        {"k": i, "label": f"l-{i}", "score": i / 7, "tags": [1, 2, None], "ok": True}
        for i in range(size // 81)
    ]
    return orjson.dumps({"model_name": "m", "items": items})


def oip_body(size: int) -> bytes:
    """An OIP answer of about `size` bytes: one FP32 output of [rows, 10] scores."""
    values = max(10, size // 20 // 10 * 10)
    data = [i / 7 for i in range(values)]
    out = {"name": "p", "shape": [values // 10, 10], "datatype": "FP32", "data": data}
    return orjson.dumps({"model_name": "m", "outputs": [out]})


def inline_costs() -> None:
    """Median time of one comparison on the caller's thread, by kind and size."""
    print("| kind | 4 KiB | 16 KiB | 64 KiB | 1 MiB |\n|---|---|---|---|---|")
    for kind, make in (("json-exact", objects_body), ("oip-numeric", oip_body), ("oip-top1", oip_body)):
        compare = comparator(kind)
        cells = []
        for size in (4 << 10, 16 << 10, 64 << 10, 1 << 20):
            body = make(size)
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                compare(body, body)
                runs.append(time.perf_counter() - started)
            cells.append(f"{statistics.median(runs) * 1000:.2f} ms")
        print(f"| {kind} | " + " | ".join(cells) + " |")


def serve(mode: str, rate: float) -> None:
    """The server: small GETs answered at once; `rate` pairs a second compared in `mode` (0: none)."""
    big = objects_body(1_012_000)

    async def main() -> None:
        pool = ComparePool(CompareLimits(mode=mode))  # type: ignore[arg-type]
        runner_task = asyncio.create_task(pool.run())
        compare = comparator("json-exact")
        records: list[OutcomeRecord] = []

        async def pairs() -> None:
            while rate > 0:
                await asyncio.sleep(1 / rate)
                pair = Pair(["s"], compare, pool)
                pair.primary_done(200, big)
                pair.shadow_done("s", ShadowResult(200, None, 1.0, big))
                pair.finish_with(record(), records.append)

        async def small(request: web.Request) -> web.Response:
            return web.Response(body=b'{"ready": true}', content_type="application/json")

        async def counts(request: web.Request) -> web.Response:
            return web.json_response(
                {"records": len(records), **pool.counts, "max_backlog": pool.max_backlog}
            )

        app = web.Application()
        app.router.add_get("/small", small)
        app.router.add_get("/counts", counts)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        feeder = asyncio.create_task(pairs())
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print(runner.addresses[0][1], flush=True)
        await stop.wait()
        feeder.cancel()
        await pool.close(1.0)
        await runner_task  # the pool's processes are gone
        await runner.cleanup()

    run(main())


def record() -> OutcomeRecord:
    return OutcomeRecord("r", 0.0, "e", "stable", 1.0, 200, None, 1.0, 1.0, None)


async def clients(port: int, seconds: float, workers: int) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            async with session.get(f"http://127.0.0.1:{port}/small") as r:
                await r.read()
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.005)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(workers)))
    return latencies


async def counts_of(port: int) -> dict[str, int]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/counts") as r:
        result: dict[str, int] = await r.json()
        return result


async def compared_once(port: int) -> bool:
    return (await counts_of(port)).get("records", 0) >= 1


def measure(mode: str, rate: float, seconds: float, workers: int) -> str:
    """One row of the table: the server in `mode`, timed from here."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.shadow.compare_load", "--serve", mode, "--rate", str(rate)],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        if rate > 0:  # the pool (in process mode, its worker) has started and compared once
            asyncio.run(eventually(lambda: compared_once(port), 30.0))
        latencies = asyncio.run(clients(port, seconds, workers))
        counts = asyncio.run(counts_of(port))
    finally:
        server.terminate()
        server.wait(10)
    ms = sorted(v * 1000 for v in latencies)
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    label = "no comparisons" if rate == 0 else mode
    return (
        f"| {label} | {len(ms)} | {statistics.median(ms):.1f} | {p99:.1f} | {ms[-1]:.1f} | "
        f"{counts.get('records', 0)} |"
    )


def figures(rate: float, seconds: float, workers: int) -> None:
    """Both tables, in Markdown."""
    print("One comparison inline (median of 5):\n")
    inline_costs()
    print(
        f"\nSmall GETs ({workers} clients, {seconds:g} s) while {rate:g} pairs/s of ~1 MiB json-exact run:\n"
    )
    print("| comparisons | requests | p50 ms | p99 ms | max ms | pairs recorded |\n|---|---|---|---|---|---|")
    print(measure("inline", 0, seconds, workers), flush=True)
    for mode in ("inline", "thread", "process"):
        print(measure(mode, rate, seconds, workers), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--serve", choices=("inline", "thread", "process"))
    parser.add_argument("--rate", type=float, default=3.0, help="pairs compared per second")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--workers", type=int, default=4)
    ns = parser.parse_args()
    if ns.serve:
        serve(ns.serve, ns.rate)
    else:
        figures(ns.rate, ns.seconds, ns.workers)
