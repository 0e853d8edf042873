"""The streaming case of the benchmark: time to the first event and to the end of an SSE answer, direct vs
through outrider, one request at a time, interleaved, medians.

A token stream is only useful if every token reaches the client as it is produced: a proxy that buffers the
answer turns a 3 ms time to first token into the whole generation time.
Usage: figures = await sse_case(tmp, requests=100)   (or `python -m loadtests.bench_sse`)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from experiments.builder import Canary, ExperimentDoc, Variant
from proxy.runtime import loop
from proxy.runtime.children import Child, outrider_exe

PATH = "/v1/chat/completions"
BODY = b'{"model": "bench", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
EXPERIMENT = ExperimentDoc("bench-sse", (), Canary((10, 100)), prefix="/v1", salt="bench")
"""A canary whose two arms are the same upstream (added when it runs)."""


@dataclass(frozen=True, slots=True)
class Timing:
    """One streamed answer: milliseconds to the first event and to the end, and the events seen."""

    first_ms: float
    total_ms: float
    events: int


async def one(url: str, user: int) -> Timing:
    """POST once over a fresh connection; time the first `data:` line and the end of the stream."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"x-user-id: u{user}\r\nContent-Length: {len(BODY)}\r\nConnection: close\r\n\r\n"
    ).encode()
    start = time.perf_counter()
    writer.write(head + BODY)
    first, seen = None, b""
    while chunk := await reader.read(65536):
        seen += chunk
        if first is None and b"data:" in seen:
            first = time.perf_counter()
    events = seen.count(b"data:")  # the upstream writes each event in one chunk
    end = time.perf_counter()
    writer.close()
    return Timing(((first or end) - start) * 1000, (end - start) * 1000, events)


async def sse_case(tmp: Path, requests: int = 100) -> dict[str, dict[str, float]]:
    """Medians of `requests` streamed answers per target (direct, outrider), alternating between them."""
    async with AsyncExitStack() as stack:
        up = await Child.start(
            [sys.executable, "-m", "loadtests.sse_upstream", "--port", "0"], tmp / "sse.log"
        )
        stack.push_async_callback(up.stop)
        config = tmp / "experiment-sse.yaml"
        text = EXPERIMENT.adding(Variant.stable(up.url), Variant.candidate(up.url)).yaml()
        await asyncio.to_thread(config.write_text, text)
        ports = ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--drain-delay", "0"]
        cmd = [outrider_exe(), "run", "-c", str(config), *ports, "--data-dir", str(tmp / "data-sse")]
        side = await Child.start(cmd, tmp / "outrider-sse.log")
        stack.push_async_callback(side.stop)
        timings: dict[str, list[Timing]] = {"direct": [], "outrider": []}
        for i in range(requests):
            for name, url in (("direct", up.url), ("outrider", side.url)):
                timings[name].append(await one(url, i))
    return {
        name: {
            "first_event_ms": statistics.median(t.first_ms for t in runs),
            "total_ms": statistics.median(t.total_ms for t in runs),
            "events": statistics.median(t.events for t in runs),
        }
        for name, runs in timings.items()
    }


async def _main() -> int:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="outrider-sse-") as tmp:
        for name, fig in (await sse_case(Path(tmp))).items():
            print(f"{name:<9} first event {fig['first_event_ms']:.2f} ms, end {fig['total_ms']:.1f} ms, "
                  f"{fig['events']:.0f} events")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(loop.run(_main()))
