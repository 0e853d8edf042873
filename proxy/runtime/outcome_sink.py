"""The outcome store of one process and the sink in front of it: opened first, closed last (every answered
request has its record flushed before exit).

Usage (proxy.runtime.server.Sidecar, an aiohttp cleanup_ctx step):
    async with outcome_sink(settings, router) as sink:
        ...   # serving; on exit the sink is flushed (within the flush timeout), then the store is closed
With a Redis store the sink waits for Redis to come back, bounded by `storeQueue` (docs/scale-out.md), the
records of experiments with a reward goal are indexed by request id for the feedback of any replica, and what
the sink drops is added to the fleet's counts (proxy.fleet.drops), once more after it closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from experiments.sink import OutcomeSink, SinkLimits
from experiments.stores import is_redis, open_outcomes
from proxy.control.router import Router
from proxy.feedback.token import reward_range
from proxy.runtime.tasks import TaskGroup
from proxy.settings import Settings

FLUSH_TIMEOUT_S = 10.0
"""The longest wait for the sink's queued records to be written at exit (not a setting: the drain's)."""


def reward_windows(router: Router) -> Callable[[str], float | None]:
    """An experiment's feedback window if it takes rewards, else None (read in the writer's thread: the
    router's table is only ever replaced whole)."""

    def window(name: str) -> float | None:
        try:
            experiment = router.get(name).experiment
        except KeyError:
            return None
        if reward_range(experiment) is None or experiment.analysis is None:
            return None
        return experiment.analysis.feedback_window_s

    return window


@contextlib.asynccontextmanager
async def outcome_sink(settings: Settings, router: Router) -> AsyncIterator[OutcomeSink]:
    """The running sink of this process (its writer task and, on Redis, its drop publisher)."""
    url = settings.conf.store
    redis = is_redis(url)
    window = reward_windows(router) if redis else None
    store = await asyncio.to_thread(open_outcomes, url, settings.data_dir, reward_window=window)
    # Redis: a batch waits for Redis to come back, bounded by the queue (docs/scale-out.md)
    attempts = 0 if redis else SinkLimits().write_attempts
    limits = SinkLimits(max_pending=settings.conf.store_queue, write_attempts=attempts)
    sink = OutcomeSink(store, limits)
    tasks, stop = TaskGroup(), asyncio.Event()
    tasks.spawn(sink.run(), name="outcome-writer")
    publisher = None
    if redis:
        from proxy.fleet.drops import DropPublisher

        publisher = DropPublisher(url, sink)
        tasks.spawn(publisher.run(stop), name="drops-publisher")
    try:
        yield sink
    finally:
        await sink.close(FLUSH_TIMEOUT_S)
        stop.set()
        await tasks.drain(timeout=1.0)
        if publisher is not None:
            await publisher.close()
        await asyncio.to_thread(store.close)
