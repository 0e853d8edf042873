"""One keep-alive connection to an upstream: an `asyncio.Protocol` (plain callbacks, no task per request)
feeding llhttp (`httptools.HttpResponseParser`), one request at a time.

Usage (proxy.upstream.pool makes them): resp = conn.send(head, body, deadline, head_only)
A connection goes back to its pool only when its answer was complete, allowed keep-alive, and every request
byte was written; anything else (an error, an early close, bytes nobody asked for, a HEAD answer, whose
framing llhttp cannot skip) closes it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Protocol, cast

import httptools

from proxy.dataplane.deadline import Deadline
from proxy.dataplane.errors import UpstreamUnavailable
from proxy.upstream.response import UpstreamResponse


class Owner(Protocol):
    """What a connection needs from its pool."""

    def release(self, conn: UpstreamConnection) -> None:
        """Take back a connection whose exchange ended cleanly."""
        ...

    def forget(self, conn: UpstreamConnection) -> None:
        """An idle connection was closed by the upstream."""
        ...


class UpstreamConnection(asyncio.Protocol):
    """A connection and its parser; `response` is the answer in flight (None while idle)."""

    def __init__(self, owner: Owner, key: str) -> None:
        self.owner = owner
        self.key = key
        """The origin it belongs to (scheme://host:port)."""
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.parser = httptools.HttpResponseParser(self)
        # as lax as aiohttp's client was about line ends and chunk-size spaces (harmless: the answer is
        # re-framed for the client), strict about header bytes (they are passed on)
        self.parser.set_dangerous_leniencies(
            lenient_optional_cr_before_lf=True, lenient_spaces_after_chunk_size=True
        )
        self.response: UpstreamResponse | None = None
        self.closed = False
        self.idle_since = 0.0
        """loop.time() when it went back to the pool."""
        self.idle_limit_s: float | None = None
        """How long the upstream said it keeps an idle connection (`Keep-Alive: timeout=N`), if it did."""
        self._raw: list[tuple[bytes, bytes]] = []
        self._head_only = False
        self._interim = False  # a 1xx answer is being parsed; the real one follows
        self._done = False  # the current message is complete
        self._reusable = False
        self.deadline: Deadline | None = None
        """The route deadline of the answer in flight: its whole (buffered), or its head (streamed: the
        response then disarms it, and its stream deadlines take over)."""

    # -- asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Connected (uvloop's transports are not asyncio.Transport subclasses but have its interface)."""
        self.transport = cast(asyncio.Transport, transport)
        self.loop = asyncio.get_running_loop()
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the head and a small body: now

    def data_received(self, data: bytes) -> None:
        """Feed the parser; hand the connection back once its answer is complete."""
        resp = self.response
        if resp is None:  # bytes nobody asked for: the framing of this connection can no longer be trusted
            self.abort()
            return
        if resp.first_byte_at is None:
            resp.first_byte_at = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._broken(resp, "the upstream switched protocols")
        except httptools.HttpParserError as err:
            self._broken(resp, f"invalid upstream response: {err}")
        else:
            if self._done:
                self._detach()

    def eof_received(self) -> bool | None:
        """The upstream closed its side: let the transport close (connection_lost settles the answer)."""
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        """Closed: completes a body delimited by the close, fails any other answer in flight."""
        self.closed = True
        if self.deadline is not None:
            self.deadline.stop()
        resp, self.response = self.response, None
        if resp is None:
            self.owner.forget(self)
        elif resp.awaiting_eof():
            resp.complete()
        else:
            where = "mid-body" if resp.status else "before answering"
            resp.fail(UpstreamUnavailable(f"upstream closed the connection {where}"))

    # -- llhttp callbacks ---------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        """A new message starts; one after the answer in the same read is not ours to read."""
        if self._done:
            self._reusable = False
        self._raw = []

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header line."""
        self._raw.append((name, value))

    def on_headers_complete(self) -> None:
        """The head is complete: a 1xx is skipped; the answer's head goes to the response."""
        status = self.parser.get_status_code()
        if status < 200:
            self._interim = True
            return
        resp = self.response
        if resp is None or self._done:
            return
        resp.on_head(status, self._raw, self._head_only)
        self.idle_limit_s = resp.keep_alive_s
        if self._head_only:  # llhttp would wait for the body a HEAD answer announces but never sends
            self._done = True
            resp.complete()

    def on_body(self, body: bytes) -> None:
        """A piece of the body."""
        resp = self.response
        if resp is not None and not self._done:
            resp.on_body(body)

    def on_message_complete(self) -> None:
        """The message is complete; the connection is reusable if the upstream allows keep-alive."""
        if self._interim:
            self._interim = False
            return
        resp = self.response
        if resp is None or self._done:
            return
        self._done = True
        self._reusable = self.parser.should_keep_alive()
        resp.complete()

    # -- used by the forwarder, the response and the pool ----------------------------------------------------

    def send(self, head: bytes, body: bytes, deadline: float, head_only: bool) -> UpstreamResponse:
        """Write one request (head and body in one call) and return its answer-to-be."""
        loop, transport = self.loop, self.transport
        assert loop is not None
        assert transport is not None
        resp = UpstreamResponse(self, loop.create_future())
        if self.closed or transport.is_closing():  # closed between being handed out and used
            resp.fail(UpstreamUnavailable("upstream closed the connection before answering"))
            return resp
        if self.deadline is None:
            self.deadline = Deadline(loop, self._expired)
        self.deadline.arm(deadline)
        self.response = resp
        self._head_only = head_only
        self._done = self._reusable = self._interim = False
        if body:
            transport.writelines((head, body))
        else:
            transport.write(head)
        return resp

    def _expired(self) -> None:
        resp = self.response
        if resp is not None and not resp.body_done:
            resp.expire()

    def pause_reading(self) -> None:
        """Backpressure: the stream's consumer is behind."""
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """The consumer caught up (or the message is over)."""
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def abort(self) -> None:
        """Close at once, without flushing (an unfinished exchange)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close after flushing (a finished exchange on a connection not kept)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _detach(self) -> None:
        self.response = None
        transport = self.transport
        assert transport is not None
        # an answer that came before the whole request was written (a 413 mid-upload) leaves bytes behind
        if self._reusable and not self.closed and transport.get_write_buffer_size() == 0:
            self.owner.release(self)
        else:
            self.close()

    def _broken(self, resp: UpstreamResponse, detail: str) -> None:
        self.response = None
        resp.fail(UpstreamUnavailable(detail, error_class="invalid_response"))
        self.abort()
