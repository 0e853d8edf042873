"""`Passthrough`: the terminal stage of the gRPC port's health and metadata calls. A model's calls
(ModelReady, ModelMetadata) go to the stable variant of the experiment that serves the model; the server's
(ServerLive, ServerReady, ServerMetadata) to the stable variant of the first experiment with a gRPC upstream.
Nothing is recorded: only inference is an experiment's outcome. A model's calls ask for the stable variant's
own model name and version when it declares them, as its ModelInfer calls do.

Usage: stage = Passthrough(router, forward); reply = await stage(exchange)
"""

from __future__ import annotations

from experiments.model import Variant
from proxy.control.router import Router
from proxy.dataplane.errors import NotFound
from proxy.dataplane.exchange import Exchange, Reply
from proxy.grpcfront.forward import GrpcForward, renamed

HEALTH_TIMEOUT_S = 5.0
MODEL_CALLS = ("ModelReady", "ModelMetadata")
"""Calls about one model: a stable variant that names its own model (`model:`, `version:`) is asked about
that one."""


class Passthrough:
    """Sends a call as received to the right stable server."""

    def __init__(self, router: Router, forward: GrpcForward) -> None:
        self.router, self.forward = router, forward

    def target(self, path: str) -> str | None:
        """The gRPC address answering calls about `path` (`/v2` for the server itself)."""
        stable = self.stable(path)
        return stable.grpc_upstream if stable is not None else None

    def stable(self, path: str) -> Variant | None:
        """The stable variant whose server answers calls about `path` (`/v2` for the server itself)."""
        if path != "/v2":
            live = self.router.match("POST", path)
            return live.experiment.stable if live is not None else None
        for live in self.router.all():
            if live.experiment.stable.grpc_upstream is not None:
                return live.experiment.stable
        return None

    async def __call__(self, ex: Exchange) -> Reply:
        """Forward; NotFound when no experiment has a gRPC server for it."""
        stable = self.stable(ex.inbound.path)
        target = stable.grpc_upstream if stable is not None else None
        if stable is None or target is None:
            raise NotFound(f"no experiment with a grpcUpstream serves {ex.inbound.path}")
        rpc = ex.rpc
        method = rpc.method if rpc is not None else "ServerLive"
        body = ex.inbound.body
        if method in MODEL_CALLS and (stable.model is not None or stable.version is not None):
            body = renamed(body, stable.model, stable.version, method)
        timeout = HEALTH_TIMEOUT_S
        if rpc is not None and rpc.time_left_s is not None:
            timeout = min(timeout, rpc.time_left_s)
        return await self.forward.call(target, method, body, timeout, ex.inbound.request_id)
