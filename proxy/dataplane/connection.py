"""One client connection of the native data plane: an `asyncio.Protocol` whose bytes go to httptools'
request parser (proxy.dataplane.reader) and whose requests are answered in order (proxy.dataplane.serve).

Usage: loop.create_server(lambda: Connection(plane), host, port)  (proxy.dataplane.plane does this)

Requests are answered one at a time, in order (pipelined heads wait in `queue`, reading pauses meanwhile).
Reading also pauses while a body nobody has asked for yet passes `PREREAD_BYTES`, while the client does not
read its answers (`pause_writing`), and for good once nothing more can be parsed. Deadlines: the header
block (from the connection's opening or a request's first byte), the keep-alive idle time, and for bodies the
paces of proxy.dataplane.body. Any close with client bytes possibly unread is a lingering one: the answer,
then our FIN, then up to `LINGER_S` of reading and dropping, so the client sees the answer and not a reset.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, cast

from proxy.dataplane import fastpath
from proxy.dataplane.body import RequestBody
from proxy.dataplane.deadline import Deadline
from proxy.dataplane.errors import OutriderError, RequestTimeout
from proxy.dataplane.reader import PAUSE_BODY, PAUSE_PIPELINE, PAUSE_STOP, PAUSE_WRITE, RequestReader
from proxy.dataplane.request import Request
from proxy.dataplane.serve import refuse, serve, timeout_answer

if TYPE_CHECKING:
    from proxy.dataplane.plane import DataPlane

HEAD_TIMER, IDLE_TIMER, LINGER_TIMER = 1, 2, 3
LINGER_S = 1.0
LINGER_BYTES = 1 << 20
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Connection(asyncio.Protocol):
    """One client connection: the request queue, flow control and deadlines (parsing: `RequestReader`)."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.limits = plane.limits
        assert plane.loop is not None  # connections only come once the plane listens
        self.loop = plane.loop
        self.reader = RequestReader(self)
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.peer_trusted = False
        self.slot: str | None = None  # the per-client slot this connection holds (untrusted peers)
        self.accepted = False
        self.lost = False
        self.closing = False
        self.dead = False  # nothing more will be parsed: a refusal, an upgrade, the client's EOF, shutdown
        self.queue: deque[Request] = deque()
        self.active: Request | None = None
        self.write_paused = False
        self._paused = 0
        self._timer = Deadline(self.loop, self._expire)
        self._timer_kind = 0  # what the deadline armed is for (0: nothing)
        self._drainer: asyncio.Future[None] | None = None
        self._lingered = 0
        self._eof = False  # the client sent its FIN: nothing to linger for

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit (and start the header deadline) or, beyond a connection cap, reset at once."""
        # a stream transport (uvloop's is not an asyncio.Transport subclass, but has the same interface)
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) and peer else None
        if not self.plane.admit(self):
            self.transport.abort()  # nothing to flush: a reset frees the slot without a TIME_WAIT here
            return
        self.accepted = True
        self._arm(HEAD_TIMER, self.limits.header_timeout_s)  # a connection that never speaks is slow too

    def data_received(self, data: bytes) -> None:
        """Feed the parser; refuse what it (or the limits) refuse; start the next request."""
        if self.closing:
            self._lingered += len(data)
            if self._lingered > LINGER_BYTES and self.transport is not None:
                self.transport.close()
            return
        if self.dead:
            return
        if self._timer_kind == IDLE_TIMER:
            self._disarm()
        self.reader.feed(data)
        self._flush()

    def eof_received(self) -> bool | None:
        """The client closed its side: it has given up on what it asked (as nginx without
        `proxy_ignore_client_abort`, and as the aiohttp plane): the transport closes itself after what is
        already written, and `connection_lost` stops the exchange in flight, which stops the upstream's work
        (an LLM's generation) and records `client_disconnect`."""
        self._eof = True
        self._body_lost()
        self.stop_reading()
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        """Forget the connection; stop a streamed answer; fail a body still arriving."""
        self.lost = True
        self._timer_kind = 0
        self._timer.stop()
        self.plane.forget(self)
        self._wake_drainer()
        self._body_lost()
        active = self.active
        if active is not None:
            # as the aiohttp plane (handler_cancellation): the upstream exchange stops, a stream is closed,
            # and `record` writes `client_disconnect`
            if active.task is not None:
                active.task.cancel()
            else:
                fastpath.cancel(active)
        self._drop_queue()

    def pause_writing(self) -> None:
        """The client reads slower than we write: stop writing streams, stop reading new requests."""
        self.write_paused = True
        self.pause(PAUSE_WRITE)

    def resume_writing(self) -> None:
        """The client caught up."""
        self.write_paused = False
        self._wake_drainer()
        self.resume(PAUSE_WRITE)

    async def drain(self) -> None:
        """Wait until the client has read enough of what was written (or is gone)."""
        if self.write_paused and not self.lost:
            self._drainer = self.loop.create_future()
            await self._drainer

    # proxy.dataplane.body.BodyHost

    def body_wanted(self, body: RequestBody) -> None:
        """The chain reads the body: read again, and say `100 Continue` to a client waiting for it."""
        if self.lost or self.transport is None:
            return
        if body.expect_continue and body.size == 0:
            self.transport.write(CONTINUE)
        self.resume(PAUSE_BODY)

    def body_failed(self, body: RequestBody, err: OutriderError) -> None:
        """A body will not complete: read no more of it (its answer closes the connection)."""
        if isinstance(err, RequestTimeout):
            self.plane.slow_body.inc()
        if not self.lost:
            self.pause(PAUSE_BODY)

    # requests

    def done(self, req: Request) -> None:
        """`req` is answered (or abandoned): free what it held, then the next request or the idle wait."""
        self.active = None
        if req.body is not None:
            req.body.release()
        if req.slot is not None:
            self.plane.admission.clients.give(req.slot)
            req.slot = None
        if self.lost or self.closing:
            return
        if req.close or (self.dead and not self.queue):  # dead: shut down while this answer was streamed
            self.close(linger=req.body_unread or self.dead)
            return
        self._flush()
        if self.active is None and not self.queue and not self.reader.in_head:
            self._arm(IDLE_TIMER, self.limits.keepalive_s)

    def shutdown(self) -> None:
        """The process stops: an idle connection closes now, a busy one after the answers it owes."""
        self.stop_reading()
        if self.active is None and not self.queue:
            self.close(linger=False)

    def close(self, *, linger: bool) -> None:
        """Close once the answers are flushed; `linger`: first read and drop what the client still sends."""
        if self.closing or self.lost or self.transport is None:
            return
        self.closing = True
        self._disarm()
        self._drop_queue()
        transport = self.transport
        if not linger or self._eof or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()  # our FIN follows the answer; reading on lets the client's bytes drain
        self._paused = 0
        transport.resume_reading()
        self._arm(LINGER_TIMER, LINGER_S)

    def abort(self) -> None:
        """Reset the connection (an answer broke off after its head: the client must not take it whole)."""
        if self.transport is not None and not self.lost:
            self.closing = True
            self.transport.abort()

    # internals

    def _flush(self) -> None:
        if self.active is None and self.queue and not self.closing and not self.lost:
            req = self.queue.popleft()
            self.active = req
            if not self.queue:
                self.resume(PAUSE_PIPELINE)
            if req.refusal is not None:
                refuse(self, req)
            elif req.fast is not None:
                # at the end of this loop turn, as a task would start: the requests read together are sent
                # upstream together (each send at once wakes the upstream once per request: ~5 µs more each)
                self.loop.call_soon(fastpath.start, self, req, req.fast)
            else:
                req.task = self.plane.tasks.spawn(serve(self, req), name="request", loop=self.loop)
        if (
            self.reader.in_head
            and self.active is None
            and self._timer_kind != HEAD_TIMER
            and not self.closing
        ):
            self._arm(HEAD_TIMER, self.limits.header_timeout_s)

    def stop_reading(self) -> None:
        """Nothing more will be parsed on this connection."""
        self.dead = True
        self.pause(PAUSE_STOP)

    def head_done(self) -> None:
        """A header block completed: its deadline is met."""
        if self._timer_kind == HEAD_TIMER:
            self._disarm()

    def _body_lost(self) -> None:
        parsing = self.reader.parsing
        if parsing is not None and parsing.body is not None:
            parsing.body.lost()

    def _drop_queue(self) -> None:
        for req in self.queue:
            if req.body is not None:
                req.body.release()
            if req.slot is not None:
                self.plane.admission.clients.give(req.slot)
                req.slot = None
        self.queue.clear()

    def pause(self, why: int) -> None:
        """Stop reading for `why` (one of the PAUSE_ reasons)."""
        if not self._paused and self.transport is not None and not self.lost:
            self.transport.pause_reading()
        self._paused |= why

    def resume(self, why: int) -> None:
        """`why` no longer holds; read again if nothing else holds."""
        if self._paused & why:
            self._paused &= ~why
            if not self._paused and self.transport is not None and not self.lost and not self.closing:
                self.transport.resume_reading()

    def _wake_drainer(self) -> None:
        if self._drainer is not None and not self._drainer.done():
            self._drainer.set_result(None)
        self._drainer = None

    def _arm(self, kind: int, delay: float) -> None:
        self._timer_kind = kind
        self._timer.arm(self.loop.time() + delay)

    def _disarm(self) -> None:
        self._timer_kind = 0
        self._timer.disarm()

    def _expire(self) -> None:
        kind, self._timer_kind = self._timer_kind, 0
        transport = self.transport
        if self.lost or transport is None:
            return
        if kind == LINGER_TIMER:
            transport.close()
        elif kind == IDLE_TIMER:
            if self.active is None and not self.queue:
                self.close(linger=False)
        elif self.active is None and not self.queue:  # HEAD_TIMER: still no complete header block
            self.plane.slow_header.inc()
            # A previous answer still being flushed (a client that reads slowly) must not get bytes mixed in.
            if transport.get_write_buffer_size() == 0:
                timeout_answer(
                    self,
                    RequestTimeout(f"header block not complete within {self.limits.header_timeout_s:g} s"),
                )
            self.stop_reading()
            self.close(linger=True)
