"""The sidecar process: wires store, sink, router, filter chain and both ports; runs until SIGTERM.
Usage: await Sidecar(settings).serve(stop)  (proxy.runtime.startup.serve does that for `outrider run`)
Lifecycle (aiohttp cleanup_ctx): the outcome store opens first and closes last, so every request that was
answered has its record flushed before exit.
Roles (docs/scale-out.md): alone, the process judges its experiments if it holds the data dir's leader lock
(else it follows the stored states); a worker of `outrider run --workers N` (`worker`) serves the shared data
port and follows the states; the supervisor uses a Sidecar without a data plane (`fleet`) as its control side.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from prometheus_client import Gauge

from experiments.stores import is_redis
from proxy.admin.api import admin_app
from proxy.control.judging import DropCounts, Judging
from proxy.control.reloader import Reloader
from proxy.control.router import Router
from proxy.control.statekeeper import StateKeeper
from proxy.control.webhook import WEBHOOK_DRAIN_S
from proxy.dataplane.client_ip import TrustedProxies
from proxy.dataplane.connguard import ConnGuard, GuardedSite, GuardLimits
from proxy.dataplane.plane import DataPlane, plane_limits
from proxy.feedback import PATH as FEEDBACK_PATH
from proxy.fleet.fleet_metrics import FleetMetrics
from proxy.fleet.local_role import local_control
from proxy.fleet.redis_role import fleet_control
from proxy.fleet.worker import VariantDrops, WorkerLink
from proxy.grpcfront.wiring import GrpcPort
from proxy.runtime.checks import runtime_facts
from proxy.runtime.gc_tuning import tune_gc
from proxy.runtime.keys import SINK, WIRING
from proxy.runtime.outcome_sink import outcome_sink
from proxy.runtime.ports import bound, hostport
from proxy.runtime.tasks import TaskGroup
from proxy.runtime.wiring import Wiring, webhook_of
from proxy.settings import Settings
from proxy.telemetry.collectors import (
    LiveCollector,
)
from proxy.telemetry.logs import event
from proxy.telemetry.metrics import Metrics
from proxy.telemetry.process_metrics import register_process_metrics

MAX_HEADERS, MAX_LINE_BYTES = 100, 8192  # docs/reliability.md: 100 headers, the request line and each ≤ 8 KiB


class Sidecar:
    """Owns every long-lived part of one outrider process."""

    def __init__(
        self,
        settings: Settings,
        *,
        worker: WorkerLink | None = None,
        fleet: FleetMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.worker = worker
        """Set in a worker of `--workers N`: no lock, no controllers, states followed, port shared."""
        self.fleet = fleet
        """Set in the supervisor of `--workers N`: the control side only, no data plane."""
        self.tasks = TaskGroup()
        self.router = Router(settings.experiments, time.time())
        self.metrics = fleet if fleet is not None else Metrics()
        self.ready = False
        self.keeper: StateKeeper | None = None
        self.data_app = web.Application(client_max_size=settings.conf.limits.max_body_bytes)
        # decisions are made on the control side: a worker sends none
        self.webhook = webhook_of(settings, self.metrics.registry) if worker is None else None
        self.judging = Judging(
            settings.data_dir, self.router, self.metrics, self.tasks, self.webhook, settings.conf.store
        )
        if fleet is None:
            self.data_app.cleanup_ctx.extend([self._outcomes, self._states, self._wiring])
        else:
            self.data_app.cleanup_ctx.append(self._states)
        self.data_app.cleanup_ctx.extend([self._webhook, self._judging, self._reload])
        register_process_metrics(self.metrics.registry)
        self.reloader: Reloader | None = None
        if settings.config_files:
            self.reloader = Reloader(
                settings.config_files, self.router, self.metrics.registry, settings.conf.reload.interval
            )
        self.metrics.registry.register(
            LiveCollector(self.router, lambda: self.ready, self.judging.analysis_of)
        )
        self.data_app.router.add_route("*", FEEDBACK_PATH, self._handle_feedback)
        self.data_app.router.add_route("*", r"/{tail:[\s\S]*}", self._handle_traffic)  # newlines too
        self.following = False
        """True while another process holds the leader lock: no controllers; states followed."""
        self.admin_app = self._admin()

    def _admin(self) -> web.Application:
        """The admin port's application (and the leader gauge of a process that may lead)."""
        if self.worker is None:
            Gauge(
                "outrider_leader",
                "1 while this process holds DATA_DIR/leader.lock and runs the controllers",
                registry=self.metrics.registry,
            ).set_function(lambda: 0.0 if self.keeper is None else 1.0)
        return admin_app(
            self.router,
            self.metrics,
            lambda: self.ready,
            lambda: self.keeper,
            self.settings.admin_token,
            self.judging.analysis_of,
            lambda: self.following,
            self.outcome_counts,
        )

    async def _reload(self, _: web.Application) -> AsyncIterator[None]:
        if self.reloader is None:
            yield
            return
        task = self.tasks.spawn(self.reloader.run(), name="config-reload")
        yield
        self.reloader.close()
        await asyncio.wait({task}, timeout=5.0)

    def reload_requested(self) -> None:
        """SIGHUP: re-read the experiment files now."""
        if self.reloader is not None:
            self.reloader.request()

    async def _handle_traffic(self, request: web.Request) -> web.StreamResponse:
        return await request.app[WIRING].traffic.handle(request)

    async def _handle_feedback(self, request: web.Request) -> web.StreamResponse:
        return await request.app[WIRING].feedback.handle(request)

    def outcome_counts(self) -> dict[str, object] | None:
        """The admin API's /outcomes: this process's records, produced == stored + pending + dropped."""
        kind = "redis" if is_redis(self.settings.conf.store) else "sqlite"
        sink = self.data_app.get(SINK)
        return None if sink is None else {"store": kind, **sink.balance()}

    async def _outcomes(self, app: web.Application) -> AsyncIterator[None]:
        async with outcome_sink(self.settings, self.router) as sink:
            app[SINK] = sink
            self.metrics.attach_sink(sink)
            if self.worker is not None:  # the supervisor's controllers read them (proxy.fleet.fleet_metrics)
                self.metrics.registry.register(VariantDrops(sink))
            yield
        await self.tasks.drain(timeout=1.0)

    def _set_keeper(self, keeper: StateKeeper | None) -> None:
        self.keeper, self.following = keeper, keeper is None and self.worker is None

    async def _states(self, app: web.Application) -> AsyncIterator[None]:
        lead = self.worker is None  # a worker follows; its supervisor leads for the host
        if is_redis(self.settings.conf.store):  # replicas: follow always, lead while holding the lease
            self.following = lead
            role = fleet_control(
                self.settings,
                self.router,
                self.judging,
                app,
                self._set_keeper,
                lead=lead,
                registry=self.metrics.registry,
            )
        else:
            role = local_control(
                self.settings, self.router, self.judging, self._drops, self._set_keeper, lead=lead
            )
        async with role:
            yield

    def _drops(self) -> DropCounts | None:
        """What the controllers read of dropped outcomes: the workers' (supervisor), else this sink's."""
        return self.fleet if self.fleet is not None else self.data_app.get(SINK)

    async def _judging(self, app: web.Application) -> AsyncIterator[None]:
        if self.keeper is None or is_redis(self.settings.conf.store):
            yield  # only the leader judges (Redis: the lease's)
            return
        async for _ in self.judging.lifecycle(app):
            yield

    async def _wiring(self, app: web.Application) -> AsyncIterator[None]:
        wiring = Wiring(
            self.settings, app[SINK], self.router, self.metrics, self.tasks, worker=self.worker is not None
        )
        await wiring.open()
        app[WIRING] = wiring
        yield
        await wiring.close()

    @property
    def grpc(self) -> GrpcPort | None:
        """The gRPC port (`--grpc-listen`) once the request path is wired."""
        wiring = self.data_app.get(WIRING)
        return None if wiring is None else wiring.grpc

    async def _webhook(self, _: web.Application) -> AsyncIterator[None]:
        # set up before the controllers and closed after them, so their last decisions are still sent
        if self.webhook is not None:
            self.webhook.start()
        yield
        if self.webhook is not None:
            await self.webhook.close(WEBHOOK_DRAIN_S)

    async def serve(self, stop: asyncio.Event, hurry: asyncio.Event | None = None) -> None:
        """Bind both ports, log `listening`, run until `stop` is set, then drain and shut down in order
        (`hurry` set during the drain delay ends the delay early: a second SIGTERM)."""
        data = web.AppRunner(
            self.data_app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self.settings.conf.drain.timeout,
            keepalive_timeout=self.settings.conf.limits.keepalive,
            max_headers=MAX_HEADERS,
            max_line_size=MAX_LINE_BYTES,
            max_field_size=MAX_LINE_BYTES,
            auto_decompress=False,  # bodies pass as sent: a gzip request body stays gzip for the upstream
            handler_cancellation=True,  # a client gone mid-request stops its upstream exchange (and stream)
        )
        admin = web.AppRunner(self.admin_app, access_log=None, handle_signals=False)
        await data.setup()  # runs the app's lifecycle (cleanup_ctx) whichever plane serves the port
        await admin.setup()
        plane: DataPlane | None = None
        try:
            plane = await self._listen(data)
            await web.TCPSite(admin, *self.settings.admin).start()
            grpc_address = await self._listen_grpc()
            tune_gc()  # start-up is done: what it built lives as long as the process
            self.ready = True
            address = plane.address if plane is not None else bound(data)
            # a worker's supervisor logs `listening` once all its workers listen
            self.log_listening(
                "listening" if self.worker is None else "worker listening",
                address,
                bound(admin),
                grpc=grpc_address,
            )
            if self.worker is not None:
                self.worker.announce(address, bound(admin))
            await stop.wait()
            self.ready = False  # readiness fails at once; traffic is still served for the drain delay
            event("stopping", service="outrider", drain_delay_s=self.settings.conf.drain.delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for((hurry or asyncio.Event()).wait(), self.settings.conf.drain.delay)
        finally:
            if self.grpc is not None:  # calls in flight finish, their records reach the sink before it closes
                await self.grpc.close(self.settings.conf.drain.timeout)
            if plane is not None:  # in-flight requests end (within drain.timeout) before the lifecycle does
                await plane.shutdown(self.settings.conf.drain.timeout)
            await data.cleanup()
            await admin.cleanup()
        if (sink := self.data_app.get(SINK)) is not None:
            event("stopped", service="outrider", outcomes=sink.snapshot())

    async def _listen(self, data: web.AppRunner) -> DataPlane | None:
        """The data port: the native plane (returned), or aiohttp's server behind the connection guard."""
        assert data.server is not None  # set by setup()
        if self.settings.conf.server.data_plane == "native":
            trusted = TrustedProxies(self.settings.conf.trusted_proxies)
            wiring = self.data_app[WIRING]  # wired by setup()
            bounds = plane_limits(self.settings)
            plane = DataPlane(*wiring.chains, self.metrics, bounds, trusted, wiring.traffic_fast)
            await plane.start(*self.settings.listen, reuse_port=self.worker is not None)
            return plane
        asked = self.settings.conf.limits
        limits = GuardLimits(asked.header_timeout, asked.max_connections)
        guard = ConnGuard(data.server, limits, self.metrics)
        await GuardedSite(data, *self.settings.listen, guard, backlog=1024).start()
        return None

    async def _listen_grpc(self) -> str | None:
        """The gRPC port's HOST:PORT once it listens (None without `--grpc-listen`)."""
        if self.grpc is None or self.settings.grpc_listen is None:
            return None
        host = self.settings.grpc_listen[0]
        return hostport(host, await self.grpc.front.start(host, self.settings.grpc_listen[1]))

    def log_listening(self, name: str, address: str, admin: str, **extra: Any) -> None:
        """The line that tests and scripts wait for: the data port's and the admin port's HOST:PORT."""
        event(
            name,
            service="outrider",
            address=address,
            admin=admin,
            **extra,
            experiments=[lv.experiment.name for lv in self.router.all()],
            runtime={**runtime_facts(), "data_plane": self.settings.conf.server.data_plane},
        )
