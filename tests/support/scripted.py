"""A scripted raw HTTP/1.1 upstream for protocol-level tests: each path answers with handwritten bytes.

Usage:
    async with Scripted({"/ok": answer(b"hi"), "/close": answer(b"x", close=True)}) as up:
        origin = origin_of(up.url)
    up.connections, up.closed, up.requests   # what the server saw
A route is `async (writer) -> bool`: it writes the answer and says whether the connection stays open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType

Route = Callable[[asyncio.StreamWriter], Awaitable[bool]]


def answer(body: bytes, *, close: bool = False, headers: str = "", status: str = "200 OK") -> Route:
    """A route answering `body` with a Content-Length (and `Connection: close` when `close`)."""
    extra = "Connection: close\r\n" if close else ""

    async def route(writer: asyncio.StreamWriter) -> bool:
        head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}{headers}\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        return not close

    return route


def raw(data: bytes, *, keep: bool = True) -> Route:
    """A route writing `data` as is."""

    async def route(writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return keep

    return route


class Scripted:
    """A real TCP server on 127.0.0.1 answering requests by path with scripted routes."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.connections = 0
        self.closed = 0
        self.requests: list[bytes] = []
        """Each request as received: head and body."""
        self.closed_event = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Scripted:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                path = head.split(b" ", 2)[1].decode()
                if not await self.routes[path](writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # a test's loop ending cancels handlers: nothing to report
        finally:
            self.closed += 1
            self.closed_event.set()
            self._writers.discard(writer)
            writer.close()
