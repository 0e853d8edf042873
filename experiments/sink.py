"""The outcome queue between the request path and the store: bounded, never blocking, nothing lost silently.

Usage:
    sink = OutcomeSink(store)          # store: anything with a blocking write(batch)
    task = spawn(sink.run(), name="outcome-writer")
    sink.submit(record)                # on the request path: O(1), never waits
    await sink.close(timeout=5)        # on shutdown: flush what is pending

Invariant, true whenever the event loop is between callbacks (so on every /metrics scrape):
    produced == stored + pending + sum(dropped.values())
The writer runs batches in its own thread (group commit); all counters change on the loop thread only. The
queue, its drops by reason and the drain on close are `plumbing.workqueue.WorkQueue`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from experiments.outcome import OutcomeRecord
from plumbing.workqueue import WorkQueue

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

    submit: Callable[[OutcomeRecord], bool]
    """Queue a record; False (and counted as dropped) if the queue is full or the sink closed. On the request
    path: it is the queue's own `offer`, bound in `__init__` (no call in between)."""

    def __init__(self, backend: OutcomeBackend, limits: SinkLimits | None = None) -> None:
        self.backend = backend
        self.limits = limits = limits or SinkLimits()
        self.stored = 0
        self.dropped_by_variant: Counter[tuple[str, str]] = Counter()
        self._queue = WorkQueue[OutcomeRecord](
            limits.max_pending,
            batch=limits.batch_max,
            linger=limits.flush_interval_s,
            wake_at=limits.batch_max,
            on_drop=self._count_variant,
        )
        self.submit = self._queue.offer
        self.dropped = self._queue.dropped
        self._failing = False
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outcome-writer")
        """The store's thread: one, its own (the default executor's several threads took the batches in
        turns, each cold), named in profiles."""

    @property
    def produced(self) -> int:
        """Records submitted (stored, pending or dropped)."""
        return self._queue.offered

    @property
    def pending(self) -> int:
        """Records accepted but not yet stored (queued or being written)."""
        return self._queue.pending

    @property
    def failing(self) -> bool:
        """True from a failed write until the next one that succeeds (a full queue then drops records as
        `store_unavailable`, not `queue_full`)."""
        return self._failing

    @failing.setter
    def failing(self, value: bool) -> None:
        self._failing = value
        self._queue.full = "store_unavailable" if value else "queue_full"

    def _count_variant(self, record: OutcomeRecord, reason: str) -> None:
        self.dropped_by_variant[record.experiment, record.variant] += 1

    def drops_for(self, experiment: str) -> dict[str, int]:
        """Dropped records of `experiment` per variant (the engine refuses to promote past 0.1% of an arm)."""
        return {v: n for (e, v), n in self.dropped_by_variant.items() if e == experiment}

    async def run(self) -> None:
        """The writer: a batch as soon as records wait (woken early by a full one, else every flush
        interval); exits after close() drained the queue."""
        await self._queue.serve(self._write_one_batch)

    async def _write_one_batch(self, batch: list[OutcomeRecord]) -> None:
        n = len(batch)
        attempts = self.limits.write_attempts
        try:
            attempt = 0
            while True:
                attempt += 1
                try:
                    await asyncio.get_running_loop().run_in_executor(self._writer, self.backend.write, batch)
                except Exception as err:
                    if not self.failing or attempts:
                        log.error(
                            "outcome batch write failed (attempt %d of %s): %s", attempt, attempts or "∞", err
                        )
                    self.failing = True
                    if attempt == attempts:
                        for record in batch:
                            self._queue.drop(record, "write_error")
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
                self._queue.drop(record, "shutdown")
            raise

    async def close(self, timeout: float) -> None:
        """Refuse new records, flush the queue within `timeout`, count what could not be written."""
        left = await self._queue.close(timeout)
        self._writer.shutdown(wait=False)  # a write still running finishes; its batch was counted
        if left is not None:
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
