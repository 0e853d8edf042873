"""The gRPC port's parts from the sidecar's filters: the inference chain (edge filters, route, record, the
shadow mirror when there is a dispatcher, then `GrpcForward`) and the health/metadata chain (edge filters,
then `Passthrough`).

Usage: port = grpc_port(edge, route, record, router, dispatcher); bound = await port.front.start(host, 0);
       ...; await port.close(grace=15.0); ...; await port.close_shadows()  (after the dispatcher drained)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from multidict import CIMultiDict

from proxy.control.router import Router
from proxy.dataplane.chain import Filter, build_chain
from proxy.dataplane.exchange import Exchange, Reply
from proxy.dataplane.ids import RequestIds
from proxy.grpcfront.forward import GrpcForward
from proxy.grpcfront.front import GrpcFront
from proxy.grpcfront.mirror import GrpcMirror, GrpcShadowCalls
from proxy.grpcfront.passthrough import Passthrough
from proxy.grpcfront.stream import StreamPassthrough
from shadow.dispatch import ShadowDispatcher


@dataclass(frozen=True, slots=True)
class GrpcPort:
    """The server and the upstream channels it owns."""

    front: GrpcFront
    forward: GrpcForward
    shadow_calls: GrpcShadowCalls | None = None

    async def close(self, grace: float) -> None:
        """Stop taking calls, let running ones finish within `grace`, close the upstream channels."""
        await self.front.stop(grace)
        await self.forward.close()

    async def close_shadows(self) -> None:
        """Close the shadows' channels (once the dispatcher has sent or dropped every copy)."""
        if self.shadow_calls is not None:
            await self.shadow_calls.close()


def grpc_port(
    edge: Sequence[Filter],
    route: Filter,
    record: Filter,
    router: Router,
    shadows: ShadowDispatcher | None = None,
) -> GrpcPort:
    """The gRPC port's chains over the same filter instances as the HTTP port (and the same dispatcher)."""
    forward, ids = GrpcForward(), RequestIds()
    passthrough = Passthrough(router, forward)
    calls = GrpcShadowCalls() if shadows is not None else None
    mirror = [GrpcMirror(shadows, calls)] if shadows is not None and calls is not None else []
    infer = build_chain([*edge, route, record, *mirror], forward)
    health = build_chain(list(edge), passthrough)
    stream = StreamPassthrough(build_chain(list(edge), _admitted), passthrough, forward, ids.next)
    return GrpcPort(GrpcFront(infer, health, ids.next, stream.handle), forward, calls)


async def _admitted(ex: Exchange) -> Reply:
    """The end of the chain that only admits (a stream is relayed once its first message got through)."""
    return Reply(200, CIMultiDict(), b"")
