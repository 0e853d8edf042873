"""`ModelStreamInfer` (the bidirectional stream Triton's clients use, e.g. for decoupled models) on the gRPC
port: admitted by the edge filters on its first message (auth, rate limits), then passed through whole to
the stable variant's server of the experiment that serves the first message's model. A stream is not an
experiment's outcome: it is never split, never recorded (its messages could not be paired with one answer).

Usage: handler = StreamPassthrough(admit, passthrough, forward, ids.next).handle  (a stream_stream handler)
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from multidict import CIMultiDictProxy

from oipgrpc import messages as m
from proxy.dataplane.chain import Stage
from proxy.dataplane.edge import request_id_of
from proxy.dataplane.errors import OutriderError
from proxy.dataplane.exchange import Exchange, Inbound, Rpc
from proxy.dataplane.reply_headers import REQUEST_ID
from proxy.grpcfront.forward import GrpcForward
from proxy.grpcfront.front import headers_of, infer_path, peer_address
from proxy.grpcfront.passthrough import Passthrough
from proxy.grpcfront.status import code_of_http

METHOD = "ModelStreamInfer"


class StreamPassthrough:
    """Admits a stream on its first message and relays both directions to a stable server."""

    def __init__(
        self, admit: Stage, passthrough: Passthrough, forward: GrpcForward, next_id: Callable[[], str]
    ) -> None:
        self.admit, self.passthrough, self.forward, self.next_id = admit, passthrough, forward, next_id

    async def handle(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """Relay the stream; the upstream's status ends it as it ended upstream."""
        first = await anext(requests, None)
        if first is None:
            return
        try:
            request = m.ModelInferRequest.FromString(first)
        except DecodeError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {METHOD} request")
        headers = CIMultiDictProxy(headers_of(context.invocation_metadata()))
        rid = request_id_of(headers) if REQUEST_ID in headers else self.next_id()
        path = infer_path(request.model_name, request.model_version)
        inbound = Inbound(
            "POST", path, headers, first, peer_address(context.peer()), time.time(), time.monotonic(), rid
        )
        try:
            await self.admit(Exchange(inbound, rpc=Rpc(METHOD, context.time_remaining())))
        except OutriderError as err:
            await context.abort(code_of_http(err.status), err.detail)
        target = self.passthrough.target(path)
        if target is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no experiment with a grpcUpstream serves {path}")
            return  # abort raises; this tells the type checker
        await context.send_initial_metadata(((REQUEST_ID, rid),))
        call: Any = self.forward.channel(target).stream_stream(m.METHODS[METHOD].path)(
            _prepend(first, requests), timeout=context.time_remaining(), metadata=((REQUEST_ID, rid),)
        )
        try:
            async for answer in call:
                yield answer
        except grpc.aio.AioRpcError as err:
            await context.abort(err.code(), err.details() or "")


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for message in rest:
        yield message
