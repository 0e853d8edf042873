"""The sidecar process: wires store, sink, router, filter chain and both ports; runs until SIGTERM.

Usage: exit_code = proxy.loop.run(serve(Settings(...)))
Lifecycle (aiohttp cleanup_ctx): the outcome store opens first and closes last, so every request that was
answered has its record flushed before exit.
"""

from __future__ import annotations

import asyncio
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
from analysis.report import build_report, write_report
from analysis.verdict import Decision
from experiments.model import DEFAULT_MAX_BODY_BYTES, Experiment
from experiments.sink import OutcomeSink
from experiments.sqlite_store import DB_NAME, SqliteOutcomeStore
from experiments.state import ExperimentState
from experiments.state_store import SqliteStateStore
from proxy.admin import admin_app
from proxy.chain import Filter, build_chain
from proxy.edge import Edge
from proxy.feedback import PATH as FEEDBACK_PATH
from proxy.feedback import Feedback
from proxy.filters.auth import Auth, AuthSettings
from proxy.filters.forward import Forward, client_session
from proxy.filters.mirror import Mirror
from proxy.filters.ratelimit import RateLimit, RateLimitSettings
from proxy.filters.record import Record
from proxy.filters.route import Route
from proxy.logs import event
from proxy.metrics import Metrics
from proxy.router import Router
from proxy.runtime_checks import runtime_facts, runtime_problems
from proxy.statekeeper import StateKeeper
from proxy.tasks import TaskGroup
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
        self.data_app.cleanup_ctx.extend([self._outcomes, self._states, self._wiring, self._control])
        self.controllers: dict[str, Controller] = {}
        self.data_app.router.add_route("*", FEEDBACK_PATH, self._handle_feedback)
        self.data_app.router.add_route("*", "/{tail:.*}", self._handle_traffic)
        self.admin_app = admin_app(
            self.router,
            self.metrics,
            lambda: self.ready,
            lambda: self.keeper,
            settings.admin_token,
            self.analysis_of,
        )

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
        session = client_session()
        edge: list[
            Filter
        ] = []  # auth and rate limits come first: a refused request reaches no upstream, no record
        if self.settings.auth is not None:
            edge.append(Auth(self.settings.auth))
        if self.settings.rate_limit is not None:
            edge.append(RateLimit(self.settings.rate_limit))
        filters: list[Filter] = [*edge, Route(self.router, self.settings.default_upstream), Record(self.sink)]
        shadowed = any(lv.experiment.shadows for lv in self.router.all())
        if shadowed:
            self.shadows = ShadowDispatcher()
            self.metrics.attach_shadows(self.shadows)
            shadow_task = self.tasks.spawn(self.shadows.run(), name="shadow-dispatch")
            filters.append(Mirror(self.shadows))
        chain = build_chain(filters, Forward(session))
        self._traffic = Edge(chain, self.metrics, self.settings.max_body_bytes)
        reader = await asyncio.to_thread(SqliteOutcomeStore, self.settings.data_dir / DB_NAME)
        feedback = Feedback(reader, self.sink, self.router, self.metrics)
        self._feedback = Edge(build_chain(edge, feedback), self.metrics, FEEDBACK_MAX_BYTES)
        yield
        if self.shadows is not None:  # pending pairs complete (bounded by the shadow timeout) before the sink
            await self.shadows.close(timeout=self.shadows.limits.timeout_s * 2)
            await asyncio.wait({shadow_task}, timeout=self.shadows.limits.timeout_s * 2)
        await session.close()
        await asyncio.to_thread(feedback.close)
        await asyncio.to_thread(reader.close)

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

    def _finished(self, experiment: Experiment, state: ExperimentState, snapshot: dict[str, Any]) -> None:
        assert self.sink is not None
        drops = self.sink.drops_for(experiment.name)
        out = self.settings.data_dir / "reports" / experiment.name

        def write() -> None:  # in a thread: it reads the store and writes files
            store = SqliteOutcomeStore(self.settings.data_dir / DB_NAME, readonly=True)
            try:
                feedback = store.feedback_counts(experiment.name)
            finally:
                store.close()
            write_report(build_report(experiment, state, snapshot, drops, feedback=feedback), out)

        self.tasks.spawn(asyncio.to_thread(write), name=f"report:{experiment.name}")
        event(
            "experiment finished",
            experiment=experiment.name,
            phase=state.phase,
            report=str(out / "report.md"),
        )

    async def serve(self, stop: asyncio.Event) -> None:
        """Bind both ports, log `listening`, run until `stop` is set, then shut down in order."""
        data = web.AppRunner(
            self.data_app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self.settings.shutdown_timeout_s,
        )
        admin = web.AppRunner(self.admin_app, access_log=None, handle_signals=False)
        await data.setup()
        await admin.setup()
        try:
            data_site = web.TCPSite(data, *self.settings.listen, backlog=1024)
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
            self.ready = False
            event("stopping", service="outrider")
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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Sidecar(settings).serve(stop)
    return 0
