"""The native data plane: the listener, its connections, the limits they share, and the drain on shutdown.

Usage:
    plane = DataPlane(traffic_chain, feedback_chain, metrics, PlaneLimits(...), TrustedProxies(cidrs))
    await plane.start("127.0.0.1", 8080); ...; await plane.shutdown(timeout=15.0)
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from proxy.dataplane import fastpath
from proxy.dataplane.chain import FastChain, Stage
from proxy.dataplane.client_ip import TrustedProxies, parse_ip
from proxy.dataplane.connection import Connection
from proxy.dataplane.ids import RequestIds
from proxy.dataplane.limits import Admission, AdmissionCollector, PlaneLimits
from proxy.dataplane.request import Request
from proxy.runtime.ports import hostport
from proxy.runtime.tasks import TaskGroup
from proxy.settings import Settings
from proxy.telemetry.metrics import Metrics


class DataPlane:
    """Serves the data port with `Connection` protocols; one per process."""

    def __init__(
        self,
        traffic: Stage,
        feedback: Stage,
        metrics: Metrics,
        limits: PlaneLimits,
        trusted: TrustedProxies,
        traffic_fast: FastChain | None = None,
    ) -> None:
        self.traffic = traffic
        self.traffic_fast = traffic_fast
        """The traffic chain on callbacks (proxy.dataplane.fastpath), when it has that form."""
        self.in_flight: set[Request] = set()
        """Requests whose exchange runs on callbacks (no task): shutdown waits for them too."""
        self._idle: asyncio.Future[None] | None = None
        self.feedback = feedback
        """The chain of `POST /outrider/v1/feedback` (proxy.feedback)."""
        self.metrics = metrics
        self.limits = limits
        self.trusted = trusted
        self.admission = Admission(limits)
        self.ids = RequestIds()
        self.tasks = TaskGroup()
        """One task per request in its chain or answer; drained on shutdown."""
        self.connections: set[Connection] = set()
        self.slow_header = metrics.slow_clients_closed.labels("header")
        self.slow_body = metrics.slow_clients_closed.labels("body")
        self.loop: asyncio.AbstractEventLoop | None = None
        """The loop serving the port (set by `start`): the request path uses it rather than looking it up,
        which on Python 3.11 costs a getpid syscall each time."""
        self._server: asyncio.Server | None = None  # uvloop's is not a subclass, but has the same interface
        metrics.registry.register(AdmissionCollector(self.admission))

    async def start(self, host: str, port: int, *, backlog: int = 1024, reuse_port: bool = False) -> None:
        """Listen on HOST:PORT (port 0: any free port; see `address`); `reuse_port`: with SO_REUSEPORT, beside
        the other workers of one supervisor (proxy.fleet), the kernel spreading the connections."""
        self.loop = loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self), host, port, backlog=backlog, reuse_port=reuse_port or None
        )

    @property
    def address(self) -> str:
        """HOST:PORT actually bound (IPv6 hosts in brackets)."""
        # Any: uvloop's `sockets` is a list, not the tuple asyncio's stubs promise (compiled code checks that)
        server: Any = self._server
        assert server is not None
        host, port = server.sockets[0].getsockname()[:2]
        return hostport(host, port)

    def admit(self, conn: Connection) -> bool:
        """Take the slots of a new connection, or refuse it (counted) beyond a connection cap."""
        if len(self.connections) >= self.limits.max_connections:
            self.metrics.connections_refused.inc()
            return False
        peer = conn.peer
        if peer is not None:
            address = parse_ip(peer) if self.trusted else None
            if address is not None and self.trusted.trusts(address):
                conn.peer_trusted = True  # its clients take their slots per request (X-Forwarded-For)
            elif not self.admission.clients.take(peer):
                return False
            else:
                conn.slot = peer
        self.connections.add(conn)
        self.metrics.connections_open.inc()
        return True

    def forget(self, conn: Connection) -> None:
        """A connection is gone: give its slots back."""
        if not conn.accepted:
            return
        conn.accepted = False
        self.connections.discard(conn)
        self.metrics.connections_open.dec()
        if conn.slot is not None:
            self.admission.clients.give(conn.slot)
            conn.slot = None

    async def shutdown(self, timeout: float) -> None:
        """Stop listening, close idle connections, let in-flight requests finish within `timeout` seconds
        (busy connections close after their answers), then cancel what is left and close everything."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # answering a request may start the next one queued on its connection, as a task or on callbacks
        while len(self.tasks) or self.in_flight:
            await self.tasks.drain(timeout=max(0.0, deadline - loop.time()))
            await self._callbacks_landed(deadline)
        for conn in list(self.connections):
            if conn.transport is None:
                continue
            if conn.closing:  # answered, our FIN sent: a reset now could still destroy the answer
                conn.transport.close()
            else:  # its request was cancelled: nothing owed
                conn.transport.abort()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    def begun(self, req: Request) -> None:
        """An exchange started on callbacks."""
        self.in_flight.add(req)

    def landed(self, req: Request) -> None:
        """An exchange on callbacks ended."""
        self.in_flight.discard(req)
        if not self.in_flight and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    async def _callbacks_landed(self, deadline: float) -> None:
        """Wait until the exchanges on callbacks have landed; at `deadline`, stop them (they land at once)."""
        if not self.in_flight:
            return
        loop = asyncio.get_running_loop()
        self._idle = loop.create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._idle), max(0.0, deadline - loop.time()))
        except TimeoutError:
            for req in list(self.in_flight):
                fastpath.cancel(req)
            await asyncio.sleep(0)  # their `landed` callbacks run now
            self.in_flight.clear()  # nothing is waited for past the deadline
        finally:
            self._idle = None


def plane_limits(settings: Settings) -> PlaneLimits:
    """The data plane's limits from the sidecar's settings."""
    limits = settings.conf.limits
    return PlaneLimits(
        header_timeout_s=limits.header_timeout,
        keepalive_s=limits.keepalive,
        max_connections=limits.max_connections,
        max_connections_per_client=limits.max_connections_per_client,
        max_body_bytes=limits.max_body_bytes,
        body_timeout_s=limits.body_timeout,
        body_min_rate=limits.body_min_rate,
        body_rate_window_s=limits.body_rate_window,
        max_buffered_body_bytes=limits.max_buffered_body_bytes,
    )
