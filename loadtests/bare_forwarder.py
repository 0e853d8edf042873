"""The floor a Python proxy starts from: aiohttp on uvloop, one keep-alive client session, no filters.

Reads the request body, forwards it to the upstream, returns the upstream's status and body.
Usage: python -m loadtests.bare_forwarder --upstream http://127.0.0.1:8000 --port 0
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp
import orjson
from aiohttp import web

from proxy.runtime import loop

SESSION = web.AppKey("session", aiohttp.ClientSession)


def make_app(upstream: str) -> web.Application:
    """One catch-all route forwarding to `upstream`."""

    async def session(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False) as s:
            app[SESSION] = s
            yield

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/octet-stream")}
        url = upstream + request.path_qs
        async with request.app[SESSION].request(request.method, url, data=body, headers=headers) as resp:
            payload = await resp.read()
            return web.Response(status=resp.status, body=payload, content_type=resp.content_type)

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def serve(upstream: str, host: str, port: int) -> int:
    """Serve until SIGTERM/SIGINT; logs the `listening` line once bound."""
    runner = web.AppRunner(make_app(upstream.rstrip("/")), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    bound_host, bound_port = runner.addresses[0][:2]
    line = {"event": "listening", "service": "bare-forwarder", "address": f"{bound_host}:{bound_port}"}
    sys.stderr.write(orjson.dumps(line).decode() + "\n")
    sys.stderr.flush()
    await stop.wait()
    await runner.cleanup()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    ns = parser.parse_args()
    sys.exit(loop.run(serve(ns.upstream, ns.host, ns.port)))
