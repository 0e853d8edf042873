"""Follow the experiment states another process writes (the leader's state keeper) into this one's router.

Usage:
    async with StateWatch(router, SqliteStateStore(path)).following():
        ...  # every newer stored state is put in force within `every_s` (+ one query)
Polling the stored versions is one small query in a worker thread, never on the event loop; a state is
loaded only when its version is newer than the one in force. Followers never write states. With a Redis
store, `notices` (proxy.fleet.notices) wakes the watch as soon as a state is stored, the poll being the
fallback; while the store fails, the states in force stay (routing goes on) and the failure is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from experiments.stores import StateStore
from proxy.control.router import Router
from proxy.control.statekeeper import in_force
from proxy.runtime.tasks import TaskGroup
from proxy.telemetry.logs import event

POLL_S = 0.2
"""Between version polls: a new state is in force in every follower well within a second."""
T = TypeVar("T")


class StateWatch:
    """Reads the state store; owns it (closed when `following` ends)."""

    def __init__(
        self,
        router: Router,
        store: StateStore,
        every_s: float = POLL_S,
        notices: Callable[[asyncio.Event, asyncio.Event], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.router, self.store, self.every_s, self.notices = router, store, every_s, notices
        self.wake = asyncio.Event()
        self.failing = False
        self.followed = 0
        """States put in force since start."""
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-watch")

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def sync(self, *, force: bool = False) -> None:
        """Put in force every stored state newer than the one in force (any stored state when `force`)."""
        versions = await self._db(self.store.versions)
        for live in self.router.all():
            name = live.experiment.name
            if name not in versions or (versions[name] <= live.state.version and not force):
                continue
            stored = await self._db(self.store.load, name)
            if stored is None:
                continue
            state = in_force(self.router.get(name).experiment, stored)
            if force:
                self.router.force(state)
            elif not self.router.apply(state):
                continue
            self.followed += 1
            event("state followed", experiment=name, version=state.version, phase=state.phase)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.every_s)
            self.wake.clear()
            if stop.is_set():
                return
            try:
                await self.sync()
            except Exception as err:  # busy, Redis away...: the states in force stay; next poll
                if not self.failing:
                    event("state watch failed", level=logging.WARNING, error=str(err))
                self.failing = True
            else:
                if self.failing:
                    event("state watch back")
                self.failing = False

    @contextlib.asynccontextmanager
    async def following(self) -> AsyncIterator[StateWatch]:
        """Sync once (whatever the versions: as a restart restores them), then follow until the block ends."""
        stop, tasks = asyncio.Event(), TaskGroup()
        try:
            try:
                await self.sync(force=True)
            except Exception as err:  # the store is away at start: the files' states until it is back
                self.failing = True
                event("state watch failed", level=logging.WARNING, error=str(err))
            tasks.spawn(self.run(stop), name="state-watch")
            if self.notices is not None:
                tasks.spawn(self.notices(self.wake, stop), name="state-notices")
            yield self
        finally:
            stop.set()
            self.wake.set()
            await tasks.drain(timeout=2.0)
            await self._db(self.store.close)
            self._worker.shutdown(wait=True)
