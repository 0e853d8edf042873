"""The data side's parts, built from the settings once the outcome sink exists, and closed in order:
the filter chains (traffic and feedback) and their edges, the upstream pool, the shadow dispatcher, the gRPC
port, JWKS keys and the shared rate-limit store.

Usage (proxy.runtime.server.Sidecar, an aiohttp cleanup_ctx step):
    wiring = Wiring(settings, sink, router, metrics, tasks, worker=False)
    await wiring.open()          # wiring.traffic, wiring.feedback, wiring.chains, wiring.shadows, wiring.grpc
    ...
    await wiring.close()         # shadows drained before the sink closes; then pool, keys, stores, readers
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry

from experiments.sink import OutcomeSink
from experiments.stores import FeedbackStore, is_redis, open_feedback
from proxy.auth.jwks_fetch import JwksKeys
from proxy.control.router import Router
from proxy.control.webhook import Webhook
from proxy.dataplane.body import ReadBody
from proxy.dataplane.chain import FastChain, Filter, Stage, build_chain, fast_chain
from proxy.dataplane.client_ip import TrustedProxies
from proxy.dataplane.edge import BodyPace, Edge
from proxy.feedback import Feedback
from proxy.feedback.token import FeedbackTokens, data_dir_secret
from proxy.filters.auth import Auth
from proxy.filters.client_ip import ClientIp
from proxy.filters.forward import Forward
from proxy.filters.mirror import Mirror
from proxy.filters.ratelimit import RateLimit
from proxy.filters.record import Record
from proxy.filters.route import Route
from proxy.grpcfront.wiring import GrpcPort, grpc_port
from proxy.ratelimit.shared import RedisLimiterStore
from proxy.runtime.tasks import TaskGroup
from proxy.settings import Settings
from proxy.telemetry.collectors import (
    CountsCollector,
    LimiterStoreCollector,
    UpstreamPoolCollector,
    WebhookCollector,
)
from proxy.telemetry.metrics import Metrics
from proxy.upstream import UpstreamPool
from proxy.upstream.retry_budget import RetryBudgets
from shadow.dispatch import ShadowDispatcher

FEEDBACK_MAX_BYTES = 64 * 1024
UPSTREAM_CONNECT_TIMEOUT_S = 2.0


class Wiring:
    """Builds (`open`) and closes (`close`) the request path of one process."""

    def __init__(
        self,
        settings: Settings,
        sink: OutcomeSink,
        router: Router,
        metrics: Metrics,
        tasks: TaskGroup,
        *,
        worker: bool,
    ) -> None:
        self.settings, self.sink, self.router, self.metrics, self.tasks = (
            settings,
            sink,
            router,
            metrics,
            tasks,
        )
        self.worker = worker
        """A worker of `--workers N`: feedback is joined to outcomes written by other processes too."""
        self.traffic: Edge  # the three are made by `open`
        self.feedback: Edge
        self.chains: tuple[Stage, Stage]
        self.traffic_fast: FastChain | None = None
        """The traffic chain on callbacks (proxy.dataplane.fastpath), when every filter allows it."""
        """(traffic, feedback) for the native data plane."""
        self.shadows: ShadowDispatcher | None = None
        self.grpc: GrpcPort | None = None
        self._jwks: JwksKeys | None = None
        self._shared: RedisLimiterStore | None = None
        self._pool: UpstreamPool | None = None
        self._shadow_task: asyncio.Task[Any] | None = None
        self._feedback_handler: Feedback | None = None
        self._reader: FeedbackStore | None = None

    async def open(self) -> None:
        """Build everything (JWKS keys fetched, the shared limiter connected, the feedback secret read)."""
        edge = await self._edge_filters()
        secret = self.settings.feedback_secret  # read before serving; made in the data dir on first start
        if secret is None:
            secret = await asyncio.to_thread(data_dir_secret, self.settings.data_dir)
        tokens = FeedbackTokens(secret)
        route = Route(self.router, self.settings.conf.default_upstream)
        # `ReadBody` after `route`: the native plane reads a body only once auth, limits and routing passed
        record = Record(self.sink, tokens=tokens)
        filters: list[Filter] = [*edge, route, ReadBody(self.settings.conf.limits.max_body_bytes), record]
        if any(lv.experiment.shadows for lv in self.router.all()):
            self.shadows = ShadowDispatcher(self.settings.shadow_limits)
            self.metrics.attach_shadows(self.shadows)
            self._shadow_task = self.tasks.spawn(self.shadows.run(), name="shadow-dispatch")
            filters.append(Mirror(self.shadows))
        if self.settings.grpc_listen is not None:  # the same filters, and the same shadow dispatcher
            self.grpc = grpc_port(edge, route, record, self.router, self.shadows)
        forward = self._forward()
        chain = build_chain(filters, forward)
        self.traffic_fast = fast_chain(filters, forward)
        limits = self.settings.conf.limits
        pace = BodyPace(limits.header_timeout, limits.body_min_rate)
        self.traffic = Edge(chain, self.metrics, limits.max_body_bytes, pace)
        settings = self.settings
        self._reader = await asyncio.to_thread(open_feedback, settings.conf.store, settings.data_dir)
        shared = self.worker or is_redis(settings.conf.store)  # other processes' queues may hold the outcome
        self._feedback_handler = Feedback(
            self._reader, self.sink, self.router, self.metrics, tokens, shared=shared
        )
        feedback_chain = build_chain([*edge, ReadBody(FEEDBACK_MAX_BYTES)], self._feedback_handler)
        self.feedback = Edge(feedback_chain, self.metrics, FEEDBACK_MAX_BYTES, pace)
        self.chains = (chain, feedback_chain)

    async def _edge_filters(self) -> list[Filter]:
        """The client first (rate limits key on it), then auth and rate limits: a refused request reaches
        no upstream and leaves no record."""
        settings, registry = self.settings, self.metrics.registry
        edge: list[Filter] = [ClientIp(TrustedProxies(settings.conf.trusted_proxies))]
        auth = settings.auth
        if auth is not None:
            if auth.jwks_url is not None:
                self._jwks = JwksKeys(auth.jwks_url, auth.algorithms)
                fetches = self._jwks.fetches
                registry.register(
                    CountsCollector("outrider_jwks_fetch", "JWKS fetches by result", "result", fetches)
                )
                await self._jwks.start()
            edge.append(Auth(auth, self._jwks))
        limit = settings.rate_limit
        if limit is not None:
            self._shared = limit.redis_store()  # budgets in Redis, shared by replicas
            if self._shared is not None:
                registry.register(LimiterStoreCollector(self._shared))
                await self._shared.start()
            edge.append(RateLimit(limit, self._shared))
        return edge

    def _forward(self) -> Forward:
        self._pool = UpstreamPool(connect_timeout_s=UPSTREAM_CONNECT_TIMEOUT_S)
        self.metrics.registry.register(UpstreamPoolCollector(self._pool))
        settings = self.settings
        forward = Forward(
            self._pool,
            budgets=RetryBudgets(settings.conf.retries.budget, settings.conf.retries.min),
            preserve_host=settings.conf.forward.preserve_host,
        )
        self.metrics.registry.register(
            CountsCollector("outrider_upstream_retries", "Connect-failure retries", "result", forward.retries)
        )
        return forward

    async def close(self) -> None:
        """Pending shadow pairs complete (bounded by the shadow timeout) before the sink closes; then the
        rest."""
        if self.shadows is not None and self._shadow_task is not None:
            await self.shadows.close(timeout=self.shadows.limits.timeout_s * 2)
            await asyncio.wait({self._shadow_task}, timeout=self.shadows.limits.timeout_s * 2)
        if self.grpc is not None:  # the gRPC copies are all sent or dropped by now
            await self.grpc.close_shadows()
        if self._pool is not None:
            await self._pool.close()
        if self._jwks is not None:
            await self._jwks.close()
        if self._shared is not None:
            await self._shared.close()
        if self._feedback_handler is not None:
            await asyncio.to_thread(self._feedback_handler.close)
        if self._reader is not None:
            await asyncio.to_thread(self._reader.close)


def webhook_of(settings: Settings, registry: CollectorRegistry) -> Webhook | None:
    """The decision webhook the settings ask for (its counters registered), or None."""
    url = settings.conf.webhook.url
    if url is None:
        return None
    secret = settings.webhook_secret.encode() if settings.webhook_secret else None
    webhook = Webhook(url, secret)
    registry.register(WebhookCollector(webhook))
    return webhook
