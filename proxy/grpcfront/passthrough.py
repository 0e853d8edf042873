"""`Passthrough`: the terminal stage of the gRPC port's health and metadata calls. A model's calls
(ModelReady, ModelMetadata) go to the stable variant of the experiment that serves the model; the server's
(ServerLive, ServerReady, ServerMetadata) to the stable variant of the first experiment with a gRPC upstream.
Nothing is recorded: only inference is an experiment's outcome.

Usage: stage = Passthrough(router, forward); reply = await stage(exchange)
"""

from __future__ import annotations

from proxy.errors import NotFound
from proxy.exchange import Exchange, Reply
from proxy.grpcfront.forward import GrpcForward
from proxy.router import Router

HEALTH_TIMEOUT_S = 5.0


class Passthrough:
    """Sends a call as received to the right stable server."""

    def __init__(self, router: Router, forward: GrpcForward) -> None:
        self.router, self.forward = router, forward

    def target(self, path: str) -> str | None:
        """The gRPC address answering calls about `path` (`/v2` for the server itself)."""
        if path != "/v2":
            live = self.router.match("POST", path)
            return live.experiment.stable.grpc_upstream if live is not None else None
        for live in self.router.all():
            if live.experiment.stable.grpc_upstream is not None:
                return live.experiment.stable.grpc_upstream
        return None

    async def __call__(self, ex: Exchange) -> Reply:
        """Forward; NotFound when no experiment has a gRPC server for it."""
        target = self.target(ex.inbound.path)
        if target is None:
            raise NotFound(f"no experiment with a grpcUpstream serves {ex.inbound.path}")
        rpc = ex.rpc
        method = rpc.method if rpc is not None else "ServerLive"
        timeout = HEALTH_TIMEOUT_S
        if rpc is not None and rpc.time_left_s is not None:
            timeout = min(timeout, rpc.time_left_s)
        return await self.forward.call(target, method, ex.inbound.body, timeout, ex.inbound.request_id)
