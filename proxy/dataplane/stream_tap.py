"""Watching a streamed body on its way to the client: `TappedStream` reports each chunk and, once, how the
stream ended; `SseCounter` counts server-sent events in chunks cut anywhere.

Usage:
    reply.stream = TappedStream(reply.stream, on_end=lambda outcome, sent: ..., on_chunk=counter.feed)
The outcome is `COMPLETE`, `CLOSED` (stopped early: the client went away) or the exception that ended it.
Filters that wrap a stream nest: the innermost (nearest the upstream) sees the end first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from proxy.dataplane.exchange import BodyStream

COMPLETE = "complete"
CLOSED = "closed"

Outcome = str | BaseException
"""`COMPLETE`, `CLOSED`, or the exception that ended the iteration."""


class TappedStream:
    """A `BodyStream` around another: counts the bytes taken, calls `on_chunk` per chunk, `on_end` once."""

    __slots__ = ("_inner", "_iter", "_on_chunk", "_on_end", "bytes_out")

    def __init__(
        self,
        inner: BodyStream,
        on_end: Callable[[Outcome, int], None],
        on_chunk: Callable[[bytes], None] | None = None,
    ) -> None:
        self._inner = inner
        self._iter: AsyncIterator[bytes] | None = None
        self._on_end: Callable[[Outcome, int], None] | None = on_end
        self._on_chunk = on_chunk
        self.bytes_out = 0
        """Body bytes handed to the client side so far."""

    def __aiter__(self) -> TappedStream:
        """The inner stream's chunks."""
        return self

    async def __anext__(self) -> bytes:
        """The next chunk, seen on its way."""
        it = self._iter
        if it is None:
            it = self._iter = self._inner.__aiter__()
        try:
            chunk = await it.__anext__()
        except StopAsyncIteration:
            self._end(COMPLETE)
            raise
        except BaseException as err:  # an upstream error after the first byte, or the client gone
            self._end(err)
            raise
        self.bytes_out += len(chunk)
        if self._on_chunk is not None:
            self._on_chunk(chunk)
        return chunk

    async def aclose(self) -> None:
        """Close the inner stream first (its end is reported inside-out), then report ours."""
        try:
            await self._inner.aclose()
        finally:
            self._end(CLOSED)

    def _end(self, outcome: Outcome) -> None:
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end(outcome, self.bytes_out)


class SseCounter:
    """Counts events of a `text/event-stream` body: blocks of lines ended by a blank line, comment-only
    blocks (`: keep-alive`) not counted. Lines end with CRLF, LF or CR, split across chunks anywhere."""

    __slots__ = ("_after_cr", "_in_block", "_line_open", "events")

    def __init__(self) -> None:
        self.events = 0
        self._in_block = False  # a non-comment line was seen since the last blank line
        self._line_open = False  # the current line has started (its end is still to come)
        self._after_cr = False  # the last byte was CR: a LF right after it ends nothing new

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the body."""
        if not chunk:
            return
        if self._after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._after_cr = chunk[-1:] == b"\r"
        for line in chunk.splitlines(keepends=True):
            ended = line[-1:] in (b"\n", b"\r")
            text = line.rstrip(b"\r\n")
            if text:
                if not self._line_open and not text.startswith(b":"):
                    self._in_block = True
                self._line_open = not ended
            elif self._line_open:  # the end of a line begun in an earlier chunk
                self._line_open = False
            elif ended:  # a blank line: the block, if it held a field, is an event
                if self._in_block:
                    self.events += 1
                self._in_block = False
