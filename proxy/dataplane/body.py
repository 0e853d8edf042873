"""Request bodies on the native data plane: read only when the chain asks (after auth, rate limits and
routing), held against the global body budget, and cut when the client is too slow.

Usage: filters = [client_ip, auth, ratelimit, route, ReadBody(max_body_bytes), record, ...]

`RequestBody` collects one request's body as the parser hands it over. Until `read` is called only a little
(`PREREAD_BYTES`, what arrived with the head) is taken: then the connection stops reading, so a client that is
refused on its headers (401, 429, 404) never gets its body read. Once reading, a body must keep three paces:

- its running average at least `body_min_rate` after `header_timeout_s` of grace (deadline: start + grace +
  received / rate, the pace the aiohttp plane has always applied);
- at least `body_min_rate × body_rate_window_s` bytes in every window of `body_rate_window_s`, checked every
  quarter window: a client that sends 10 MiB − 1 at once and then trickles is cut after about one window
  instead of the hours its average would allow;
- complete within `body_timeout_s` whatever its speed.

Each chunk is reserved in the process-wide `BodyBudget` before it is kept: beyond the budget the request gets
503 (proxy.dataplane.errors.Overloaded). The reservation is returned when the request ends.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from proxy.dataplane.chain import Stage
from proxy.dataplane.errors import BadRequest, OutriderError, Overloaded, PayloadTooLarge, RequestTimeout
from proxy.dataplane.exchange import Exchange, Reply
from proxy.dataplane.limits import BodyBudget, PlaneLimits

PREREAD_BYTES = 64 * 1024
"""Body bytes taken before the chain asks for the body; beyond, the connection stops reading."""
MARKS = 5  # window checkpoints kept: the window spans the last four quarter-window steps


class BodyHost(Protocol):
    """The connection a body arrives on."""

    def body_wanted(self, body: RequestBody) -> None:
        """The chain reads the body now: read from the client again (and send 100 Continue if awaited)."""
        ...

    def body_failed(self, body: RequestBody, err: OutriderError) -> None:
        """The body will never complete (`err` says why): stop reading it."""
        ...


class RequestBody:
    """One request's body as it arrives; `read` returns it whole (proxy.dataplane.exchange.PendingBody)."""

    __slots__ = (
        "_marks",
        "_next_mark",
        "_started",
        "_timer",
        "_waiter",
        "budget",
        "cap",
        "chunks",
        "complete",
        "error",
        "expect_continue",
        "host",
        "length",
        "limits",
        "reserved",
        "size",
        "wanted",
    )

    def __init__(
        self,
        host: BodyHost,
        budget: BodyBudget,
        limits: PlaneLimits,
        length: int | None,
        expect_continue: bool,
    ) -> None:
        self.host = host
        self.budget = budget
        self.limits = limits
        self.length = length
        self.expect_continue = expect_continue
        self.cap = limits.max_body_bytes
        self.chunks: list[bytes] = []
        self.size = 0
        self.reserved = 0
        self.complete = False
        self.error: OutriderError | None = None
        self.wanted = False
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._started = 0.0
        self._next_mark = 0.0
        self._marks: deque[int] | None = None  # made when reading starts: most bodies come whole

    # the parser's side

    def feed(self, chunk: bytes) -> None:
        """Keep one chunk (or fail the body: over its cap, or over the global budget)."""
        if self.error is not None:
            return
        size = self.size + len(chunk)
        if size > self.cap:
            self.fail(PayloadTooLarge(f"body is over the cap of {self.cap} bytes"))
        elif not self.budget.take(len(chunk)):
            self.fail(Overloaded("request bodies held in memory are at their cap; retry later"))
        else:
            self.reserved += len(chunk)
            self.size = size
            self.chunks.append(chunk)

    def finish(self) -> None:
        """The last byte arrived."""
        if self.error is None:
            self.complete = True
            self._wake()

    def fail(self, err: OutriderError) -> None:
        """The body will not complete: drop what was kept and tell the reader (now or when it asks)."""
        if self.error is not None or self.complete:
            return
        self.error = err
        self.release()
        self._wake()
        self.host.body_failed(self, err)

    def lost(self) -> None:
        """The client went away."""
        self.fail(BadRequest("connection closed before the body was complete"))

    def release(self) -> None:
        """The request is over (or the body failed): return the reserved bytes."""
        self.chunks = []
        if self.reserved:
            self.budget.give(self.reserved)
            self.reserved = 0
        self._stop_clock()

    def take(self) -> bytes:
        """The complete body in one piece (the reservation is held until `release`)."""
        chunks = self.chunks
        self.chunks = []
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # the chain's side

    async def read(self, cap: int) -> bytes:
        """The whole body; PayloadTooLarge as soon as it is known to exceed `cap` (without reading it),
        RequestTimeout when it falls behind, Overloaded beyond the global budget."""
        if self.length is not None and self.length > cap:
            raise PayloadTooLarge(f"body of {self.length} bytes is over the cap of {cap}")
        if self.size > cap:
            raise PayloadTooLarge(f"body is over the cap of {cap} bytes")
        self.cap = cap
        if not self.complete and self.error is None:
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            self._start_clock(loop)
            self.wanted = True
            self.host.body_wanted(self)
            try:
                await waiter
            finally:
                self._waiter = None
                self._stop_clock()
        if self.error is not None:
            raise self.error
        return self.take()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # the paces

    def _start_clock(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        self._started = now
        self._marks = deque([self.size], maxlen=MARKS)
        self._next_mark = now + self.limits.body_rate_window_s / (MARKS - 1)
        self._arm(loop)

    def _stop_clock(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        lim = self.limits
        due = min(
            self._started + lim.header_timeout_s + self.size / lim.body_min_rate,
            self._next_mark,
            self._started + lim.body_timeout_s,
        )
        # Bytes arriving never touch the timer: it wakes at the earliest deadline and re-arms if that moved.
        self._timer = loop.call_at(due, self._check, loop)

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self.complete or self.error is not None:
            return
        problem = self._behind(loop.time())
        if problem is None:
            self._arm(loop)
        else:
            self.fail(RequestTimeout(f"{problem} ({self.size} bytes received)"))

    def _behind(self, now: float) -> str | None:
        """Which pace the body has fallen behind at `now`, if any."""
        lim, size = self.limits, self.size
        if now >= self._started + lim.body_timeout_s:
            return f"body not complete within {lim.body_timeout_s:g} s"
        if now >= self._started + lim.header_timeout_s + size / lim.body_min_rate:
            return f"body arrived slower than {lim.body_min_rate} bytes/s"
        marks = self._marks
        if marks is not None and now >= self._next_mark:
            marks.append(size)
            # from now, not from the missed mark: a stalled loop must not make a window look empty
            self._next_mark = now + lim.body_rate_window_s / (MARKS - 1)
            if len(marks) == MARKS and marks[-1] - marks[0] < lim.body_min_rate * lim.body_rate_window_s:
                return (
                    f"body arrived slower than {lim.body_min_rate} bytes/s over {lim.body_rate_window_s:g} s"
                )
        return None


class ReadBody:
    """The `body` stage: reads a pending body (capped by the route's `spec.maxBodyBytes`) into `ex.inbound`.

    Placed after `route`, so auth, rate limits and routing never wait for a body. A request whose body came
    whole with its head (or any request on the aiohttp data plane) has nothing pending and passes through.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap

    def enter(self, ex: Exchange) -> bool:
        """Nothing to read (the body came with its head): go on without a stage of its own."""
        return ex.pending_body is None

    async def __call__(self, ex: Exchange, call_next: Stage) -> Reply:
        """Read the body if it is still pending, then continue."""
        pending = ex.pending_body
        if pending is not None:
            cap = self.cap
            if ex.assignment is not None:
                cap = min(cap, ex.assignment.experiment.max_body_bytes)
            body = await pending.read(cap)
            ex.pending_body = None
            ex.inbound = ex.inbound.with_body(body)
        return await call_next(ex)
