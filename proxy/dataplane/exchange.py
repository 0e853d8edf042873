"""Per-request state, typed: the read-only `Inbound` request and `Assignment`, the `Exchange` filters fill
in, and the `Reply`.

They are plain classes with `__slots__`, not dataclasses: compiled (docs/dataplane.md, "Compiled modules"),
their `__init__` is native code, where a dataclass's generated one runs interpreted (~1 µs per object, four
objects per request). `Final` attributes are read-only, checked by mypy and, compiled, at run time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from multidict import CIMultiDict

from experiments.model import Experiment, Variant
from proxy.dataplane.client_ip import ClientAddress
from proxy.dataplane.raw_headers import RawHeaders
from proxy.dataplane.request_headers import HeaderView
from shadow.pairing import Pair


class Inbound:
    """The client's request as outrider received it (body read once, capped). A stage that changes it (the
    normalised path, the body once read) swaps it whole, so every later stage (record, mirror, forward) sees
    one consistent request."""

    __slots__ = ("body", "headers", "method", "path", "peer", "received_at", "received_mono", "request_id")

    def __init__(
        self,
        method: str,
        path: str,
        headers: HeaderView,
        body: bytes,
        peer: str | None,
        received_at: float,
        received_mono: float,
        request_id: str,
    ) -> None:
        self.method: Final = method
        self.path: Final = path
        """Path with query string, as sent (`/v2/models/digits/infer?x=1`)."""
        self.headers: Final = headers
        """End-to-end headers only: hop-by-hop ones are already stripped."""
        self.body: Final = body
        self.peer: Final = peer
        self.received_at: Final = received_at
        """Unix seconds (wall clock) when the request arrived."""
        self.received_mono: Final = received_mono
        """Monotonic seconds when the request arrived (for latencies)."""
        self.request_id: Final = request_id

    def with_path(self, path: str) -> Inbound:
        """The same request with `path` (normalised)."""
        return Inbound(
            self.method,
            path,
            self.headers,
            self.body,
            self.peer,
            self.received_at,
            self.received_mono,
            self.request_id,
        )

    def with_body(self, body: bytes) -> Inbound:
        """The same request with its body, once read."""
        return Inbound(
            self.method,
            self.path,
            self.headers,
            body,
            self.peer,
            self.received_at,
            self.received_mono,
            self.request_id,
        )


class Assignment:
    """Which variant answers, and with what probability this request was routed there."""

    __slots__ = ("bucket", "experiment", "p_variant", "pinned", "state_version", "unit", "variant")

    def __init__(
        self,
        experiment: Experiment,
        variant: Variant,
        p_variant: float,
        unit: str | None,
        bucket: int,
        pinned: bool = False,
        state_version: int = 0,
    ) -> None:
        self.experiment: Final = experiment
        self.variant: Final = variant
        self.p_variant: Final = p_variant
        self.unit: Final = unit
        """Hash of the stickiness key, never the raw key; None when assigned per request."""
        self.bucket: Final = bucket
        self.pinned: Final = pinned
        self.state_version: Final = state_version


@dataclass(frozen=True, slots=True)
class Rpc:
    """A call on the gRPC port (proxy.grpcfront): which method, and how long its client still waits."""

    method: str
    time_left_s: float | None
    """Seconds left of the client's deadline when the call arrived (None: no deadline)."""


class Exchange:
    """One request's journey through the filter chain. Each slot but `inbound` is written by exactly one
    filter (noted beside it)."""

    __slots__ = (
        "assignment",
        "cancel",
        "client",
        "extra",
        "inbound",
        "pair",
        "pending_body",
        "principal",
        "rpc",
        "ttfb_ms",
        "upstream_ms",
        "upstream_path",
        "upstream_url",
    )

    def __init__(
        self,
        inbound: Inbound,
        *,
        client: ClientAddress | None = None,
        rpc: Rpc | None = None,
        pending_body: PendingBody | None = None,
    ) -> None:
        self.inbound = inbound
        self.client = client  # client_ip: who the client is (None without that filter)
        self.principal: Mapping[str, Any] | None = None  # auth: verified JWT claims
        self.assignment: Assignment | None = None  # route
        self.upstream_url: str | None = None  # route: base URL of the destination (variant or default)
        self.upstream_path: str | None = None  # route: the upstream's path when the variant renames the model
        self.upstream_ms = 0.0  # forward: waiting for the upstream (a streamed body's end included)
        self.ttfb_ms: float | None = None  # forward: from the request's arrival to the upstream's first byte
        self.extra: dict[str, str] = {}  # response headers added by filters
        self.pair: Pair | None = None  # mirror: the shadows' answers, joined to the outcome record by record
        self.rpc = rpc
        """Set by the gRPC port (proxy.grpcfront): the call this exchange is; None over HTTP."""
        self.cancel: Callable[[], object] | None = None
        """Set by a terminal started on callbacks (proxy.dataplane.fastpath): stops the exchange when the
        client goes away (the task path cancels its task instead)."""
        self.pending_body = pending_body
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


class Reply:
    """What goes back to the client.

    An upstream's answer keeps its headers as sent (`raw`) until a filter reads `headers`, which turns them
    into a `CIMultiDict` once (and `raw` is None from then on); the edge writes whichever it has.
    """

    __slots__ = ("_headers", "body", "close", "raw", "status", "stream")

    def __init__(
        self,
        status: int,
        headers: CIMultiDict[str] | None,
        body: bytes,
        close: bool = False,
        stream: BodyStream | None = None,
        raw: RawHeaders | None = None,
    ) -> None:
        self.status = status
        self._headers = headers
        self.raw = raw if headers is None else None
        """The headers as the upstream sent them, while nobody has read `headers`."""
        self.body = body
        self.close = close
        """Close the client connection after this reply (framing errors: nothing after them can be
        trusted)."""
        self.stream = stream
        """When set, the body comes from this stream (and `body` is empty): the edge sends it as it arrives.
        `headers` then has `Content-Length` when the upstream announced one; without it the length is
        unknown."""

    @property
    def headers(self) -> CIMultiDict[str]:
        """The answer's headers, to read or change."""
        headers = self._headers
        if headers is None:
            raw = self.raw
            headers = self._headers = CIMultiDict() if raw is None else raw.multidict()
            self.raw = None
        return headers

    @headers.setter
    def headers(self, value: CIMultiDict[str]) -> None:
        self._headers = value
        self.raw = None

    def content_type(self) -> str:
        """The Content-Type ("" when absent), without turning raw headers into a mapping."""
        raw = self.raw
        return raw.content_type if raw is not None else self.headers.get("Content-Type", "")
