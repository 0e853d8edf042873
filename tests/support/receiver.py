"""A webhook receiver for tests: a real aiohttp server on 127.0.0.1 that answers scripted statuses.

Usage:
    async with serving(Receiver(statuses=(503, 503))) as (receiver, url):
        ...  # POSTs to `url` get 503, 503, then 204; receiver.calls holds what arrived
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from proxy.control.webhook import SIGNATURE_HEADER


class Receiver:
    """Answers `statuses` in turn, then 204, each after `delay_s`; records (time, body, signature)."""

    def __init__(self, statuses: tuple[int, ...] = (), delay_s: float = 0.0) -> None:
        self.statuses, self.delay_s = list(statuses), delay_s
        self.calls: list[tuple[float, bytes, str | None]] = []

    async def handle(self, request: web.Request) -> web.Response:
        """One POST."""
        body = await request.read()
        self.calls.append((time.monotonic(), body, request.headers.get(SIGNATURE_HEADER)))
        await asyncio.sleep(self.delay_s)  # the subject: a slow receiver
        return web.Response(status=self.statuses.pop(0) if self.statuses else 204)

    async def seen(self, calls: int, timeout: float = 10.0) -> None:
        """Wait until `calls` POSTs have arrived (AssertionError after `timeout`)."""
        for _ in range(int(timeout / 0.02)):
            if len(self.calls) >= calls:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"receiver saw {len(self.calls)} POSTs, expected {calls}")


@asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[tuple[Receiver, str]]:
    """Serve `receiver` at http://127.0.0.1:PORT/hook until the block ends."""
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield receiver, f"http://{host}:{port}/hook"
    finally:
        await runner.cleanup()
