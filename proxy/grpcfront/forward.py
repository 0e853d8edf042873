"""`GrpcForward`: the gRPC front's terminal stage. Sends the request bytes, as received, to the variant's
`grpcUpstream` and returns the answer bytes; the answer's gRPC status becomes the record's HTTP-like status
(proxy.grpcfront.status), so the analysis counts upstream failures as it does over HTTP.

Usage: forward = GrpcForward(); reply = await forward(exchange); await forward.close()
Deadline: the experiment's `timeout`, or the client's own deadline when that is sooner (propagated). An
upstream that cannot be reached is a 502 (`connect_error`), a deadline a 504 (`timeout`), as over HTTP.
"""

from __future__ import annotations

import grpc
from multidict import CIMultiDict

from experiments.model import DEFAULT_TIMEOUT_S
from oipgrpc.messages import METHODS
from proxy.dataplane.errors import UpstreamTimeout, UpstreamUnavailable
from proxy.dataplane.exchange import Exchange, Reply
from proxy.grpcfront.status import http_of

GRPC_STATUS = "grpc-status"
GRPC_MESSAGE = "grpc-message"
CHANNEL_OPTIONS = (("grpc.max_receive_message_length", 64 * 1024 * 1024),)


def renamed(request: bytes, model: str | None, version: str | None, method: str = "ModelInfer") -> bytes:
    """A request of `method` (ModelInfer, ModelReady, ModelMetadata) asking for `model` / `version` instead
    (None: as sent)."""
    message = METHODS[method].request.FromString(request)
    infer = method == "ModelInfer"
    if model is not None:
        setattr(message, "model_name" if infer else "name", model)
    if version is not None:
        setattr(message, "model_version" if infer else "version", version)
    out: bytes = message.SerializeToString()
    return out


class GrpcForward:
    """One insecure channel per upstream address, raw bytes both ways."""

    def __init__(self, default_timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.default_timeout_s = default_timeout_s
        self._channels: dict[str, grpc.aio.Channel] = {}

    def channel(self, target: str) -> grpc.aio.Channel:
        """The (shared, lazily connecting) channel to HOST:PORT."""
        ch = self._channels.get(target)
        if ch is None:
            ch = self._channels[target] = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        return ch

    async def __call__(self, ex: Exchange) -> Reply:
        """Forward a ModelInfer call; the answer's bytes, or its status as an HTTP-like reply."""
        a = ex.assignment
        target = a.variant.grpc_upstream if a is not None else None
        if target is None:
            name = a.variant.name if a is not None else "(no experiment)"
            raise UpstreamUnavailable(f"variant {name} has no grpcUpstream", error_class="connect_error")
        timeout = a.experiment.timeout_s if a is not None else self.default_timeout_s
        rpc = ex.rpc
        if rpc is not None and rpc.time_left_s is not None:
            timeout = min(timeout, rpc.time_left_s)
        method = rpc.method if rpc is not None else "ModelInfer"
        body = ex.inbound.body
        if a is not None and (a.variant.model is not None or a.variant.version is not None):
            body = renamed(body, a.variant.model, a.variant.version)
        return await self.call(target, method, body, timeout, ex.inbound.request_id)

    async def call(self, target: str, method: str, body: bytes, timeout: float, request_id: str) -> Reply:
        """One unary call of the OIP service to `target`, raw bytes in and out."""
        call = self.channel(target).unary_unary(METHODS[method].path)
        try:
            answer: bytes = await call(body, timeout=timeout, metadata=(("x-request-id", request_id),))
        except grpc.aio.AioRpcError as err:
            return self._failed(err, timeout)
        return Reply(200, CIMultiDict(), answer)

    def _failed(self, err: grpc.aio.AioRpcError, timeout: float) -> Reply:
        code = err.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise UpstreamTimeout(f"upstream did not answer within {timeout:g}s") from None
        if code == grpc.StatusCode.UNAVAILABLE:
            raise UpstreamUnavailable(f"upstream unavailable: {err.details()}", error_class="connect_error")
        headers = CIMultiDict({GRPC_STATUS: str(code.value[0]), GRPC_MESSAGE: err.details() or ""})
        return Reply(http_of(code), headers, b"")

    async def close(self) -> None:
        """Close every channel."""
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()
