"""What the native data plane enforces, and the shared counters behind it: open connections (in total and per
client) and the request-body bytes held in memory across all connections.

Usage: admission = Admission(PlaneLimits(max_connections=4096)); admission.body.take(len(chunk))
Per-client slots key on the peer address when connections come straight from clients; when the peer is a
trusted proxy (proxy.dataplane.client_ip) its connections carry many clients, so a slot is taken per
in-flight request
by the client its X-Forwarded-For resolves to, and given back when that request ends.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

MAX_HEADERS = 100  # docs/reliability.md safe defaults: 100 headers, request line and each header ≤ 8 KiB
MAX_LINE_BYTES = 8192
MAX_HEAD_BYTES = (MAX_HEADERS + 1) * (MAX_LINE_BYTES + 2) + 2
"""The largest header block the line limits allow: an unterminated line cannot grow past it either."""


@dataclass(frozen=True, slots=True)
class PlaneLimits:
    """Every limit of the native data plane (settings: `limits.*`, docs/settings.md)."""

    header_timeout_s: float = 10.0
    """From a request's first byte (or the connection's opening) to its last header byte."""
    keepalive_s: float = 75.0
    """An idle keep-alive connection is closed after this long."""
    max_connections: int = 4096
    max_connections_per_client: int = 256
    max_body_bytes: int = 10 * 1024 * 1024
    """The sidecar's body cap; a route's `spec.maxBodyBytes` may set less (applied by the body stage)."""
    body_timeout_s: float = 60.0
    """A body must be complete this long after its reading started, however fast it began."""
    body_min_rate: int = 1024
    """Bytes per second: both the running average (after `header_timeout_s` of grace) and each window."""
    body_rate_window_s: float = 10.0
    """The window over which `body_min_rate` is checked, sliding by a quarter of it."""
    max_buffered_body_bytes: int = 128 * 1024 * 1024
    """Request-body bytes held in memory across all connections; beyond, 503."""

    def __post_init__(self) -> None:
        positive = (
            self.header_timeout_s,
            self.keepalive_s,
            self.body_timeout_s,
            self.body_rate_window_s,
            self.max_connections,
            self.max_connections_per_client,
            self.max_body_bytes,
            self.body_min_rate,
            self.max_buffered_body_bytes,
        )
        if not all(math.isfinite(v) and v > 0 for v in positive):
            raise ValueError(f"every data plane limit must be a positive number, got {self}")


class BodyBudget:
    """Request-body bytes in memory across every connection, against one cap."""

    __slots__ = ("cap", "held", "refused")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.held = 0
        self.refused = 0
        """Bodies refused (503) because taking their next chunk would have gone over the cap."""

    def take(self, n: int) -> bool:
        """Reserve `n` bytes; False (and counted) when that would pass the cap."""
        if self.held + n > self.cap:
            self.refused += 1
            return False
        self.held += n
        return True

    def give(self, n: int) -> None:
        """Return `n` reserved bytes."""
        self.held -= n


class ClientSlots:
    """Connection slots per client address."""

    __slots__ = ("cap", "held", "refused")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.held: dict[str, int] = {}
        self.refused = 0

    def take(self, client: str) -> bool:
        """One more slot for `client`; False (and counted) when it holds `cap` already."""
        count = self.held.get(client, 0)
        if count >= self.cap:
            self.refused += 1
            return False
        self.held[client] = count + 1
        return True

    def give(self, client: str) -> None:
        """Return one of `client`'s slots."""
        count = self.held.get(client, 0) - 1
        if count > 0:
            self.held[client] = count
        else:
            self.held.pop(client, None)


class Admission:
    """The data plane's shared limits: one per process."""

    def __init__(self, limits: PlaneLimits) -> None:
        self.limits = limits
        self.body = BodyBudget(limits.max_buffered_body_bytes)
        self.clients = ClientSlots(limits.max_connections_per_client)


class AdmissionCollector(Collector):
    """The admission counters at scrape time (nothing is counted through prometheus on the hot path)."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission

    def collect(self) -> Iterator[Any]:
        """Yield the body-budget and per-client families."""
        a = self.admission
        held = GaugeMetricFamily("outrider_body_buffered_bytes", "Request-body bytes held in memory")
        held.add_metric([], float(a.body.held))
        refused = CounterMetricFamily(
            "outrider_body_buffer_refused", "Requests refused with 503: the request bodies in memory at cap"
        )
        refused.add_metric([], float(a.body.refused))
        per_client = CounterMetricFamily(
            "outrider_client_connections_refused",
            "Connections (or requests via a trusted proxy) refused: their client held its share of slots",
        )
        per_client.add_metric([], float(a.clients.refused))
        yield from (held, refused, per_client)
