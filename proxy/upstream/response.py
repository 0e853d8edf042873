"""One upstream answer as it arrives: status and end-to-end headers, then the body, whole or as a stream.

Usage (proxy.filters.forward):
    resp = conn.send(head, body, deadline, head_only=False)
    await resp.ready                      # the head (streamed) or the whole message (buffered)
    reply = Reply(resp.status, None, resp.body(), raw=resp.raw) if not resp.streamed else ... stream=resp

Buffering rule: a body whose Content-Length is at most `BUFFER_MAX` (and is not `text/event-stream`) is read
whole, which is cheapest for the common inference answer; anything else (chunked, unknown length, larger,
event streams) is streamed. A stream is pulled by its consumer: once more than `HIGH_WATER` bytes wait
untaken, reading from the upstream socket pauses until the consumer takes them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from proxy.dataplane.errors import UpstreamError, UpstreamTimeout
from proxy.dataplane.headers import keep_alive_timeout
from proxy.dataplane.raw_headers import RawHeaders

if TYPE_CHECKING:
    from proxy.upstream.connection import UpstreamConnection

BUFFER_MAX = 64 * 1024
"""Bodies with a Content-Length up to this are read whole into `Reply.body`."""
HIGH_WATER = 256 * 1024
"""Untaken stream bytes beyond which the upstream socket is not read (backpressure)."""
NO_BODY_STATUSES = frozenset({204, 304})
NO_HEADERS = RawHeaders([])
"""Before the head arrives (never added to: a response gets its own at `on_head`)."""


class UpstreamResponse:
    """The answer to one request on one connection; as a `BodyStream` (proxy.dataplane.exchange) when
    streamed."""

    # fmt: off
    __slots__ = (  # one attribute per name: no __dict__ on an object made for every request
        "_chunks",
        "_closed",
        "_conn",
        "_last_rx",
        "_paused",
        "_size",
        "_waiter",
        "body_done",
        "content_length",
        "ended_at",
        "error",
        "event_stream",
        "first_byte_at",
        "keep_alive_s",
        "on_end",
        "raw",
        "ready",
        "status",
        "stream_idle_s",
        "stream_limit_s",
        "stream_until",
        "streamed",
        "timer",
        "until_eof",
    )
    # fmt: on

    def __init__(self, conn: UpstreamConnection, ready: asyncio.Future[None]) -> None:
        self._conn = conn
        self.ready = ready
        """Done when the head arrived (streamed) or the whole message did (buffered); or with the error."""
        self.timer: asyncio.TimerHandle | None = None
        """A streamed body's deadlines (the route deadline, until the head, is the connection's)."""
        self.stream_idle_s: float | None = None
        """A streamed body fails with UpstreamTimeout after this long without a byte (None: never)."""
        self.stream_limit_s: float | None = None
        """A streamed body fails with UpstreamTimeout this long after its head (None: no limit)."""
        self.stream_until: float | None = None
        self._last_rx = 0.0
        self.status = 0
        self.raw = NO_HEADERS
        """End-to-end headers only (hop-by-hop, framing and the edge's own headers stripped), as sent."""
        self.content_length: int | None = None
        self.event_stream = False
        self.streamed = False
        self.until_eof = False
        """The body ends when the upstream closes the connection (no length, not chunked)."""
        self.keep_alive_s: float | None = None
        self.first_byte_at: float | None = None
        """time.monotonic() of the first response byte."""
        self.ended_at: float | None = None
        self.body_done = False
        """The body ended: complete, failed, or closed early (`error` tells which)."""
        self.error: UpstreamError | None = None
        self.on_end: Callable[[], None] | None = None
        """Called once when the body ends, whichever way."""
        self._chunks: list[bytes] = []
        self._size = 0
        self._paused = False
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None

    # -- fed by the connection (parser callbacks) ------------------------------------------------------

    def on_head(self, status: int, raw: list[tuple[bytes, bytes]], head_only: bool) -> None:
        """The status line and headers arrived: keep the end-to-end headers, decide buffered or streamed."""
        head = self.raw = RawHeaders.of(raw)
        self.status = status
        self.content_length = head.content_length
        chunked = head.chunked
        if head.keep_alive is not None:
            self.keep_alive_s = keep_alive_timeout(head.keep_alive.decode("latin-1"))
        self.event_stream = head.content_type[:17].lower() == "text/event-stream"
        no_body = head_only or status in NO_BODY_STATUSES
        small = self.content_length is not None and self.content_length <= BUFFER_MAX
        self.streamed = not no_body and (not small or self.event_stream)
        self.until_eof = not no_body and self.content_length is None and not chunked
        if self.streamed:
            self._stream_deadlines()
            self.ready.set_result(None)

    def on_body(self, chunk: bytes) -> None:
        """A piece of the body."""
        self._chunks.append(chunk)
        if not self.streamed:
            return
        self._size += len(chunk)
        self._last_rx = self.ready.get_loop().time()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._size > HIGH_WATER and not self._paused:
            self._paused = True
            self._conn.pause_reading()

    def complete(self) -> None:
        """The whole body arrived."""
        if self.body_done:
            return
        if self._paused:  # the message is over: the connection must see EOF and new answers again
            self._paused = False
            self._conn.resume_reading()
        self._end()

    def fail(self, err: UpstreamError) -> None:
        """The answer cannot complete (reset, invalid bytes, deadline)."""
        if self.body_done:
            return
        self.error = err
        self._end()

    def expire(self) -> None:
        """The route deadline passed (the connection's watchdog says so)."""
        if self.body_done:
            return
        self.fail(UpstreamTimeout("upstream did not finish within the route timeout"))
        self._conn.abort()

    def _stream_deadlines(self) -> None:
        """The head of a streamed answer arrived: the route deadline is met; from now the stream's own."""
        if self._conn.deadline is not None:
            self._conn.deadline.disarm()
        loop = self.ready.get_loop()
        self._last_rx = now = loop.time()
        if self.stream_limit_s is not None:
            self.stream_until = now + self.stream_limit_s
        self._arm_stream(loop)

    def _arm_stream(self, loop: asyncio.AbstractEventLoop) -> None:
        due = self.stream_until
        if self.stream_idle_s is not None:
            idle_due = self._last_rx + self.stream_idle_s
            due = idle_due if due is None else min(due, idle_due)
        if due is not None:
            self.timer = loop.call_at(due, self._stream_check)

    def _stream_check(self) -> None:
        """A stream deadline may have passed (one timer, re-armed, rather than one per chunk)."""
        self.timer = None
        if self.body_done:
            return
        loop = self.ready.get_loop()
        now = loop.time()
        if self.stream_until is not None and now >= self.stream_until:
            detail = "upstream stream did not end within the stream timeout"
        elif (
            self.stream_idle_s is not None and not self._paused and now - self._last_rx >= self.stream_idle_s
        ):
            detail = f"upstream stream sent nothing for {self.stream_idle_s:g}s"
        else:  # bytes came meanwhile, or we are the ones not reading (backpressure): not its silence
            if self._paused:
                self._last_rx = now
            self._arm_stream(loop)
            return
        self.fail(UpstreamTimeout(detail))
        self._conn.abort()

    def awaiting_eof(self) -> bool:
        """The head arrived and the body is delimited by the connection's close: the close completes it."""
        return self.until_eof and not self.body_done

    def _end(self) -> None:
        self.body_done = True
        self.ended_at = time.monotonic()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        ready = self.ready
        if not ready.done():
            if self.error is not None:
                ready.set_exception(self.error)
            else:
                ready.set_result(None)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.on_end is not None:
            self.on_end()

    # -- read by the forwarder and the client side --------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Stream bytes received and not yet taken (at most about `HIGH_WATER` plus one read)."""
        return self._size

    def body(self) -> bytes:
        """Everything received so far (the whole body once `ready` is done for a buffered answer)."""
        chunks = self._chunks
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    def abort(self) -> None:
        """Stop: close the connection if the message is not over (its framing is lost), wake any reader."""
        if self._closed:
            return
        self._closed = True
        self._chunks.clear()
        self._size = 0
        ready = self.ready
        if not ready.done():
            ready.cancel()
        elif not ready.cancelled():
            ready.exception()  # retrieved: an error nobody awaits any more is not worth a warning
        if not self.body_done:
            self._conn.abort()
            self.fail(UpstreamError("closed before the end"))

    def __aiter__(self) -> UpstreamResponse:
        """The body's chunks as they arrive (pending ones joined), then the end or the error."""
        return self

    async def __anext__(self) -> bytes:
        """The next chunk; StopAsyncIteration at the end; the `UpstreamError` after the first byte."""
        while True:
            chunks = self._chunks
            if chunks:
                chunk = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._size = 0
                if self._paused:
                    self._paused = False
                    self._conn.resume_reading()
                return chunk
            if self._closed:
                raise StopAsyncIteration
            if self.body_done:
                if self.error is not None:
                    raise self.error
                raise StopAsyncIteration
            waiter = self._waiter = self.ready.get_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def aclose(self) -> None:
        """Stop reading and close the upstream connection unless the answer was complete (idempotent)."""
        self.abort()
