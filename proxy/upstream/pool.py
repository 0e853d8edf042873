"""Keep-alive upstream connections, per origin: the newest idle one is reused first, idle ones are bounded in
number and in age, and a connect has its own deadline.

Usage:
    pool = UpstreamPool(connect_timeout_s=2.0, max_idle=256, idle_s=4.0)
    conn = pool.take(origin) or await pool.connect(origin)
    ...
    await pool.close()

Idle connections are kept newest-last (a stack: the most recently used is the least likely to have been
closed by its upstream). They expire after `idle_s`, or sooner when the upstream said so (`Keep-Alive:
timeout=N`, less a margin); one timer per pool sweeps them. A request sent on a connection its upstream is
closing at that moment fails and is never retried (bytes were sent), so the default 4 s stays under the
shortest idle timeouts of common model servers (uvicorn's 5 s): reuse matters under load, where connections
are never idle that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Awaitable, Callable

from proxy.upstream.connection import UpstreamConnection
from proxy.upstream.origin import Origin

Resolver = Callable[[str, int], Awaitable[tuple[str, int]]]
"""(host, port) → the (address, port) to connect to; by default the loop resolves when it connects."""

KEEP_ALIVE_MARGIN_S = 1.0
"""Idle connections are dropped this long before the upstream's announced keep-alive timeout."""


class UpstreamPool:
    """Connections to every upstream origin of one process."""

    def __init__(
        self,
        connect_timeout_s: float = 2.0,
        *,
        max_idle: int = 256,
        idle_s: float = 4.0,
        resolver: Resolver | None = None,
    ) -> None:
        if connect_timeout_s <= 0 or max_idle < 0 or idle_s <= 0:
            raise ValueError("connect_timeout_s and idle_s must be > 0, max_idle ≥ 0")
        self.connect_timeout_s = connect_timeout_s
        self.max_idle = max_idle
        """Idle connections kept per origin; beyond, the oldest is closed."""
        self.idle_s = idle_s
        self.resolver = resolver
        self.connects = 0
        """Connections opened so far."""
        self.reuses = 0
        """Requests sent on a pooled connection (no connect)."""
        self.expired = 0
        """Idle connections closed unused: past their idle time, or over `max_idle`."""
        self._idle: dict[str, deque[UpstreamConnection]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    def idle_count(self, origin: Origin | None = None) -> int:
        """Idle connections (of one origin, or of all)."""
        if origin is not None:
            return len(self._idle.get(origin.key, ()))
        return sum(len(idle) for idle in self._idle.values())

    def take(self, origin: Origin) -> UpstreamConnection | None:
        """The newest live idle connection to `origin`, or None (then `connect`)."""
        idle = self._idle.get(origin.key)
        if not idle:
            return None
        loop = idle[-1].loop  # the running one (a lookup would cost a getpid syscall on Python 3.11)
        assert loop is not None
        now = loop.time()
        while idle:
            conn = idle.pop()
            transport = conn.transport
            live = not conn.closed and transport is not None and not transport.is_closing()
            if live and now - conn.idle_since < self._limit(conn):
                self.reuses += 1
                return conn
            conn.close()
            self.expired += live
        return None

    async def connect(self, origin: Origin) -> UpstreamConnection:
        """A new connection; OSError when it cannot be made, TimeoutError after `connect_timeout_s`."""
        loop = asyncio.get_running_loop()
        host, port = origin.host, origin.port
        tls: ssl.SSLContext | None = None
        if origin.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        async with asyncio.timeout(self.connect_timeout_s):
            if self.resolver is not None:
                host, port = await self.resolver(host, port)
            _, conn = await loop.create_connection(
                lambda: UpstreamConnection(self, origin.key),
                host,
                port,
                ssl=tls,
                server_hostname=origin.host if tls is not None else None,
            )
        self.connects += 1
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        """Keep a connection whose exchange ended cleanly (or close it: pool closed, or over the bound)."""
        if self._closed or self.max_idle == 0 or self._limit(conn) <= 0:
            conn.close()
            return
        loop = conn.loop
        assert loop is not None
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle[conn.key] = deque()
        conn.idle_since = loop.time()
        idle.append(conn)
        if len(idle) > self.max_idle:
            idle.popleft().close()
            self.expired += 1
        if self._sweeper is None:
            self._sweeper = loop.call_later(self.idle_s, self._sweep)

    def forget(self, conn: UpstreamConnection) -> None:
        """An idle connection closed (by its upstream, usually): drop it from its stack."""
        idle = self._idle.get(conn.key)
        if idle:
            with contextlib.suppress(ValueError):  # it was in use, or already dropped
                idle.remove(conn)

    async def close(self) -> None:
        """Close every idle connection; connections in use close when their exchange ends."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()

    def _limit(self, conn: UpstreamConnection) -> float:
        said = conn.idle_limit_s
        return self.idle_s if said is None else min(self.idle_s, said - KEEP_ALIVE_MARGIN_S)

    def _sweep(self) -> None:
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        left = 0
        for idle in self._idle.values():
            # oldest first; stop at the first one still fresh (each origin's stack is in release order)
            while idle and now - idle[0].idle_since >= self._limit(idle[0]):
                idle.popleft().close()
                self.expired += 1
            left += len(idle)
        if left:
            self._sweeper = loop.call_later(self.idle_s / 4, self._sweep)
