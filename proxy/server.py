"""The sidecar process: wires store, sink, router, filter chain and both ports; runs until SIGTERM.

Usage: exit_code = proxy.loop.run(serve(Settings(...)))
Lifecycle (aiohttp cleanup_ctx): the outcome store opens first and closes last, so every request that was
answered has its record flushed before exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

from analysis.controller import Controller
from analysis.verdict import ACTIONS, Decision
from experiments.model import DEFAULT_MAX_BODY_BYTES, Experiment
from experiments.sink import OutcomeSink
from experiments.sqlite_store import DB_NAME, SqliteOutcomeStore
from experiments.state import ExperimentState
from experiments.state_store import SqliteStateStore
from proxy.admin import admin_app
from proxy.chain import Filter, build_chain
from proxy.client_ip import TrustedProxies
from proxy.connguard import ConnGuard, GuardedSite, GuardLimits
from proxy.edge import BodyPace, Edge
from proxy.feedback import PATH as FEEDBACK_PATH
from proxy.feedback import Feedback
from proxy.filters.auth import Auth, AuthSettings
from proxy.filters.client_ip import ClientIp
from proxy.filters.forward import Forward, client_session
from proxy.filters.mirror import Mirror
from proxy.filters.ratelimit import RateLimit, RateLimitSettings
from proxy.filters.record import Record
from proxy.filters.route import Route
from proxy.jwks_fetch import JwksKeys
from proxy.logs import event
from proxy.metrics import CountsCollector, LiveCollector, Metrics, WebhookCollector
from proxy.process_metrics import register_process_metrics
from proxy.reloader import Reloader
from proxy.retry_budget import RetryBudgets
from proxy.router import Router
from proxy.runtime_checks import runtime_facts, runtime_problems
from proxy.statekeeper import StateKeeper
from proxy.tasks import TaskGroup
from proxy.webhook import WEBHOOK_DRAIN_S, Webhook, decision_event
from shadow.dispatch import ShadowDispatcher

FEEDBACK_MAX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    """What `outrider run` was asked to do."""

    experiments: list[Experiment]
    listen: tuple[str, int] = ("127.0.0.1", 8080)
    admin: tuple[str, int] = ("127.0.0.1", 8081)
    data_dir: Path = Path("outrider-data")
    default_upstream: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    shutdown_timeout_s: float = 15.0
    flush_timeout_s: float = 10.0
    config_files: list[str] = field(default_factory=list)
    allow_python_parser: bool = False
    admin_token: str | None = None
    auth: AuthSettings | None = None
    rate_limit: RateLimitSettings | None = None
    # connection limits (RELIABILITY.md "Safe defaults")
    header_timeout_s: float = 10.0  # from the first byte of a request to its last header byte
    body_min_rate: int = 1024  # bytes/second a request body must keep up (after header_timeout_s of grace)
    max_connections: int = 4096  # open client connections on the data port; beyond, new ones are closed
    keepalive_s: float = 75.0  # idle keep-alive connections are closed after this long
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For is believed (read right to left)
    retry_budget: float = 0.2  # connect-failure retries allowed, as a share of requests (min retry_min)
    retry_min: int = 3
    drain_delay_s: float = 5.0  # SIGTERM: readiness off, wait this long, then stop accepting
    reload_interval_s: float = 2.0  # experiment files checked for changes this often (0 = SIGHUP only)
    webhook_url: str | None = None  # every decision is POSTed here as JSON (proxy.webhook); None = off
    webhook_secret: str | None = None  # key of the X-Outrider-Signature HMAC-SHA256 of each body


class Sidecar:
    """Owns every long-lived part of one outrider process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tasks = TaskGroup()
        self.router = Router(settings.experiments, time.time())
        self.metrics = Metrics()
        self.ready = False
        self.sink: OutcomeSink | None = None
        self.keeper: StateKeeper | None = None
        self.shadows: ShadowDispatcher | None = None
        self._traffic: Edge | None = None
        self._feedback: Edge | None = None
        self.data_app = web.Application(client_max_size=settings.max_body_bytes)
        self.data_app.cleanup_ctx.extend(
            [self._outcomes, self._states, self._wiring, self._webhook, self._control]
        )
        self.data_app.cleanup_ctx.append(self._reload)
        register_process_metrics(self.metrics.registry)
        self.reloader: Reloader | None = None
        if settings.config_files:
            self.reloader = Reloader(
                settings.config_files, self.router, self.metrics.registry, settings.reload_interval_s
            )
        self.controllers: dict[str, Controller] = {}
        self.metrics.registry.register(LiveCollector(self.router, lambda: self.ready, self.analysis_of))
        self.webhook: Webhook | None = None
        if settings.webhook_url is not None:
            secret = settings.webhook_secret.encode() if settings.webhook_secret else None
            self.webhook = Webhook(settings.webhook_url, secret)
            self.metrics.registry.register(WebhookCollector(self.webhook))
        self.data_app.router.add_route("*", FEEDBACK_PATH, self._handle_feedback)
        self.data_app.router.add_route("*", r"/{tail:[\s\S]*}", self._handle_traffic)  # newlines too
        self.admin_app = admin_app(
            self.router,
            self.metrics,
            lambda: self.ready,
            lambda: self.keeper,
            settings.admin_token,
            self.analysis_of,
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

    async def _handle_traffic(self, request: web.Request) -> web.Response:
        assert self._traffic is not None
        return await self._traffic.handle(request)

    async def _handle_feedback(self, request: web.Request) -> web.Response:
        assert self._feedback is not None
        return await self._feedback.handle(request)

    async def _outcomes(self, _: web.Application) -> AsyncIterator[None]:
        store = await asyncio.to_thread(SqliteOutcomeStore, self.settings.data_dir / DB_NAME)
        self.sink = OutcomeSink(store)
        self.metrics.attach_sink(self.sink)
        self.tasks.spawn(self.sink.run(), name="outcome-writer")
        yield
        await self.sink.close(self.settings.flush_timeout_s)
        await self.tasks.drain(timeout=1.0)
        await asyncio.to_thread(store.close)

    async def _states(self, _: web.Application) -> AsyncIterator[None]:
        store = await asyncio.to_thread(SqliteStateStore, self.settings.data_dir / DB_NAME)
        self.keeper = StateKeeper(self.router, store)
        await self.keeper.restore()
        yield
        await asyncio.to_thread(self.keeper.close)

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
        if self.settings.rate_limit is not None:
            edge.append(RateLimit(self.settings.rate_limit))
        session = client_session()
        filters: list[Filter] = [*edge, Route(self.router, self.settings.default_upstream), Record(self.sink)]
        shadowed = any(lv.experiment.shadows for lv in self.router.all())
        if shadowed:
            self.shadows = ShadowDispatcher()
            self.metrics.attach_shadows(self.shadows)
            shadow_task = self.tasks.spawn(self.shadows.run(), name="shadow-dispatch")
            filters.append(Mirror(self.shadows))
        forward = Forward(session, budgets=RetryBudgets(self.settings.retry_budget, self.settings.retry_min))
        self.metrics.registry.register(
            CountsCollector("outrider_upstream_retries", "Connect-failure retries", "result", forward.retries)
        )
        chain = build_chain(filters, forward)
        pace = BodyPace(self.settings.header_timeout_s, self.settings.body_min_rate)
        self._traffic = Edge(chain, self.metrics, self.settings.max_body_bytes, pace)
        reader = await asyncio.to_thread(SqliteOutcomeStore, self.settings.data_dir / DB_NAME)
        feedback = Feedback(reader, self.sink, self.router, self.metrics)
        self._feedback = Edge(build_chain(edge, feedback), self.metrics, FEEDBACK_MAX_BYTES, pace)
        yield
        if self.shadows is not None:  # pending pairs complete (bounded by the shadow timeout) before the sink
            await self.shadows.close(timeout=self.shadows.limits.timeout_s * 2)
            await asyncio.wait({shadow_task}, timeout=self.shadows.limits.timeout_s * 2)
        await session.close()
        if jwks is not None:
            await jwks.close()
        await asyncio.to_thread(feedback.close)
        await asyncio.to_thread(reader.close)

    async def _webhook(self, _: web.Application) -> AsyncIterator[None]:
        # set up before the controllers and closed after them, so their last decisions are still sent
        if self.webhook is not None:
            self.webhook.start()
        yield
        if self.webhook is not None:
            await self.webhook.close(WEBHOOK_DRAIN_S)

    async def _control(self, _: web.Application) -> AsyncIterator[None]:
        judged = [  # a judge compares a candidate with the stable variant: nothing to judge without one
            lv.experiment
            for lv in self.router.all()
            if lv.experiment.analysis is not None
            and any(v.role == "candidate" for v in lv.experiment.variants)
        ]
        if not judged:
            yield
            return
        from analysis.engine import Judge  # numpy/scipy load only when something is judged

        assert self.sink is not None
        assert self.keeper is not None
        sink, keeper = self.sink, self.keeper
        reader = await asyncio.to_thread(SqliteOutcomeStore, self.settings.data_dir / DB_NAME)
        stop = asyncio.Event()
        tasks = TaskGroup()
        for exp in judged:
            ctl = Controller(
                exp,
                reader,
                keeper,
                Judge,
                drops=partial(sink.drops_for, exp.name),
                on_decision=partial(self._decided, exp.name),
                on_finish=partial(self._finished, exp),
                history_until=await asyncio.to_thread(reader.max_seq, exp.name),
            )
            self.controllers[exp.name] = ctl
            for kind in sorted(ACTIONS):  # at 0 from the start, so increase() sees the first decision
                self.metrics.decisions.labels(exp.name, kind)
            tasks.spawn(ctl.run(stop), name=f"controller:{exp.name}")
        yield
        stop.set()
        await tasks.drain(timeout=5.0)
        await asyncio.to_thread(reader.close)

    def analysis_of(self, name: str) -> dict[str, Any] | None:
        """The controller's last look at `name` (None before the first look or without analysis)."""
        ctl = self.controllers.get(name)
        look = ctl.looker.last_look if ctl is not None else None
        if look is None:
            return None
        return {
            "kind": look.kind,
            "reasons": look.reasons,
            "records": look.records,
            "candidate_requests": look.candidate_requests,
            "step": look.step,
            "snapshot": look.snapshot,
        }

    def _decided(self, name: str, decision: Decision) -> None:
        self.metrics.decisions.labels(name, decision.kind).inc()
        if self.webhook is not None:
            change = self.controllers[name].looker.transition(decision)
            self.webhook.offer(
                decision_event(self.router.get(name).experiment, decision, change, time.time())
            )

    def _finished(self, experiment: Experiment, state: ExperimentState, snapshot: dict[str, Any]) -> None:
        assert self.sink is not None
        drops = self.sink.drops_for(experiment.name)
        out = self.settings.data_dir / "reports" / experiment.name

        def write() -> None:  # in a thread: it reads the store, replays it for the plots, writes files
            from analysis.engine import Judge  # loaded already: a controller only runs for judged experiments
            from analysis.offline import live_report

            live_report(self.settings.data_dir, experiment, state, snapshot, drops, Judge)

        self.tasks.spawn(asyncio.to_thread(write), name=f"report:{experiment.name}")
        event(
            "experiment finished",
            experiment=experiment.name,
            phase=state.phase,
            report=str(out / "report.md"),
        )

    async def serve(self, stop: asyncio.Event, hurry: asyncio.Event | None = None) -> None:
        """Bind both ports, log `listening`, run until `stop` is set, then drain and shut down in order
        (`hurry` set during the drain delay ends the delay early: a second SIGTERM)."""
        data = web.AppRunner(
            self.data_app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self.settings.shutdown_timeout_s,
            keepalive_timeout=self.settings.keepalive_s,
        )
        admin = web.AppRunner(self.admin_app, access_log=None, handle_signals=False)
        await data.setup()
        await admin.setup()
        try:
            assert data.server is not None  # set by setup()
            limits = GuardLimits(self.settings.header_timeout_s, self.settings.max_connections)
            guard = ConnGuard(data.server, limits, self.metrics)
            data_site = GuardedSite(data, *self.settings.listen, guard, backlog=1024)
            admin_site = web.TCPSite(admin, *self.settings.admin)
            await data_site.start()
            await admin_site.start()
            self.ready = True
            event(
                "listening",
                service="outrider",
                address=bound(data),
                admin=bound(admin),
                experiments=[lv.experiment.name for lv in self.router.all()],
                runtime=runtime_facts(),
            )
            await stop.wait()
            self.ready = False  # readiness fails at once; traffic is still served for the drain delay
            event("stopping", service="outrider", drain_delay_s=self.settings.drain_delay_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for((hurry or asyncio.Event()).wait(), self.settings.drain_delay_s)
        finally:
            await data.cleanup()
            await admin.cleanup()
        if self.sink is not None:
            event("stopped", service="outrider", outcomes=self.sink.snapshot())


def bound(runner: web.AppRunner) -> str:
    """HOST:PORT actually bound by the runner's first socket (port 0 resolved)."""
    for address in runner.addresses:
        host, port = address[:2]
        return f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    raise RuntimeError("runner has no bound socket")


async def serve(settings: Settings) -> int:
    """Run a sidecar until SIGTERM or SIGINT; returns the exit code (2 if the runtime is unfit)."""
    problems = runtime_problems(runtime_facts())
    if problems and not settings.allow_python_parser:
        for problem in problems:
            event("refusing to start", level=logging.ERROR, problem=problem)
        return 2
    stop, hurry = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_stop_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop_signal)
    sidecar = Sidecar(settings)
    loop.add_signal_handler(signal.SIGHUP, sidecar.reload_requested)
    await sidecar.serve(stop, hurry)
    return 0
