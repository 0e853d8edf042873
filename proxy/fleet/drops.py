"""Dropped outcomes of a Redis fleet: each replica adds its sink's drops to the fleet's counts; the leader's
controllers read the sum, so the HOLD gate (promotion refused past 0.1% of an arm dropped) sees every
replica's losses, not only its own (experiments.redis_drops has the keys and why counts only grow).

Usage:
    publisher = DropPublisher(url, sink)                 # every process with a data plane
    task = tasks.spawn(publisher.run(stop), name="drops-publisher"); ...; await publisher.close()
    fleet = FleetDrops(url, names)                       # the leader: a DropCounts for proxy.control.judging
    task = tasks.spawn(fleet.run(stop), name="fleet-drops"); fleet.drops_for("exp"); await fleet.close()
Both use redis.asyncio with bounded waits: nothing blocks the event loop, and Redis away only delays the
counts (a publish that failed is retried with the counts of then; none is added twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from experiments.redis_drops import PUBLISH, fleet_key, parse_fleet, publish_args
from experiments.redis_keys import TIMEOUT_S
from experiments.redis_store import writer_id
from experiments.sink import OutcomeSink
from proxy.telemetry.logs import event

EVERY_S = 0.5
"""How often a replica adds its new drops, and the leader reads the fleet's."""


def _client(url: str) -> Redis:
    return Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)


async def _every(stop: asyncio.Event, step: Callable[[], Awaitable[object]]) -> None:
    while not stop.is_set():
        await step()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), EVERY_S)


class DropPublisher:
    """Adds what this process's sink dropped (per experiment and variant) to the fleet's counts."""

    def __init__(self, url: str, sink: OutcomeSink) -> None:
        self.sink, self.writer = sink, writer_id()
        self._redis = _client(url)
        self._script = self._redis.register_script(PUBLISH)
        self.acked: dict[tuple[str, str], int] = {}
        """The counts Redis is known to have (the script answered)."""
        self._failing = False

    async def publish(self) -> bool:
        """Add the drops since the last publish that went through; False if Redis could not be reached."""
        now = dict(self.sink.dropped_by_variant)
        call = publish_args(self.writer, now, self.acked)
        if call is None:
            return True
        try:
            await self._script(keys=call[0], args=call[1])
        except (RedisError, OSError) as err:
            if not self._failing:
                event("drops not published", level=logging.WARNING, error=str(err))
            self._failing = True
            return False
        self._failing = False
        self.acked = now
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Publish every EVERY_S until `stop`."""
        await _every(stop, self.publish)

    async def close(self, timeout: float = 2.0) -> None:
        """A last publish (the drops of the shutdown), then close the connection."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.publish(), timeout)
        await self._redis.aclose()


class FleetDrops:
    """The fleet's dropped outcomes per experiment and variant, as last read (a DropCounts)."""

    def __init__(self, url: str, names: Callable[[], list[str]]) -> None:
        self.names = names
        self._redis = _client(url)
        self.totals: dict[str, dict[str, int]] = {}
        self._failing = False

    def drops_for(self, experiment: str) -> dict[str, int]:
        """Outcomes of `experiment` dropped by any replica, per variant (as of the last read)."""
        return dict(self.totals.get(experiment, {}))

    async def refresh(self) -> None:
        """Read every experiment's counts (one round trip); on failure keep the last ones."""
        names = self.names()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(fleet_key(name))
                got = await pipe.execute()
        except (RedisError, OSError) as err:
            if not self._failing:
                event("fleet drops not read", level=logging.WARNING, error=str(err))
            self._failing = True
            return
        self._failing = False
        self.totals = {name: parse_fleet(raw) for name, raw in zip(names, got, strict=True)}

    async def run(self, stop: asyncio.Event) -> None:
        """Read every EVERY_S until `stop`."""
        await _every(stop, self.refresh)

    async def close(self) -> None:
        """Close the connection."""
        await self._redis.aclose()
