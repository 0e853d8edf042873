"""The sidecar process: wires store, sink, router, filter chain and both ports; runs until SIGTERM.

Usage: exit_code = proxy.loop.run(serve(Settings(...)))  (Settings: proxy.settings)
Lifecycle (aiohttp cleanup_ctx): the outcome store opens first and closes last, so every request that was
answered has its record flushed before exit.
Roles (docs/scale-out.md): alone, the process judges its experiments if it holds the data dir's leader lock
(else it follows the stored states); a worker of `outrider run --workers N` (`worker`) serves the shared data
port and follows the states; the supervisor uses a Sidecar without a data plane (`fleet`) as its control side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from prometheus_client import Gauge

from experiments.sink import OutcomeSink, SinkLimits
from experiments.sqlite_store import DB_NAME, SqliteOutcomeStore
from experiments.state_store import SqliteStateStore
from experiments.stores import is_redis, open_outcomes
from proxy.admin import admin_app
from proxy.chain import Filter, Stage, build_chain
from proxy.client_ip import TrustedProxies
from proxy.collectors import (
    CountsCollector,
    LimiterStoreCollector,
    LiveCollector,
    UpstreamPoolCollector,
    WebhookCollector,
)
from proxy.connguard import ConnGuard, GuardedSite, GuardLimits
from proxy.dataplane import missing as native_missing
from proxy.dataplane.body import ReadBody
from proxy.dataplane.plane import DataPlane, plane_limits
from proxy.edge import BodyPace, Edge
from proxy.feedback import PATH as FEEDBACK_PATH
from proxy.feedback import Feedback
from proxy.feedback_token import FeedbackTokens, data_dir_secret
from proxy.filters.auth import Auth
from proxy.filters.client_ip import ClientIp
from proxy.filters.forward import Forward
from proxy.filters.mirror import Mirror
from proxy.filters.ratelimit import RateLimit
from proxy.filters.record import Record
from proxy.filters.route import Route
from proxy.fleet.fleet_metrics import FleetMetrics
from proxy.fleet.leader import LeaderLock
from proxy.fleet.redis_role import fleet_control
from proxy.fleet.state_watch import StateWatch
from proxy.fleet.worker import VariantDrops, WorkerLink
from proxy.grpcfront.wiring import GrpcPort, grpc_port
from proxy.judging import DropCounts, Judging
from proxy.jwks_fetch import JwksKeys
from proxy.logs import event
from proxy.metrics import Metrics
from proxy.process_metrics import register_process_metrics
from proxy.reloader import Reloader
from proxy.retry_budget import RetryBudgets
from proxy.router import Router
from proxy.runtime_checks import runtime_facts, runtime_problems
from proxy.settings import Settings
from proxy.statekeeper import StateKeeper
from proxy.tasks import TaskGroup
from proxy.upstream import UpstreamPool
from proxy.webhook import WEBHOOK_DRAIN_S, Webhook
from shadow.dispatch import ShadowDispatcher

FEEDBACK_MAX_BYTES = 64 * 1024
MAX_HEADERS = 100  # docs/reliability.md safe defaults: 100 headers, request line and each header ≤ 8 KiB
MAX_LINE_BYTES = 8192
UPSTREAM_CONNECT_TIMEOUT_S = 2.0


class Sidecar:
    """Owns every long-lived part of one outrider process."""

    def __init__(
        self, settings: Settings, *, worker: WorkerLink | None = None, fleet: FleetMetrics | None = None
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
        self.sink: OutcomeSink | None = None
        self.keeper: StateKeeper | None = None
        self.shadows: ShadowDispatcher | None = None
        self.grpc: GrpcPort | None = None  # the gRPC port (`--grpc-listen`), set by _wiring
        self._traffic: Edge | None = None
        self._feedback: Edge | None = None
        self._chains: tuple[Stage, Stage] | None = None  # (traffic, feedback) for the native data plane
        self.data_app = web.Application(client_max_size=settings.max_body_bytes)
        self.webhook: Webhook | None = None
        if settings.webhook_url is not None and worker is None:  # decisions are made on the control side
            secret = settings.webhook_secret.encode() if settings.webhook_secret else None
            self.webhook = Webhook(settings.webhook_url, secret)
            self.metrics.registry.register(WebhookCollector(self.webhook))
        self.judging = Judging(
            settings.data_dir, self.router, self.metrics, self.tasks, self.webhook, settings.store
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
                settings.config_files, self.router, self.metrics.registry, settings.reload_interval_s
            )
        self.metrics.registry.register(
            LiveCollector(self.router, lambda: self.ready, self.judging.analysis_of)
        )
        self.data_app.router.add_route("*", FEEDBACK_PATH, self._handle_feedback)
        self.data_app.router.add_route("*", r"/{tail:[\s\S]*}", self._handle_traffic)  # newlines too
        self.following = False
        """True while another process holds the leader lock: no controllers; states followed."""
        if worker is None:
            Gauge(
                "outrider_leader",
                "1 while this process holds DATA_DIR/leader.lock and runs the controllers",
                registry=self.metrics.registry,
            ).set_function(lambda: 0.0 if self.keeper is None else 1.0)
        self.admin_app = admin_app(
            self.router,
            self.metrics,
            lambda: self.ready,
            lambda: self.keeper,
            settings.admin_token,
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
        assert self._traffic is not None
        return await self._traffic.handle(request)

    async def _handle_feedback(self, request: web.Request) -> web.StreamResponse:
        assert self._feedback is not None
        return await self._feedback.handle(request)

    def outcome_counts(self) -> dict[str, object] | None:
        """The admin API's /outcomes: this process's records, produced == stored + pending + dropped."""
        kind = "redis" if is_redis(self.settings.store) else "sqlite"
        return None if self.sink is None else {"store": kind, **self.sink.balance()}

    async def _outcomes(self, _: web.Application) -> AsyncIterator[None]:
        store = await asyncio.to_thread(open_outcomes, self.settings.store, self.settings.data_dir)
        # Redis: a batch waits for Redis to come back, bounded by the queue (docs/scale-out.md)
        limits = SinkLimits(write_attempts=0) if is_redis(self.settings.store) else None
        self.sink = OutcomeSink(store, limits)
        self.metrics.attach_sink(self.sink)
        if self.worker is not None:  # the supervisor's controllers read them (proxy.fleet.fleet_metrics)
            self.metrics.registry.register(VariantDrops(self.sink))
        self.tasks.spawn(self.sink.run(), name="outcome-writer")
        yield
        await self.sink.close(self.settings.flush_timeout_s)
        await self.tasks.drain(timeout=1.0)
        await asyncio.to_thread(store.close)

    def _set_keeper(self, keeper: StateKeeper | None) -> None:
        self.keeper, self.following = keeper, keeper is None and self.worker is None

    async def _states(self, app: web.Application) -> AsyncIterator[None]:
        if is_redis(self.settings.store):  # replicas: follow always, lead while holding the lease
            drops: DropCounts | None = self.fleet if self.fleet is not None else self.sink
            self.following = self.worker is None
            lead = self.worker is None
            registry = self.metrics.registry
            async with fleet_control(
                self.settings,
                self.router,
                self.judging,
                drops,
                app,
                self._set_keeper,
                lead=lead,
                registry=registry,
            ):
                yield
            return
        store = await asyncio.to_thread(SqliteStateStore, self.settings.data_dir / DB_NAME)
        lock = None
        if self.worker is None:
            lock = await asyncio.to_thread(LeaderLock.take, self.settings.data_dir)
        if lock is None:  # a worker, or another process leads: follow the states it writes
            self.following = self.worker is None
            async with StateWatch(self.router, store).following():
                yield
            return
        self.keeper = StateKeeper(self.router, store)
        await self.keeper.restore()
        drops = self.fleet if self.fleet is not None else self.sink
        assert drops is not None  # _outcomes runs first
        self.judging.attach(drops, self.keeper)
        yield
        await asyncio.to_thread(self.keeper.close)
        await asyncio.to_thread(lock.release)

    async def _judging(self, app: web.Application) -> AsyncIterator[None]:
        if self.keeper is None or is_redis(
            self.settings.store
        ):  # only the leader judges (Redis: the lease's)
            yield
            return
        async for _ in self.judging.lifecycle(app):
            yield

    async def _wiring(self, _: web.Application) -> AsyncIterator[None]:
        assert self.sink is not None
        # the client first (rate limits key on it), then auth and rate limits: a refused request reaches no
        # upstream and leaves no record
        edge: list[Filter] = [ClientIp(TrustedProxies(self.settings.trusted_proxies))]
        auth, jwks = self.settings.auth, None
        if auth is not None:
            if auth.jwks_url is not None:
                jwks = JwksKeys(auth.jwks_url, auth.algorithms)
                self.metrics.registry.register(
                    CountsCollector("outrider_jwks_fetch", "JWKS fetches by result", "result", jwks.fetches)
                )
                await jwks.start()
            edge.append(Auth(auth, jwks))
        limit = self.settings.rate_limit
        shared = limit.redis_store() if limit is not None else None  # budgets in Redis, shared by replicas
        if shared is not None:
            self.metrics.registry.register(LimiterStoreCollector(shared))
            await shared.start()
        if limit is not None:
            edge.append(RateLimit(limit, shared))
        secret = self.settings.feedback_secret  # read before serving; made in the data dir on first start
        if secret is None:
            secret = await asyncio.to_thread(data_dir_secret, self.settings.data_dir)
        tokens = FeedbackTokens(secret)
        pool = UpstreamPool(connect_timeout_s=UPSTREAM_CONNECT_TIMEOUT_S)
        self.metrics.registry.register(UpstreamPoolCollector(pool))
        route = Route(self.router, self.settings.default_upstream)
        # `ReadBody` after `route`: the native plane reads a body only once auth, limits and routing passed
        body = ReadBody(self.settings.max_body_bytes)
        record = Record(self.sink, tokens=tokens)
        filters: list[Filter] = [*edge, route, body, record]
        shadowed = any(lv.experiment.shadows for lv in self.router.all())
        if shadowed:
            self.shadows = ShadowDispatcher()
            self.metrics.attach_shadows(self.shadows)
            shadow_task = self.tasks.spawn(self.shadows.run(), name="shadow-dispatch")
            filters.append(Mirror(self.shadows))
        if self.settings.grpc_listen is not None:  # the same filters, and the same shadow dispatcher
            self.grpc = grpc_port(edge, route, record, self.router, self.shadows)
        forward = Forward(
            pool,
            budgets=RetryBudgets(self.settings.retry_budget, self.settings.retry_min),
            preserve_host=self.settings.preserve_host,
        )
        self.metrics.registry.register(
            CountsCollector("outrider_upstream_retries", "Connect-failure retries", "result", forward.retries)
        )
        chain = build_chain(filters, forward)
        pace = BodyPace(self.settings.header_timeout_s, self.settings.body_min_rate)
        self._traffic = Edge(chain, self.metrics, self.settings.max_body_bytes, pace)
        reader = await asyncio.to_thread(SqliteOutcomeStore, self.settings.data_dir / DB_NAME)
        feedback = Feedback(
            reader, self.sink, self.router, self.metrics, tokens, shared=self.worker is not None
        )
        feedback_chain = build_chain([*edge, ReadBody(FEEDBACK_MAX_BYTES)], feedback)
        self._feedback = Edge(feedback_chain, self.metrics, FEEDBACK_MAX_BYTES, pace)
        self._chains = (chain, feedback_chain)
        yield
        if self.shadows is not None:  # pending pairs complete (bounded by the shadow timeout) before the sink
            await self.shadows.close(timeout=self.shadows.limits.timeout_s * 2)
            await asyncio.wait({shadow_task}, timeout=self.shadows.limits.timeout_s * 2)
        if self.grpc is not None:  # the gRPC copies are all sent or dropped by now
            await self.grpc.close_shadows()
        await pool.close()
        if jwks is not None:
            await jwks.close()
        if shared is not None:
            await shared.close()
        await asyncio.to_thread(feedback.close)
        await asyncio.to_thread(reader.close)

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
            shutdown_timeout=self.settings.shutdown_timeout_s,
            keepalive_timeout=self.settings.keepalive_s,
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
            assert data.server is not None  # set by setup()
            if self.settings.data_plane == "native":
                assert self._chains is not None  # set by _wiring during setup()
                trusted = TrustedProxies(self.settings.trusted_proxies)
                plane = DataPlane(*self._chains, self.metrics, plane_limits(self.settings), trusted)
                await plane.start(*self.settings.listen, reuse_port=self.worker is not None)
            else:
                limits = GuardLimits(self.settings.header_timeout_s, self.settings.max_connections)
                guard = ConnGuard(data.server, limits, self.metrics)
                await GuardedSite(data, *self.settings.listen, guard, backlog=1024).start()
            admin_site = web.TCPSite(admin, *self.settings.admin)
            await admin_site.start()
            grpc_address: str | None = None
            if self.grpc is not None and self.settings.grpc_listen is not None:
                host = self.settings.grpc_listen[0]
                port = await self.grpc.front.start(host, self.settings.grpc_listen[1])
                grpc_address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
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
            event("stopping", service="outrider", drain_delay_s=self.settings.drain_delay_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for((hurry or asyncio.Event()).wait(), self.settings.drain_delay_s)
        finally:
            if self.grpc is not None:  # calls in flight finish, their records reach the sink before it closes
                await self.grpc.close(self.settings.shutdown_timeout_s)
            if plane is not None:  # in-flight requests end (within drain.timeout) before the lifecycle does
                await plane.shutdown(self.settings.shutdown_timeout_s)
            await data.cleanup()
            await admin.cleanup()
        if self.sink is not None:
            event("stopped", service="outrider", outcomes=self.sink.snapshot())

    def log_listening(self, name: str, address: str, admin: str, **extra: Any) -> None:
        """The line that tests and scripts wait for: the data port's and the admin port's HOST:PORT."""
        event(
            name,
            service="outrider",
            address=address,
            admin=admin,
            **extra,
            experiments=[lv.experiment.name for lv in self.router.all()],
            runtime={**runtime_facts(), "data_plane": self.settings.data_plane},
        )


def bound(runner: web.AppRunner) -> str:
    """HOST:PORT actually bound by the runner's first socket (port 0 resolved)."""
    for address in runner.addresses:
        host, port = address[:2]
        return f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    raise RuntimeError("runner has no bound socket")


def start_problems(settings: Settings) -> list[str]:
    """Why this runtime cannot serve these settings (each logged as `refusing to start`)."""
    problems = [] if settings.allow_python_parser else runtime_problems(runtime_facts())
    if settings.data_plane == "native" and (why := native_missing()) is not None:
        problems.append(why)
    for problem in problems:
        event("refusing to start", level=logging.ERROR, problem=problem)
    return problems


async def serve(settings: Settings, worker: WorkerLink | None = None) -> int:
    """Run a sidecar (or a worker of a supervisor) until SIGTERM or SIGINT; returns the exit code (2 if the
    runtime is unfit, 1 if the supervisor of a worker is gone already)."""
    if worker is not None and not worker.bind():
        return 1
    if start_problems(settings):
        return 2
    stop, hurry = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_stop_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop_signal)
    sidecar = Sidecar(settings, worker=worker)
    loop.add_signal_handler(signal.SIGHUP, sidecar.reload_requested)
    await sidecar.serve(stop, hurry)
    return 0
