"""What the data app's lifecycle steps put in force, under typed keys (aiohttp `AppKey`s) rather than as
optional attributes: present once the step that makes it has run, absent (`app.get` → None) otherwise — a
supervisor has no sink, a process without `--grpc-listen` no gRPC port.

Usage: app[SINK] = sink (proxy.runtime.server._outcomes); request.app[WIRING].traffic
"""

from __future__ import annotations

from aiohttp import web

from experiments.sink import OutcomeSink
from proxy.runtime.wiring import Wiring

SINK = web.AppKey("sink", OutcomeSink)
"""The outcome sink of this process (every process that serves the data port)."""
WIRING = web.AppKey("wiring", Wiring)
"""The request path: chains, edges, shadow dispatcher, gRPC port (opened; closed after the data port)."""
