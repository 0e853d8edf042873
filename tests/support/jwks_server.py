"""A JWKS server for tests, in the test's own event loop on 127.0.0.1:0: counts fetches, can be slow or bad.

Usage: server = JwksServer(); server.body = orjson.dumps({"keys": [...]}); await server.start(); server.url
"""

from __future__ import annotations

import asyncio

from aiohttp import web

CHUNK = 64 * 1024


class JwksServer:
    """Serves `body` with `status` after `delay` seconds (chunked, without Content-Length, if `chunked`)."""

    def __init__(self, body: bytes = b"{}") -> None:
        self.body = body
        self.status = 200
        self.delay = 0.0
        self.chunked = False
        self.hits = 0
        self.url = ""
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Count the fetch, then answer as configured."""
        self.hits += 1
        await asyncio.sleep(self.delay)  # the subject: a slow key server
        if not self.chunked:
            return web.Response(status=self.status, body=self.body, content_type="application/json")
        resp = web.StreamResponse(status=self.status)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(self.body), CHUNK):
            await resp.write(self.body[i : i + CHUNK])
        await resp.write_eof()
        return resp

    async def start(self) -> None:
        """Listen on an ephemeral 127.0.0.1 port; `url` is then set."""
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/.well-known/jwks.json"

    async def stop(self) -> None:
        """Stop listening (later fetches are refused)."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
