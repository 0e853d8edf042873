"""The outcome queue between the request path and the store: bounded, never blocking, nothing lost silently.

Usage:
    sink = OutcomeSink(store)          # store: anything with a blocking write(batch)
    task = spawn(sink.run(), name="outcome-writer")
    sink.submit(record)                # on the request path: O(1), never waits
    await sink.close(timeout=5)        # on shutdown: flush what is pending

Invariant, true whenever the event loop is between callbacks (so on every /metrics scrape):
    produced == stored + pending + sum(dropped.values())
The writer runs batches in a thread (group commit); all counters change on the loop thread only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from experiments.outcome import OutcomeRecord

log = logging.getLogger(__name__)


class OutcomeBackend(Protocol):
    """A store that appends a batch atomically (blocking; called from a worker thread)."""

    def write(self, batch: Sequence[OutcomeRecord]) -> None:
        """Append `batch`, all or nothing."""
        ...


@dataclass(frozen=True, slots=True)
class SinkLimits:
    """Bounds of the queue and the batching."""

    max_pending: int = 100_000
    batch_max: int = 2_000
    flush_interval_s: float = 0.05
    write_attempts: int = 3
    """Attempts per batch before its records are dropped (`write_error`); 0: until it is stored (the Redis
    store: a batch waits for Redis to come back while the queue takes new records up to `max_pending`, and
    what comes beyond that is dropped as `store_unavailable`)."""
    retry_backoff_s: float = 0.2
    retry_backoff_max_s: float = 2.0


class OutcomeSink:
    """Accepts records without blocking and writes them in batches off the event loop."""

    def __init__(self, backend: OutcomeBackend, limits: SinkLimits | None = None) -> None:
        self.backend = backend
        self.limits = limits or SinkLimits()
        self.produced = 0
        self.stored = 0
        self.dropped: Counter[str] = Counter()
        self.dropped_by_variant: Counter[tuple[str, str]] = Counter()
        self._queue: deque[OutcomeRecord] = deque()
        self._inflight = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._stopped = asyncio.Event()
        self.failing = False
        """True from a failed write until the next one that succeeds."""

    @property
    def pending(self) -> int:
        """Records accepted but not yet stored (queued or being written)."""
        return len(self._queue) + self._inflight

    def submit(self, record: OutcomeRecord) -> bool:
        """Queue `record`; False (and counted as dropped) if the queue is full or the sink closed."""
        self.produced += 1
        if self._closing:
            return self._drop(record, "shutdown")
        if len(self._queue) >= self.limits.max_pending:
            return self._drop(record, "store_unavailable" if self.failing else "queue_full")
        self._queue.append(record)
        if len(self._queue) >= self.limits.batch_max:
            self._wake.set()
        return True

    def _drop(self, record: OutcomeRecord, reason: str) -> bool:
        self.dropped[reason] += 1
        self.dropped_by_variant[record.experiment, record.variant] += 1
        return False

    def drops_for(self, experiment: str) -> dict[str, int]:
        """Dropped records of `experiment` per variant (the engine refuses to promote past 0.1% of an arm)."""
        return {v: n for (e, v), n in self.dropped_by_variant.items() if e == experiment}

    async def run(self) -> None:
        """The writer loop: wake on a full batch or every flush interval; exit after close() drained."""
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.limits.flush_interval_s)
                    self._wake.clear()
                    continue
                await self._write_one_batch()
        finally:
            self._stopped.set()

    async def _write_one_batch(self) -> None:
        n = min(len(self._queue), self.limits.batch_max)
        batch = [self._queue.popleft() for _ in range(n)]
        self._inflight = n
        attempts = self.limits.write_attempts
        try:
            attempt = 0
            while True:
                attempt += 1
                try:
                    await asyncio.to_thread(self.backend.write, batch)
                except Exception as err:
                    if not self.failing or attempts:
                        log.error(
                            "outcome batch write failed (attempt %d of %s): %s", attempt, attempts or "∞", err
                        )
                    self.failing = True
                    if attempt == attempts:
                        for record in batch:
                            self._drop(record, "write_error")
                        return
                    await asyncio.sleep(
                        min(self.limits.retry_backoff_s * attempt, self.limits.retry_backoff_max_s)
                    )
                else:
                    if self.failing and not attempts:
                        log.warning("outcome store back: batch of %d stored after %d attempts", n, attempt)
                    self.failing = False
                    self.stored += n
                    return
        except asyncio.CancelledError:
            # Cancelled mid-write at shutdown: the thread may still finish; count the batch as not stored.
            for record in batch:
                self._drop(record, "shutdown")
            raise
        finally:
            self._inflight = 0

    async def close(self, timeout: float) -> None:
        """Refuse new records, flush the queue within `timeout`, count what could not be written."""
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout)
        except TimeoutError:
            left = len(self._queue)
            while self._queue:
                self._drop(self._queue.popleft(), "shutdown")
            log.error("outcome sink: %d records not flushed within %.1fs", left, timeout)

    def balance(self) -> dict[str, object]:
        """`snapshot` and whether produced == stored + pending + sum(dropped) (the admin API's /outcomes)."""
        total = self.stored + self.pending + sum(self.dropped.values())
        return {**self.snapshot(), "balanced": self.produced == total}

    def snapshot(self) -> dict[str, object]:
        """Counters for /metrics and tests, read in one go."""
        return {
            "produced": self.produced,
            "stored": self.stored,
            "pending": self.pending,
            "dropped": dict(self.dropped),
        }
