"""The gRPC port: a grpc.aio server whose one generic handler takes every call of the OIP service as raw
bytes, runs `ModelInfer` through the filter chain and passes health and metadata calls (and, given a
`stream` handler, `ModelStreamInfer`: proxy.grpcfront.stream) to a stable server.

Usage: front = GrpcFront(infer_chain, edge_chain, router, ids); port = await front.start("127.0.0.1", 0)
       ...; await front.stop(grace=5.0)
What the chain sees of a call: method POST, path `/v2/models/NAME[/versions/V]/infer` from the request's
model name and version (so experiments match gRPC calls as they match REST ones), the call's metadata as
headers (binary `-bin` keys and client `x-outrider-*` keys left out), the request bytes as the body, the
peer's address. Answers carry `x-request-id` and, unless the experiment hides it, `x-outrider-variant` in
their initial metadata; outrider's own refusals become gRPC codes (proxy.grpcfront.status).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from multidict import CIMultiDict, CIMultiDictProxy

from oipgrpc import messages as m
from proxy.dataplane.chain import Stage
from proxy.dataplane.edge import CONTROL_PREFIX, request_id_of
from proxy.dataplane.errors import OutriderError
from proxy.dataplane.exchange import Exchange, Inbound, Reply, Rpc
from proxy.dataplane.reply_headers import REQUEST_ID, VARIANT
from proxy.grpcfront.forward import GRPC_MESSAGE, GRPC_STATUS
from proxy.grpcfront.status import code_of_http, code_of_number
from proxy.runtime.ports import hostport

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
PASSTHROUGH = ("ServerLive", "ServerReady", "ServerMetadata", "ModelReady", "ModelMetadata")
"""Calls answered by a stable variant's server, through the edge filters (auth, limits) but unrecorded."""


def infer_path(name: str, version: str) -> str:
    """The REST path of the same inference: what experiments match on."""
    return f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"


def peer_address(peer: str) -> str | None:
    """The IP of a gRPC peer string (`ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000`); None for others."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or None
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]") or None
    return None


def headers_of(metadata: Any) -> CIMultiDict[str]:
    """The call's text metadata as request headers (binary and client `x-outrider-*` keys dropped)."""
    headers: CIMultiDict[str] = CIMultiDict()
    for key, value in metadata or ():
        if isinstance(value, str) and not key.endswith("-bin") and not key.startswith(CONTROL_PREFIX):
            headers.add(key, value)
    return headers


class GrpcFront:
    """The gRPC port of one sidecar."""

    def __init__(
        self,
        infer: Stage,
        edge: Stage,
        next_id: Callable[[], str],
        stream: Callable[[AsyncIterator[bytes], grpc.aio.ServicerContext], AsyncIterator[bytes]]
        | None = None,
    ) -> None:
        self.infer_chain, self.edge_chain, self.next_id, self.stream = infer, edge, next_id, stream
        options = (
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        )
        self.server = grpc.aio.server(options=options)
        self.server.add_generic_rpc_handlers((self._handlers(),))

    def _handlers(self) -> grpc.GenericRpcHandler:
        methods = {
            name: grpc.unary_unary_rpc_method_handler(self._call(name))
            for name in ("ModelInfer", *PASSTHROUGH)
        }
        if self.stream is not None:
            methods["ModelStreamInfer"] = grpc.stream_stream_rpc_method_handler(self.stream)
        return grpc.method_handlers_generic_handler(m.SERVICE, methods)

    def _call(self, method: str) -> Callable[[bytes, grpc.aio.ServicerContext], Any]:
        async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return await self.handle(method, raw, context)

        return handle

    async def start(self, host: str, port: int) -> int:
        """Listen on HOST:PORT; the bound port."""
        bound: int = self.server.add_insecure_port(hostport(host, port))
        if bound == 0:
            raise OSError(f"cannot listen for gRPC on {host}:{port}")
        await self.server.start()
        return bound

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let running ones finish within `grace` seconds."""
        await self.server.stop(grace)

    async def handle(self, method: str, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """One call: the chain's answer bytes, or an abort with the matching code."""
        request = m.METHODS[method].request()
        try:
            request.ParseFromString(raw)
        except DecodeError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {method} request")
        if method == "ModelInfer":
            path, chain = infer_path(request.model_name, request.model_version), self.infer_chain
        else:
            name = getattr(request, "name", "")
            path = infer_path(name, getattr(request, "version", "")) if name else "/v2"
            chain = self.edge_chain
        headers = CIMultiDictProxy(headers_of(context.invocation_metadata()))
        rid = request_id_of(headers) if REQUEST_ID in headers else self.next_id()
        inbound = Inbound(
            "POST",
            path,
            headers,
            raw,
            peer_address(context.peer()),
            time.time(),
            time.monotonic(),
            rid,
        )
        ex = Exchange(inbound, rpc=Rpc(method, context.time_remaining()))
        try:
            reply = await chain(ex)
        except OutriderError as err:
            await context.send_initial_metadata(((REQUEST_ID, rid),))
            await context.abort(code_of_http(err.status), err.detail)
        a = ex.assignment
        variant = ((VARIANT, a.variant.name),) if a is not None and a.experiment.expose_variant else ()
        await context.send_initial_metadata(((REQUEST_ID, rid), *variant, *ex.extra.items()))
        return await self._answer(reply, context)

    @staticmethod
    async def _answer(reply: Reply, context: grpc.aio.ServicerContext) -> bytes:
        if reply.status == 200:
            return reply.body
        number = reply.headers.get(GRPC_STATUS)
        code = code_of_number(int(number)) if number and number.isdigit() else code_of_http(reply.status)
        await context.abort(code, reply.headers.get(GRPC_MESSAGE, ""))
        raise AssertionError("abort returns by raising")  # pragma: no cover
