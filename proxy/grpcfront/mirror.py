"""Shadow copies of the gRPC port's `ModelInfer` calls: the HTTP mirror's rules (eligibility, sampling,
`spec.shadow.maxBodyBytes`, the bounded queue and workers, the circuit breaker, the compare pool:
proxy.filters.mirror, shadow.dispatch), with each copy sent to the shadow variant's `grpcUpstream`.

Usage: calls = GrpcShadowCalls(); filters = [..., GrpcMirror(dispatcher, calls)]; ...; await calls.close()
(once the dispatcher has drained: copies still queued need the channels).

A copy is the request's bytes (its model name and version rewritten for a shadow that declares its own),
with `x-request-id` and `x-outrider-shadow: 1` as metadata (the primary gets no more of the client's
metadata than its request id, so neither does a shadow). Answers are compared as ModelInferResponses
(shadow.compare.grpc_answer). A shadow without a `grpcUpstream` is never called: its record entry is
`dropped:no_grpc_upstream`, `skipped`. The channels are the shadows' own (never the primary's), one per
address and cap: an answer over the experiment's cap is refused by the channel while it is received
(`response_too_large`), so no copy holds more than the cap.
"""

from __future__ import annotations

import time

import grpc
from multidict import CIMultiDict

from experiments.model import ShadowSpec, Variant
from oipgrpc.messages import METHODS
from proxy.dataplane.exchange import Exchange
from proxy.dataplane.reply_headers import REQUEST_ID
from proxy.filters.mirror import Mirror
from proxy.grpcfront.forward import renamed
from proxy.grpcfront.status import http_of
from shadow.compare.answer import DEFAULT_MAX_BYTES
from shadow.compare.base import Comparator
from shadow.compare.grpc_answer import GrpcAnswers
from shadow.compare.none import NoComparison
from shadow.dispatch import SHADOW_HEADER, ShadowDispatcher, ShadowJob
from shadow.pairing import ShadowResult

NO_GRPC_UPSTREAM = "no_grpc_upstream"
TOO_LARGE = "larger than max"
"""What grpc says when a received message is over the channel's `grpc.max_receive_message_length`."""


class GrpcShadowCalls:
    """Unary calls of the OIP service to shadow servers, raw bytes in and out, as `ShadowJob.via`."""

    def __init__(self) -> None:
        self._channels: dict[tuple[str, int], grpc.aio.Channel] = {}

    def channel(self, target: str, cap: int) -> grpc.aio.Channel:
        """The shadows' channel to HOST:PORT that receives answers of at most `cap` bytes."""
        key = (target, cap)
        ch = self._channels.get(key)
        if ch is None:
            options = (("grpc.max_receive_message_length", cap),)
            ch = self._channels[key] = grpc.aio.insecure_channel(target, options=options)
        return ch

    async def __call__(self, job: ShadowJob) -> ShadowResult:
        """Send one copy; what the shadow answered, as the dispatcher records it."""
        cap = job.max_bytes or DEFAULT_MAX_BYTES
        call = self.channel(job.url, cap).unary_unary(METHODS[job.method].path)
        metadata = tuple((name.lower(), value) for name, value in job.headers.items())
        started = time.monotonic()
        try:
            answer: bytes = await call(job.body, timeout=job.timeout_s, metadata=metadata)
        except grpc.aio.AioRpcError as err:
            return failed(err, _ms(started))
        return ShadowResult(200, None, _ms(started), answer)

    async def close(self) -> None:
        """Close every channel."""
        channels, self._channels = list(self._channels.values()), {}
        for ch in channels:
            await ch.close()


def failed(err: grpc.aio.AioRpcError, latency_ms: float) -> ShadowResult:
    """A failed shadow call as the HTTP dispatcher would record it."""
    code = err.code()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ShadowResult(0, "timeout", latency_ms)
    if code == grpc.StatusCode.UNAVAILABLE:
        return ShadowResult(0, "connect_error", latency_ms)
    if code == grpc.StatusCode.CANCELLED:
        return ShadowResult(0, "upstream_reset", latency_ms)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and TOO_LARGE in (err.details() or ""):
        return ShadowResult(200, "response_too_large", latency_ms)  # it answered: not a circuit failure
    status = http_of(code)
    return ShadowResult(status, "upstream_5xx" if status >= 500 else None, latency_ms)


class GrpcMirror(Mirror):
    """The gRPC port's mirror: copies go to each shadow's `grpcUpstream` through `calls`."""

    def __init__(self, dispatcher: ShadowDispatcher, calls: GrpcShadowCalls) -> None:
        super().__init__(dispatcher)
        self.via = calls

    def comparing(self, compare: Comparator) -> Comparator:
        """Comparisons read ModelInferResponses."""
        return compare if isinstance(compare, NoComparison) else GrpcAnswers(compare)

    def unsendable(self, shadow: Variant) -> str | None:
        """A shadow without a gRPC address gets no gRPC copies."""
        return NO_GRPC_UPSTREAM if shadow.grpc_upstream is None else None

    def copy_headers(self, ex: Exchange, spec: ShadowSpec | None) -> CIMultiDict[str]:
        """The request id and the shadow mark."""
        return CIMultiDict({REQUEST_ID: ex.inbound.request_id, SHADOW_HEADER: "1"})

    def target(self, ex: Exchange, shadow: Variant) -> tuple[str, str, bytes]:
        """(HOST:PORT, RPC name, request bytes asking for the shadow's own model name and version)."""
        assert shadow.grpc_upstream is not None  # unsendable() said so
        body = ex.inbound.body
        if shadow.model is not None or shadow.version is not None:
            body = renamed(body, shadow.model, shadow.version)
        method = ex.rpc.method if ex.rpc is not None else "ModelInfer"
        return shadow.grpc_upstream, method, body


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000.0
