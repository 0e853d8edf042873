"""Where a runner actually listens.

Usage: address = bound(runner)  # "127.0.0.1:8080" (port 0 resolved), "[::1]:8080"; hostport(host, port)
"""

from __future__ import annotations

from aiohttp import web


def bound(runner: web.AppRunner) -> str:
    """HOST:PORT actually bound by the runner's first socket (port 0 resolved)."""
    for address in runner.addresses:
        host, port = address[:2]
        return hostport(host, port)
    raise RuntimeError("runner has no bound socket")


def hostport(host: str, port: int) -> str:
    """`HOST:PORT`, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
