"""Bounded dispatch of mirrored copies to shadow upstreams, on their own connection pool.

Usage:
    dispatcher = ShadowDispatcher(ShadowLimits())   # or ShadowDispatcher(limits, send=fake, clock=fake)
    tasks.spawn(dispatcher.run(), name="shadow-dispatch")
    dispatcher.offer(job)            # on the request path: O(1), never waits; a full queue drops the copy
    await dispatcher.close(timeout)  # stop taking copies, let the workers finish, close the pools

A fixed set of workers serves one bounded queue (`plumbing.workqueue`), so a hung or slow shadow can only
fill the queue — never hold client requests, memory or connections of the primary (docs/reliability.md:
shadow isolation). Large answers are compared in `comparisons` (`shadow.compare.pool`), off the event loop;
while it is full, copies that would need a comparison are dropped (`compare_busy`). Counters obey
`eligible == enqueued + dropped + sampled_out` exactly (the mirror filter counts eligible and sampled_out).
Copies go out through a `Send` (`shadow.transport`): HTTP on the dispatcher's own pool unless one is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable

from plumbing.workqueue import WorkQueue
from shadow.compare.pool import ComparePool
from shadow.limits import ShadowLimits
from shadow.pairing import Pair, ShadowResult
from shadow.transport import HttpSend, Send, ShadowJob

__all__ = ["SHADOW_HEADER", "Breaker", "ShadowDispatcher", "ShadowJob", "ShadowLimits", "shadow_host"]

log = logging.getLogger(__name__)
SHADOW_HEADER = "x-outrider-shadow"


class Breaker:
    """Per-shadow circuit breaker: a dead or hung shadow costs one probe per interval, not a connection per
    copy (without it, every worker would open, hang on and tear down a connection per timeout)."""

    __slots__ = ("failures", "limit", "open_for", "open_until", "probing")

    def __init__(self, limit: int, open_for: float) -> None:
        self.limit, self.open_for = limit, open_for
        self.failures = 0
        self.open_until = 0.0
        self.probing = False

    def admits(self, now: float) -> bool:
        """Whether a copy may go out now (half-open: exactly one probe at a time)."""
        if self.failures < self.limit:
            return True
        if now < self.open_until or self.probing:
            return False
        self.probing = True
        return True

    def record(self, ok: bool, now: float) -> None:
        """Account one finished call."""
        self.probing = False
        if ok:
            self.failures = 0
            return
        self.failures += 1
        if self.failures >= self.limit:
            self.open_until = now + self.open_for


def shadow_host(host: str) -> str:
    """`models.local:8080` → `models.local-shadow:8080` (Envoy's convention, so upstream logs can tell)."""
    name, sep, port = host.rpartition(":")
    has_port = bool(sep) and port.isdigit() and ("[" not in host or name.endswith("]"))
    if has_port:
        return f"{name}-shadow:{port}"
    return f"{host}-shadow"


class ShadowDispatcher:
    """Queue + workers + pool for shadow traffic."""

    def __init__(
        self,
        limits: ShadowLimits | None = None,
        *,
        send: Send | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or ShadowLimits()
        self._send = send
        """Sends a copy (a test's function); None: HTTP on the dispatcher's own pool (`HttpSend`)."""
        self.clock = clock
        """Time for the circuit breakers (a test's clock moves without sleeping)."""
        self._queue = WorkQueue[ShadowJob](
            self.limits.queue, workers=self.limits.workers, on_drop=self._complete_dropped
        )
        self.eligible = 0
        self.sampled_out = 0
        self.enqueued = 0
        self.dropped = self._queue.dropped
        self.results: Counter[str] = Counter()
        """Completed shadow calls by outcome class (`ok`, `timeout`, `upstream_5xx`, ...)."""
        self.max_depth = 0
        self._breakers: dict[str, Breaker] = {}
        self.comparisons = ComparePool(self.limits.compare)

    @property
    def depth(self) -> int:
        """Jobs waiting in the queue."""
        return self._queue.depth

    def refusal(self, variant: str, compared: bool = False) -> str | None:
        """Why a copy for `variant` would be dropped right now (None: it would be queued). Cheap, so the
        mirror filter can skip building a copy that cannot go out. `compared`: its answer will be compared.

        Admitting a copy may let it through a half-open circuit as the probe: a copy checked here must be
        offered with `checked=True`, not checked again."""
        reason = self._queue.refusal()  # `shutdown`, `queue_full`
        if reason is not None:
            return reason
        if compared and self.comparisons.busy:
            return "compare_busy"
        breaker = self._breakers.get(variant)
        if breaker is not None and not breaker.admits(self.clock()):
            return "circuit_open"
        return None

    def drop(self, pair: Pair, variant: str, reason: str) -> None:
        """Count a copy that is not sent, and complete its side of the pair."""
        self.dropped[reason] += 1
        pair.shadow_done(variant, ShadowResult(0, f"dropped:{reason}", 0.0))

    def _complete_dropped(self, job: ShadowJob, reason: str) -> None:
        job.pair.shadow_done(job.variant, ShadowResult(0, f"dropped:{reason}", 0.0))

    def offer(self, job: ShadowJob, *, checked: bool = False) -> bool:
        """Enqueue without waiting; a full queue or compare pool, an open circuit or closing drops the copy
        and says so. `checked`: `refusal` just admitted it (nothing can have changed since: no await)."""
        reason = None if checked else self.refusal(job.variant, job.compared)
        if reason is not None:
            self.drop(job.pair, job.variant, reason)
            return False
        self._queue.put(job)
        self.enqueued += 1
        self.max_depth = max(self.max_depth, self._queue.depth)
        return True

    async def run(self) -> None:
        """Serve the queue with the workers until close()."""
        async with contextlib.AsyncExitStack() as stack:
            if self._send is None:
                self._send = await stack.enter_async_context(
                    HttpSend(self.limits.workers, self.limits.max_response_bytes)
                )
            await asyncio.gather(self._queue.serve(self._serve), self.comparisons.run())

    async def _serve(self, jobs: list[ShadowJob]) -> None:
        for job in jobs:  # one at a time (the queue's batches are of one)
            try:
                # same queue, workers and circuit for every protocol: `via` makes a gRPC copy's call
                send = job.via or self._send
                assert send is not None  # set by run()
                result = await send(job)
                self.results["ok" if result.error is None else result.error] += 1
                breaker = self._breakers.setdefault(
                    job.variant, Breaker(self.limits.breaker_failures, self.limits.breaker_open_s)
                )
                breaker.record(result.status != 0, self.clock())
                job.pair.shadow_done(job.variant, result)
            except asyncio.CancelledError:
                job.pair.shadow_done(job.variant, ShadowResult(0, "dropped:shutdown", 0.0))
                raise
            except Exception:  # a bug here must not kill the worker or lose the record
                log.exception("shadow worker failed on %s", job.variant)
                job.pair.shadow_done(job.variant, ShadowResult(0, "internal", 0.0))

    async def close(self, timeout: float) -> None:
        """Take no more copies; wait up to `timeout` for queued ones and their comparisons; the workers stop
        once the queue is empty (the compare pool is shut down when `run` ends)."""
        deadline = asyncio.get_running_loop().time() + timeout
        # Copies still queued at the deadline are dropped (`shutdown`): their records must still be written.
        if await self._queue.close(timeout) is not None:
            log.warning("shadow queue not drained within %.1fs", timeout)
        # Every copy is done, so every comparison is queued: what remains of the time is theirs.
        await self.comparisons.close(max(0.0, deadline - asyncio.get_running_loop().time()))

    def snapshot(self) -> dict[str, object]:
        """Counters for /metrics and tests."""
        return {
            "eligible": self.eligible,
            "enqueued": self.enqueued,
            "sampled_out": self.sampled_out,
            "dropped": dict(self.dropped),
            "results": dict(self.results),
            "depth": self.depth,
            "max_depth": self.max_depth,
            "compare_backlog": self.comparisons.backlog,
            "compare_max_backlog": self.comparisons.max_backlog,
            "comparisons": dict(self.comparisons.counts),
        }
