"""A bounded work queue that never blocks its producer, the workers that serve it, and a deadline on closing.

Usage:
    queue = WorkQueue[Job](capacity=100, workers=4, on_drop=complete_as_dropped)
    runner = spawn(queue.serve(handle))     # handle(batch): an async function of a list of items
    queue.offer(job)                        # on the request path: O(1), never waits; False: dropped, counted
    left = await queue.close(deadline_s)    # take no more; let the workers finish; count the rest dropped

Every item offered is, between callbacks of the event loop, in exactly one place:
    offered == (handled by the workers) + pending + sum(dropped.values())
where the owner counts what its handler made of an item (stored, delivered, ...) and drops it counts itself
(`drop`). Items go to the workers in order, in batches of at most `batch`: a worker takes what is queued as
soon as there is something (several workers share the queue), or, with `linger`, sleeps up to that long
unless `wake_at` items are queued (group commit), before every batch: the first, and each after the last.
Closing refuses new items (`shutdown`), waits until nothing is pending, and at the deadline drops what is
still queued (`shutdown`); with `cancel` it then cancels the workers, whose handler counts the items in its
hands.
The workers are the tasks running `serve`, which ends when they have stopped: after `close`, once the queue is
empty.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["WorkQueue"]


class WorkQueue(Generic[T]):
    """Bounded FIFO + `workers` coroutines + drops by reason + close with a deadline."""

    def __init__(
        self,
        capacity: int,
        *,
        workers: int = 1,
        batch: int = 1,
        linger: float | None = None,
        wake_at: int = 1,
        full: str = "queue_full",
        counts: Counter[str] | None = None,
        on_drop: Callable[[T, str], object] | None = None,
    ) -> None:
        """`full`: the reason counted for an item offered to a full queue (changeable later, e.g. by an
        owner whose backend is down); `counts`: the Counter drops are counted in (the owner's, if it counts
        more there); `on_drop(item, reason)`: called for every item dropped, after it is counted."""
        self.capacity, self.workers, self.batch = capacity, workers, batch
        self.linger, self.wake_at, self.full = linger, wake_at, full
        self.items: deque[T] = deque()
        self.offered = 0
        """Items passed to `offer` (accepted or not)."""
        self.busy = 0
        """Items taken by a worker and not yet handled."""
        self.dropped: Counter[str] = Counter() if counts is None else counts
        self.closing = False
        self.on_drop = on_drop
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._idle: asyncio.Future[None] | None = None
        self._running: set[asyncio.Task[Any]] = set()

    @property
    def depth(self) -> int:
        """Items waiting for a worker."""
        return len(self.items)

    @property
    def pending(self) -> int:
        """Items accepted and neither handled nor dropped (waiting, or in a worker's hands)."""
        return len(self.items) + self.busy

    def refusal(self) -> str | None:
        """Why an item offered now would be dropped (`shutdown`, the `full` reason), or None."""
        if self.closing:
            return "shutdown"
        if len(self.items) >= self.capacity:
            return self.full
        return None

    def offer(self, item: T) -> bool:
        """Queue `item` without waiting; False, and counted as dropped, when closing or full."""
        # Written out (no call to `refusal` or `put`): this runs once per request.
        self.offered += 1
        if self.closing:
            return self.drop(item, "shutdown")
        if len(self.items) >= self.capacity:
            return self.drop(item, self.full)
        self.items.append(item)
        if self._waiters and len(self.items) >= self.wake_at:
            self._wake_one()
        return True

    def put(self, item: T) -> None:
        """Queue `item` unchecked: its owner just asked `refusal` (with no await since) and counts offers."""
        self.items.append(item)
        if self._waiters and len(self.items) >= self.wake_at:
            self._wake_one()

    def drop(self, item: T, reason: str) -> bool:
        """Count `item` as dropped for `reason` (and tell `on_drop`); False, for `offer`'s callers."""
        self.dropped[reason] += 1
        if self.on_drop is not None:
            self.on_drop(item, reason)
        return False

    async def serve(self, handle: Callable[[list[T]], Awaitable[object]]) -> None:
        """Run the workers until `close` and the queue is empty. `handle` gets each batch in turn; what it
        raises ends the serving (so it should catch its own failures)."""
        await asyncio.gather(*(self._worker(handle) for _ in range(self.workers)))

    async def _worker(self, handle: Callable[[list[T]], Awaitable[object]]) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        items = self.items
        try:
            lingered = False  # waited for this batch already (its first items, or since the last batch)
            while True:
                if not items:
                    if self.closing:
                        return
                    await self._wait()
                    lingered = True
                    continue
                short = len(items) < self.wake_at
                if short and not lingered and self.linger is not None and not self.closing:
                    # Group commit after a batch too: what came in while it was handled is not a batch yet.
                    # (Taken at once, batches shrank under load to the few items that came during the last
                    # one, and the per-batch cost was paid every few items.)
                    await self._wait()
                    lingered = True
                    continue
                lingered = False
                batch = [items.popleft() for _ in range(min(len(items), self.batch))]
                self.busy += len(batch)
                try:
                    await handle(batch)
                finally:
                    self.busy -= len(batch)
                    self._check_idle()
        finally:
            self._running.discard(task)

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            if self.linger is None:
                await waiter
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, self.linger)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _check_idle(self) -> None:
        if self._idle is not None and not self._idle.done() and self.pending == 0:
            self._idle.set_result(None)

    async def close(self, deadline_s: float, *, cancel: bool = False) -> int | None:
        """Take no more items; wait up to `deadline_s` until none is pending. None: all were handled in
        time. Otherwise the number still queued, now dropped as `shutdown`; with `cancel` the workers are
        then cancelled (and awaited: their handler counts the items in its hands)."""
        self.closing = True
        while self._waiters:  # idle workers: see the queue closed (and empty) and stop
            self._wake_one()
        if self.pending == 0:
            return None
        self._idle = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._idle), deadline_s)
            return None
        except TimeoutError:
            pass
        left = len(self.items)
        while self.items:
            self.drop(self.items.popleft(), "shutdown")
        running = set(self._running)
        if cancel and running:
            for task in running:
                task.cancel()
            await asyncio.wait(running)
        return left

    def snapshot(self) -> dict[str, object]:
        """The counters, read in one go."""
        return {
            "offered": self.offered,
            "depth": self.depth,
            "pending": self.pending,
            "dropped": dict(self.dropped),
        }
