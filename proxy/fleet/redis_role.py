"""The control side of a replica on a Redis store (`store: redis://…`): always follow the stored states; lead
(state keeper, controllers with checkpoints, admin mutations) while holding the lease.

Usage (an aiohttp cleanup_ctx step of proxy.runtime.server.Sidecar):
    async with fleet_control(settings, router, judging, app, on_keeper, lead=True):
        ...   # serving; on exit the controllers stop, the lease is released, the stores are closed
`on_keeper(keeper)` is told the state keeper when this replica starts leading and None when it steps down.
A worker of `--workers N` passes lead=False: its supervisor contends for the lease for the host. The leader's
controllers see the drops of the whole fleet (proxy.fleet.drops), which every replica publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial

from aiohttp import web
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.core import CounterMetricFamily

from analysis.checkpoint import Checkpoints
from experiments.redis_state import CHANNEL, RedisStateStore
from proxy.control.judging import Judging
from proxy.control.router import Router
from proxy.control.statekeeper import StateKeeper
from proxy.feedback.token import data_dir_secret
from proxy.fleet.drops import FleetDrops
from proxy.fleet.lease import LeaseRole
from proxy.fleet.notices import listen
from proxy.fleet.state_watch import StateWatch
from proxy.runtime.tasks import TaskGroup
from proxy.settings import Settings


class LeaseCollector:
    """`outrider_lease_terms_total` (times this replica took the lease), `outrider_fenced_writes_total` (its
    writes refused because it no longer held the lease) and `outrider_store_trimmed_total` (stream entries its
    checkpoints trimmed)."""

    def __init__(self, role: LeaseRole) -> None:
        self.role = role

    def collect(self) -> Iterator[Metric]:
        """The three counters."""
        terms = CounterMetricFamily("outrider_lease_terms", "Times this replica took the fleet's lease")
        terms.add_metric([], self.role.terms)
        fenced = CounterMetricFamily(
            "outrider_fenced_writes", "Writes of this replica refused: it no longer held the lease"
        )
        fenced.add_metric([], self.role.store.refused)
        trimmed = CounterMetricFamily(
            "outrider_store_trimmed",
            "Stream entries this replica's checkpoints trimmed as leader (storeRetention; unset: none)",
        )
        trimmed.add_metric([], self.role.store.trimmed)
        yield terms
        yield fenced
        yield trimmed


POLL_S = 1.0
"""Version polls with a Redis store: the fallback of the pub/sub notices."""


class Leadership:
    """What this replica runs while it holds the lease."""

    def __init__(
        self,
        store: RedisStateStore,
        router: Router,
        judging: Judging,
        app: web.Application,
        on_keeper: Callable[[StateKeeper | None], None],
        key: bytes,
    ) -> None:
        self.store, self.router, self.judging, self.app = store, router, judging, app
        self.on_keeper, self.key = on_keeper, key
        self.keeper: StateKeeper | None = None
        self._judging: AsyncIterator[None] | None = None
        self._drops: tuple[FleetDrops, asyncio.Event, TaskGroup] | None = None

    async def lead(self) -> None:
        """Restore the stored states, read the fleet's drops, start the controllers (from their
        checkpoints), take admin mutations."""
        keeper = StateKeeper(self.router, self.store)
        self.keeper = keeper
        await keeper.restore()
        drops = FleetDrops(self.store.url, lambda: [lv.experiment.name for lv in self.router.all()])
        stop, tasks = asyncio.Event(), TaskGroup()
        self._drops = (drops, stop, tasks)
        await drops.refresh()  # the first looks already see the fleet's drops
        tasks.spawn(drops.run(stop), name="fleet-drops")
        self.judging.attach(drops, keeper, Checkpoints(self.store, self.key), durable_drops=True)
        self._judging = self.judging.lifecycle(self.app)
        await anext(self._judging)
        self.on_keeper(keeper)

    async def step_down(self) -> None:
        """Refuse mutations, stop the controllers (their writes are fenced meanwhile), keep following."""
        self.on_keeper(None)
        if self._judging is not None:
            gen, self._judging = self._judging, None
            await anext(gen, None)
        if self._drops is not None:
            (drops, stop, tasks), self._drops = self._drops, None
            stop.set()
            await tasks.drain(timeout=5.0)
            await drops.close()
        if self.keeper is not None:
            keeper, self.keeper = self.keeper, None
            await asyncio.to_thread(keeper.stop)


@contextlib.asynccontextmanager
async def fleet_control(
    settings: Settings,
    router: Router,
    judging: Judging,
    app: web.Application,
    on_keeper: Callable[[StateKeeper | None], None],
    *,
    lead: bool,
    registry: CollectorRegistry | None = None,
) -> AsyncIterator[LeaseRole | None]:
    """Follow the states (notices + polls); with `lead`, contend for the lease and lead while holding it
    (trimming the streams with its checkpoints to `storeRetention`; unset: never)."""
    url = settings.conf.store
    watched = await asyncio.to_thread(RedisStateStore, url)
    notices = partial(listen, url, CHANNEL)
    async with StateWatch(router, watched, every_s=POLL_S, notices=notices).following():
        if not lead:
            yield None
            return
        # The checkpoints are signed with the feedback secret: every replica must be given the same one
        # (feedback.secretFile) for a new leader to use its predecessor's; else it replays the stream.
        key = settings.feedback_secret
        if key is None:
            key = await asyncio.to_thread(data_dir_secret, settings.data_dir)
        store = await asyncio.to_thread(
            partial(RedisStateStore, url, retention_s=settings.conf.store_retention)
        )
        leadership = Leadership(store, router, judging, app, on_keeper, key)
        role = LeaseRole(store, settings.conf.store_lease, leadership.lead, leadership.step_down)
        if registry is not None:
            registry.register(LeaseCollector(role))
        tasks = TaskGroup()
        task = tasks.spawn(role.run(), name="lease")
        try:
            yield role
        finally:
            role.close()
            await asyncio.wait({task}, timeout=10.0)
            await tasks.drain(timeout=1.0)
            await asyncio.to_thread(store.close)
