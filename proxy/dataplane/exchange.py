"""Per-request state, typed: the frozen `Inbound` request, the `Exchange` filters fill in, and the `Reply`.

Each slot of `Exchange` is written by exactly one filter (noted beside it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from experiments.model import Experiment, Variant
from proxy.dataplane.client_ip import ClientAddress
from shadow.pairing import Pair


@dataclass(frozen=True, slots=True)
class Inbound:
    """The client's request as outrider received it (body read once, capped)."""

    method: str
    path: str
    """Path with query string, as sent (`/v2/models/digits/infer?x=1`)."""
    headers: CIMultiDictProxy[str]
    """End-to-end headers only: hop-by-hop ones are already stripped."""
    body: bytes
    peer: str | None
    received_at: float
    """Unix seconds (wall clock) when the request arrived."""
    received_mono: float
    """Monotonic seconds when the request arrived (for latencies)."""
    request_id: str


@dataclass(frozen=True, slots=True)
class Assignment:
    """Which variant answers, and with what probability this request was routed there."""

    experiment: Experiment
    variant: Variant
    p_variant: float
    unit: str | None
    """Hash of the stickiness key, never the raw key; None when assigned per request."""
    bucket: int
    pinned: bool = False
    state_version: int = 0


@dataclass(frozen=True, slots=True)
class Rpc:
    """A call on the gRPC port (proxy.grpcfront): which method, and how long its client still waits."""

    method: str
    time_left_s: float | None
    """Seconds left of the client's deadline when the call arrived (None: no deadline)."""


@dataclass(slots=True)
class Exchange:
    """One request's journey through the filter chain."""

    inbound: Inbound
    client: ClientAddress | None = None  # client_ip: who the client is (None without that filter)
    principal: Mapping[str, Any] | None = None  # auth: verified JWT claims
    assignment: Assignment | None = None  # route
    upstream_url: str | None = None  # route: base URL of the destination (variant or default upstream)
    upstream_path: str | None = None  # route: the path for the upstream when the variant renames the model
    upstream_ms: float = 0.0  # forward: time spent waiting for the upstream (a streamed body's end included)
    ttfb_ms: float | None = None  # forward: from the request's arrival to the upstream's first answer byte
    extra: dict[str, str] = field(default_factory=dict)  # response headers added by filters
    pair: Pair | None = None  # mirror: the shadows' answers, joined to the outcome record by record
    rpc: Rpc | None = None
    """Set by the gRPC port (proxy.grpcfront): the call this exchange is; None over HTTP."""
    cancel: Callable[[], object] | None = None
    """Set by a terminal started on callbacks (proxy.dataplane.fastpath): stops the exchange when the
    client goes away (the task path cancels its task instead)."""
    pending_body: PendingBody | None = None
    """The native data plane (proxy.dataplane): the body not read yet. Until the `body` stage
    (proxy.dataplane.body.ReadBody, after `route`) reads it into `inbound`, `inbound.body` is empty."""


class PendingBody(Protocol):
    """A request body still arriving: the data plane runs auth, rate limits and routing on the headers
    before any of it is read, so a refused request costs no body."""

    async def read(self, cap: int) -> bytes:
        """The whole body; PayloadTooLarge beyond `cap`, RequestTimeout when the client is too slow."""
        ...


class BodyStream(Protocol):
    """A response body that arrives in chunks (an upstream answer read as the client takes it).

    Iterating yields the chunks as they arrive; the end of iteration is the end of the body; an exception
    during iteration is an error after the first byte. `aclose` stops early and closes the upstream
    connection (a client that went away stops the generation).
    """

    def __aiter__(self) -> AsyncIterator[bytes]:
        """The chunks, as they arrive."""
        ...

    async def aclose(self) -> None:
        """Stop reading and close the upstream connection (idempotent)."""
        ...


@dataclass(slots=True)
class Reply:
    """What goes back to the client."""

    status: int
    headers: CIMultiDict[str]
    body: bytes
    close: bool = False
    """Close the client connection after this reply (framing errors: nothing after them can be trusted)."""
    stream: BodyStream | None = None
    """When set, the body comes from this stream (and `body` is empty): the edge sends it as it arrives.
    `headers` then has `Content-Length` when the upstream announced one; without it the length is unknown."""
