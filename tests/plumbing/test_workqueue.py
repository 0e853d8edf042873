"""`WorkQueue` with real asyncio and handlers that block on events: the bound, the drops by reason, the
workers, batching, and closing within a deadline are checked exactly, with the balance after every step."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from plumbing.workqueue import WorkQueue
from tests.support.wait import wait_until


class Handler:
    """Records each batch; holds it until `gate` opens."""

    def __init__(self, open_: bool = True) -> None:
        self.batches: list[list[int]] = []
        self.handled = 0
        self.gate = asyncio.Event()
        self.cancelled: list[int] = []
        if open_:
            self.gate.set()

    async def __call__(self, batch: list[int]) -> None:
        self.batches.append(batch)
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += batch
            raise
        self.handled += len(batch)


def balanced(queue: WorkQueue[int], handler: Handler) -> bool:
    done = handler.handled + len(handler.cancelled)
    return queue.offered == done + queue.pending + sum(queue.dropped.values())


async def test_a_full_queue_drops_at_once_counts_the_reason_and_tells_the_owner() -> None:
    told: list[tuple[int, str]] = []
    queue = WorkQueue[int](2, on_drop=lambda item, reason: told.append((item, reason)))
    assert [queue.offer(i) for i in range(4)] == [True, True, False, False]
    assert (queue.depth, queue.pending, queue.offered) == (2, 2, 4)
    assert queue.dropped == {"queue_full": 2}
    assert told == [(2, "queue_full"), (3, "queue_full")]
    queue.full = "store_unavailable"  # the owner's backend is down: same bound, other reason
    assert not queue.offer(4)
    assert queue.dropped == {"queue_full": 2, "store_unavailable": 1}
    assert queue.refusal() == "store_unavailable"
    assert balanced(queue, Handler())


async def test_workers_share_the_queue_in_order_and_each_holds_one_item() -> None:
    handler = Handler(open_=False)
    queue = WorkQueue[int](10, workers=3)
    runner = asyncio.create_task(queue.serve(handler))
    for i in range(5):
        assert queue.offer(i)
    await wait_until(lambda: len(handler.batches) == 3, 5.0)
    assert handler.batches == [[0], [1], [2]]
    assert (queue.busy, queue.depth, queue.pending) == (3, 2, 5)
    assert balanced(queue, handler)
    handler.gate.set()
    await wait_until(lambda: queue.pending == 0, 5.0)
    assert sorted(i for (i,) in handler.batches) == [0, 1, 2, 3, 4]
    assert await queue.close(1.0) is None
    await asyncio.wait_for(runner, 5.0)  # the workers stopped: the queue is closed and empty
    assert balanced(queue, handler)


async def test_a_lingering_worker_takes_a_batch_when_it_is_full_or_after_the_linger() -> None:
    handler = Handler()
    queue = WorkQueue[int](100, batch=4, linger=30.0, wake_at=4)
    runner = asyncio.create_task(queue.serve(handler))
    await asyncio.sleep(0.01)  # the worker is waiting
    for i in range(3):
        queue.offer(i)
    await asyncio.sleep(0.05)  # the subject: for this long, nothing is taken
    assert handler.batches == []  # under `wake_at`: it lingers
    queue.offer(3)  # a full batch wakes it at once
    await wait_until(lambda: handler.handled == 4, 5.0)
    assert handler.batches == [[0, 1, 2, 3]]
    queue.offer(4)  # the worker would linger 30 s over this one: close wakes it to take it
    assert await queue.close(5.0) is None
    await asyncio.wait_for(runner, 5.0)
    assert handler.batches == [[0, 1, 2, 3], [4]]


async def test_the_linger_bounds_how_long_a_small_batch_waits() -> None:
    handler = Handler()
    queue = WorkQueue[int](100, batch=10, linger=0.02, wake_at=10)
    runner = asyncio.create_task(queue.serve(handler))
    for i in range(25):
        queue.offer(i)
    await wait_until(lambda: handler.handled == 25, 5.0)
    assert [len(b) for b in handler.batches] == [10, 10, 5]
    await queue.close(1.0)
    await runner


async def test_after_a_batch_the_few_items_that_came_meanwhile_wait_for_more() -> None:
    """Group commit holds after a batch too: under a steady load the batches stay whole instead of shrinking
    to what arrived during the last one (the outcome sink's per-batch cost paid every few records)."""
    handler = Handler(open_=False)
    queue = WorkQueue[int](100, batch=4, linger=30.0, wake_at=4)
    runner = asyncio.create_task(queue.serve(handler))
    for i in range(4):
        queue.offer(i)
    await wait_until(lambda: len(handler.batches) == 1, 5.0)
    queue.offer(4)  # arrives while the first batch is being handled
    handler.gate.set()
    await wait_until(lambda: handler.handled == 4, 5.0)
    await asyncio.sleep(0.05)  # the subject: for this long, the lone item is not taken
    assert handler.batches == [[0, 1, 2, 3]]
    for i in range(5, 8):
        queue.offer(i)  # a full batch again: taken at once
    await wait_until(lambda: handler.handled == 8, 5.0)
    assert handler.batches == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert await queue.close(5.0) is None
    await asyncio.wait_for(runner, 5.0)


async def test_closing_refuses_new_items_and_waits_for_those_queued() -> None:
    handler = Handler(open_=False)
    queue = WorkQueue[int](10)
    runner = asyncio.create_task(queue.serve(handler))
    queue.offer(1)
    queue.offer(2)
    closing = asyncio.create_task(queue.close(5.0))
    await asyncio.sleep(0.01)  # the subject: close() is still waiting on the queued items
    assert not closing.done()
    assert not queue.offer(3)
    assert queue.dropped == {"shutdown": 1}
    assert queue.refusal() == "shutdown"
    handler.gate.set()
    assert await closing is None
    await asyncio.wait_for(runner, 5.0)
    assert (handler.handled, queue.pending) == (2, 0)
    assert balanced(queue, handler)


async def test_close_before_the_workers_started_still_lets_them_drain() -> None:
    handler = Handler()
    queue = WorkQueue[int](10)
    runner = asyncio.create_task(queue.serve(handler))  # not running yet
    for i in range(3):
        queue.offer(i)
    assert await queue.close(5.0) is None
    await runner
    assert handler.handled == 3


async def test_at_the_deadline_what_is_queued_is_dropped_and_the_item_in_hand_stays_with_its_worker() -> None:
    told: list[tuple[int, str]] = []
    handler = Handler(open_=False)
    queue = WorkQueue[int](10, on_drop=lambda item, reason: told.append((item, reason)))
    runner = asyncio.create_task(queue.serve(handler))
    for i in range(3):
        queue.offer(i)
    await wait_until(lambda: queue.busy == 1, 5.0)
    assert await queue.close(0.05) == 2
    assert told == [(1, "shutdown"), (2, "shutdown")]
    assert (queue.depth, queue.busy, queue.dropped) == (0, 1, {"shutdown": 2})
    assert balanced(queue, handler)
    handler.gate.set()  # not cancelled: the worker finishes its item, then stops
    await asyncio.wait_for(runner, 5.0)
    assert (handler.handled, queue.pending) == (1, 0)
    assert balanced(queue, handler)


async def test_with_cancel_the_workers_are_cancelled_at_the_deadline_and_awaited() -> None:
    counts: Counter[str] = Counter({"delivered": 5})
    handler = Handler(open_=False)
    queue = WorkQueue[int](10, workers=2, full="dropped", counts=counts)
    runner = asyncio.create_task(queue.serve(handler))
    for i in range(3):
        queue.offer(i)
    await wait_until(lambda: queue.busy == 2, 5.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await queue.close(0.1, cancel=True) == 1
    assert 0.09 <= loop.time() - started < 1.0
    assert sorted(handler.cancelled) == [0, 1]  # the handler saw it before close returned
    assert counts == {"delivered": 5, "shutdown": 1}  # the owner's counter, shared (5: its own count)
    assert queue.pending == 0
    assert queue.offered == len(handler.cancelled) + counts["shutdown"]
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_put_queues_what_the_owner_already_checked() -> None:
    handler = Handler()
    queue = WorkQueue[int](1)
    runner = asyncio.create_task(queue.serve(handler))
    assert queue.refusal() is None
    queue.put(7)  # unchecked, uncounted as offered: the owner counts its own
    assert queue.refusal() == "queue_full"
    await wait_until(lambda: handler.handled == 1, 5.0)
    assert queue.snapshot() == {"offered": 0, "depth": 0, "pending": 0, "dropped": {}}
    await queue.close(1.0)
    await runner


async def test_an_empty_queue_closes_at_once_and_idle_workers_stop() -> None:
    queue = WorkQueue[int](10, workers=4, linger=60.0)
    runner = asyncio.create_task(queue.serve(Handler()))
    await asyncio.sleep(0.01)  # a few loop turns: the workers start and wait (nothing to observe)
    assert await queue.close(0.0) is None
    await asyncio.wait_for(runner, 1.0)
