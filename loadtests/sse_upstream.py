"""An LLM-like token stream for the benchmark: `POST /v1/chat/completions` answers `text/event-stream`.

Each answer is EVENTS events, one every INTERVAL ms (a token each), then `data: [DONE]`, chunked, as
OpenAI-compatible servers send them.
Usage: python -m loadtests.sse_upstream --port 0 [--events 20] [--interval-ms 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson
from aiohttp import web


def make_app(events: int, interval_ms: float) -> web.Application:
    """The streaming application."""

    async def stream(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        for i in range(events):
            chunk = {"choices": [{"index": 0, "delta": {"content": f"tok{i} "}}]}
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            await asyncio.sleep(interval_ms / 1000)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", stream)
    return app


async def main(port: int, events: int, interval_ms: float) -> None:
    """Serve until killed; print the `listening` line the process helpers wait for."""
    runner = web.AppRunner(make_app(events, interval_ms), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    host, bound = runner.addresses[0][:2]
    line = {"event": "listening", "service": "sse-upstream", "address": f"{host}:{bound}"}
    sys.stderr.write(orjson.dumps(line).decode() + "\n")
    sys.stderr.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    ns = parser.parse_args()
    asyncio.run(main(ns.port, ns.events, ns.interval_ms))
