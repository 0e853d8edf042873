"""Tests' `dataclasses.replace` for `proxy.dataplane.exchange.Inbound` (a plain class, read-only)."""

from __future__ import annotations

from typing import Any

from proxy.dataplane.exchange import Inbound
from proxy.dataplane.request_headers import RequestHeaders

FIELDS = ("method", "path", "headers", "body", "peer", "received_at", "received_mono", "request_id")
"""Inbound's constructor arguments, in order (a compiled class has no `__slots__` to read them from)."""


def changed(inbound: Inbound, **changes: Any) -> Inbound:
    """`inbound` with `changes` (its constructor's argument names)."""
    fields = {name: getattr(inbound, name) for name in FIELDS}
    unknown = set(changes) - set(fields)
    if unknown:
        raise TypeError(f"Inbound has no {sorted(unknown)}")
    return Inbound(**{**fields, **changes})


def request_headers(values: dict[str, str]) -> RequestHeaders:
    """The native plane's headers of a request that sent `values`."""
    pairs = [(name.encode(), value.encode()) for name, value in values.items()]
    return RequestHeaders(pairs, [name.lower() for name, _ in pairs])
