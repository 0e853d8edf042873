"""The native data plane: the data port served at protocol level on uvloop with httptools' parser
(`server.dataPlane: native`), running the same filter chain as the aiohttp plane (proxy.dataplane.edge).

Usage:
    plane = DataPlane(traffic, feedback, metrics, PlaneLimits(...), TrustedProxies(cidrs))
    await plane.start(host, port); ...; await plane.shutdown(timeout)

Modules: `plane` (listener, caps, drain), `connection` (the protocol: queue, flow control, deadlines),
`reader` (parser callbacks, limits as bytes arrive), `head` (head checks and headers), `body` (bodies read
after routing, paces, the `body` stage), `serve` (chain and answer), `respond` (answer headers), `limits`,
`ids`, `request`. docs/dataplane.md has the design and the measurements.
"""

from __future__ import annotations


def missing() -> str | None:
    """Why the native data plane cannot run here (httptools is not importable), or None."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "the native data plane needs httptools (pip install httptools) or server.dataPlane: aiohttp"
    return None
