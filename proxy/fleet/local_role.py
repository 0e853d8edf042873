"""The control side of a process on the embedded store (`store: sqlite`): lead (state keeper, controllers)
if it takes the data dir's leader lock, else follow the states the leader stores.

Usage (an aiohttp cleanup_ctx step of proxy.runtime.server.Sidecar, as proxy.fleet.redis_role.fleet_control):
    async with local_control(settings, router, judging, drops, on_keeper, lead=True):
        ...   # serving; on exit the state store closes and the lock is released
`on_keeper(keeper)` is told the state keeper when this process leads, None when it follows. A worker of
`--workers N` passes lead=False: its supervisor holds the lock for the host. `drops` is read once leading.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from experiments.sqlite_store import DB_NAME
from experiments.state_store import SqliteStateStore
from proxy.control.judging import DropCounts, Judging
from proxy.control.router import Router
from proxy.control.statekeeper import StateKeeper
from proxy.fleet.leader import LeaderLock
from proxy.fleet.state_watch import StateWatch
from proxy.settings import Settings


@asynccontextmanager
async def local_control(
    settings: Settings,
    router: Router,
    judging: Judging,
    drops: Callable[[], DropCounts | None],
    on_keeper: Callable[[StateKeeper | None], None],
    *,
    lead: bool,
) -> AsyncIterator[None]:
    """Lead or follow for as long as the block runs."""
    store = await asyncio.to_thread(SqliteStateStore, settings.data_dir / DB_NAME)
    lock = await asyncio.to_thread(LeaderLock.take, settings.data_dir) if lead else None
    if lock is None:  # a worker, or another process leads: follow the states it writes
        on_keeper(None)
        async with StateWatch(router, store).following():
            yield
        return
    keeper = StateKeeper(router, store)
    await keeper.restore()
    on_keeper(keeper)
    counts = drops()
    assert counts is not None  # the outcome sink (or the fleet's metrics) exists before the states
    judging.attach(counts, keeper)
    yield
    await asyncio.to_thread(keeper.close)
    await asyncio.to_thread(lock.release)
