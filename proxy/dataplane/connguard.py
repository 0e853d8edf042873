"""The data port's connection guard: a header-block deadline and a cap on open connections.

aiohttp has no read deadline of its own, so a client that opens connections and trickles a request line a
byte at a time (slowloris) would hold them until keep-alive (75 s) or forever. The guard wraps each
connection's aiohttp protocol and closes it when its header block is not complete `header_timeout_s`
after it started (the connection opened, or the first byte of a later request on a keep-alive connection);
it also closes new connections at once beyond `max_connections`. Idle keep-alive connections are left to
aiohttp's own `keepalive_timeout`; slow bodies are the edge's business (`proxy.dataplane.edge.read_body`).

Usage: await GuardedSite(runner, "127.0.0.1", 8080, ConnGuard(runner.server, limits, metrics)).start()
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from proxy.dataplane.limits import PlaneLimits
from proxy.telemetry.metrics import Metrics

# Written straight to the transport: no aiohttp response is in flight while a header block is incomplete.
TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


_PLANE = PlaneLimits()  # the native plane's defaults are the aiohttp plane's too


@dataclass(frozen=True, slots=True)
class GuardLimits:
    """What the guard enforces."""

    header_timeout_s: float = _PLANE.header_timeout_s  # from a request's start to its last header byte
    max_connections: int = _PLANE.max_connections  # open connections; beyond, new ones are closed at once

    def __post_init__(self) -> None:
        if self.header_timeout_s <= 0 or self.max_connections < 1:
            raise ValueError("header_timeout_s must be > 0 and max_connections ≥ 1")


class ConnGuard:
    """Protocol factory for one aiohttp `web.Server`: every connection it makes is a `GuardedConnection`.

    It learns that a header block is complete when aiohttp dispatches the request: it replaces the server's
    `request_handler` (a public attribute every new `RequestHandler` copies at construction) with a wrapper
    that marks the connection busy, then calls the original.
    """

    def __init__(self, server: web.Server, limits: GuardLimits, metrics: Metrics) -> None:
        self.server = server
        self.limits = limits
        self.metrics = metrics
        self.open: dict[RequestHandler, GuardedConnection] = {}
        self._handler = server.request_handler
        server.request_handler = self._dispatch

    def __call__(self) -> GuardedConnection:
        """A protocol for one new connection (what `loop.create_server` calls)."""
        return GuardedConnection(self)

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        conn = self.open.get(request.protocol)
        if conn is None:  # its connection is already gone: aiohttp still runs the queued request
            return await self._handler(request)
        conn.headers_done()
        try:
            response = await self._handler(request)
        finally:
            conn.request_done()
        if response.keep_alive is False and not request.content.is_eof():
            await conn.answer_and_close(request, response)
        return response


class GuardedConnection(asyncio.Protocol):
    """One client connection: aiohttp's `RequestHandler` inside, the header deadline around it.

    Composition rather than a subclass: only the public `asyncio.Protocol` interface is forwarded, so the
    guard does not depend on aiohttp's private handler state.
    """

    def __init__(self, guard: ConnGuard) -> None:
        self.guard = guard
        self.inner: RequestHandler | None = None  # None until accepted (refused connections cost nothing)
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._busy = False  # a request's header block is complete and its handler has not returned

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Accept (and start the header deadline) or, beyond the cap, close at once."""
        # a stream transport (uvloop's is not an asyncio.Transport subclass, but has the same interface)
        self.transport = transport = cast(asyncio.Transport, transport)
        guard = self.guard
        if len(guard.open) >= guard.limits.max_connections:
            guard.metrics.connections_refused.inc()
            transport.abort()  # nothing to flush: a reset frees the slot without a TIME_WAIT on our side
            return
        self.inner = guard.server()
        guard.open[self.inner] = self
        guard.metrics.connections_open.inc()
        self.inner.connection_made(transport)
        self._arm()  # a connection that sends nothing at all is a slow header block too

    def data_received(self, data: bytes) -> None:
        """Bytes while idle start a request: its header block must complete before the deadline."""
        if self.inner is None:
            return
        if not self._busy and self._timer is None:
            self._arm()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        """Forwarded to aiohttp; returning None lets the transport close, as aiohttp itself does."""
        if self.inner is not None:
            self.inner.eof_received()
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        """Forget the connection and tell aiohttp."""
        self._disarm()
        if self.inner is None:
            return
        if self.guard.open.pop(self.inner, None) is not None:
            self.guard.metrics.connections_open.dec()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        """Forwarded: aiohttp's write flow control."""
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        """Forwarded: aiohttp's write flow control."""
        if self.inner is not None:
            self.inner.resume_writing()

    def headers_done(self) -> None:
        """aiohttp dispatched a request: its header block arrived in time."""
        self._busy = True
        self._disarm()

    def request_done(self) -> None:
        """The handler returned; the next byte starts the next request's deadline."""
        self._busy = False

    async def answer_and_close(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        """Send a closing response, then close at once. aiohttp would first linger up to 10 s reading the
        unread rest of the body, which a client refused for slowness would happily keep trickling."""
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionError:  # the client is gone already; aiohttp notices on its own
            return
        if self.transport is not None:
            self.transport.close()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.guard.limits.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.guard.metrics.slow_clients_closed.labels("header").inc()
        # A previous response still being flushed (a client that reads slowly) must not get bytes mixed in.
        if transport.get_write_buffer_size() == 0:
            transport.write(TIMEOUT_RESPONSE)
        transport.close()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are made by a `ConnGuard` instead of the runner's server directly.

    The runner still owns the app's lifecycle and shutdown (it closes the connections aiohttp tracks, and
    aiohttp tracks ours: the inner handler registers itself with the server as usual).
    """

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, guard: ConnGuard, *, backlog: int = 1024
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self.host, self.port, self.guard, self.backlog = host, port, guard, backlog

    @property
    def name(self) -> str:
        """http://HOST:PORT as requested."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Register with the runner and listen."""
        await super().start()
        loop = asyncio.get_running_loop()
        # `_server` is BaseSite's slot for the listening server: stop() closes it, runner.addresses reads it.
        self._server = await loop.create_server(self.guard, self.host, self.port, backlog=self.backlog)
