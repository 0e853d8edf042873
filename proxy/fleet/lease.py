"""Who judges a fleet sharing a Redis store: the replica holding the lease (`SET NX PX`, renewed every third).

Usage:
    role = LeaseRole(store, lease_s, lead=start_controllers, step_down=stop_controllers)
    task = tasks.spawn(role.run(), name="lease")
    role.close(); await task                       # steps down and releases the lease
Every replica tries to take the lease every `lease_s / 3`; the holder renews it as often. The holder steps
down (stops its controllers, refuses admin mutations) when a renewal is refused (another replica holds it:
this one was paused or cut off past its lease), when any fenced write is refused, or when it could not renew
for a whole lease (Redis unreachable: another replica may lead once Redis is back). A lost leader therefore
is replaced within `lease_s` plus one renewal interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from redis.exceptions import RedisError

from experiments.redis_state import RedisStateStore
from proxy.telemetry.logs import event

T = TypeVar("T")


def void(_: object) -> None:
    """Discard a value (a callback's result)."""


class LeaseRole:
    """Takes, renews and gives up the fleet's lease; calls `lead` and `step_down` as the role changes."""

    def __init__(
        self,
        store: RedisStateStore,
        lease_s: float,
        lead: Callable[[], Awaitable[None]],
        step_down: Callable[[], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.lease_s, self.clock = store, lease_s, clock
        self._lead, self._step_down = lead, step_down
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.token: str | None = None
        """The lease's value while this replica holds it."""
        self.renewed = 0.0
        self.lost = False
        """Set (from any thread, through the loop) when a fenced write of this replica was refused."""
        self._wake = asyncio.Event()
        self._closing = False
        self.terms = 0
        """Times this replica took the lease."""
        self._failing = False
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease")
        loop = asyncio.get_running_loop()
        store.on_refused = lambda: void(loop.call_soon_threadsafe(self._refused))

    def _refused(self) -> None:
        self.lost = True
        self._wake.set()

    def close(self) -> None:
        """Make `run` step down, release the lease and return."""
        self._closing = True
        self._wake.set()

    @property
    def lease_ms(self) -> int:
        """The lease in milliseconds."""
        return max(1, round(self.lease_s * 1000))

    async def _redis(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def run(self) -> None:
        """Until `close`: take or renew the lease every third of it; then step down and release it."""
        try:
            while not self._closing:
                try:
                    await self._turn()
                    if self._failing:
                        event("lease store back", owner=self.owner)
                    self._failing = False
                except (RedisError, OSError) as err:
                    if not self._failing:
                        event("lease store unreachable", level=logging.WARNING, error=str(err))
                    self._failing = True
                    if self.token is not None and self.clock() - self.renewed > self.lease_s:
                        await self._down("could not renew the lease for a whole lease")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.lease_s / 3)
                self._wake.clear()
        finally:
            if self.token is not None:
                token = self.token
                await self._down("stopping")
                with contextlib.suppress(RedisError, OSError):
                    await self._redis(self.store.release, token)
            self._worker.shutdown(wait=False)

    async def _turn(self) -> None:
        if self.token is None:
            token = await self._redis(self.store.acquire, self.owner, self.lease_ms)
            if token is None:
                return
            self.token, self.renewed, self.terms = token, self.clock(), self.terms + 1
            self.lost = False
            self.store.fence(token)
            event("leading", token=token, lease_s=self.lease_s)
            try:
                await self._lead()
            except BaseException:
                await self._down("could not start leading")
                raise
            return
        if self.lost:
            await self._down("a fenced write was refused: another replica holds the lease")
            return
        started = self.clock()
        if await self._redis(self.store.renew, self.token, self.lease_ms):
            self.renewed = started
        else:
            await self._down("the lease renewal was refused: another replica holds the lease")

    async def _down(self, why: str) -> None:
        token, self.token = self.token, None
        self.store.fence(None)
        event("stepped down", level=logging.WARNING, token=token, reason=why)
        await self._step_down()
