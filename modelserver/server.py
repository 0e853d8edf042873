"""Run an aiohttp application on HOST:PORT (and optionally a gRPC server beside it) until SIGTERM or SIGINT,
announcing the bound addresses.

Usage: await serve(app, "127.0.0.1", 0, service="modelserver", model="digits")
       await serve(app, host, 0, service=..., grpc=GrpcPort(0, handler_of_app))   # logs "grpc": "HOST:PORT"
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from aiohttp import web

from modelserver.log import log_event

SHUTDOWN_TIMEOUT_S = 10.0
"""How long in-flight requests may take to finish once a stop signal arrives."""


@dataclass(frozen=True, slots=True)
class GrpcPort:
    """A gRPC port to serve beside the app: its number (0: any free one) and its handler, built from the
    started app (so it can share the app's resources, e.g. its inference pool)."""

    port: int
    handler: Callable[[web.Application], grpc.GenericRpcHandler]


def format_address(sockname: tuple[object, ...]) -> str:
    """HOST:PORT of a bound socket name, with IPv6 hosts in brackets so the result fits into a URL."""
    host, port = str(sockname[0]), sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    service: str,
    grpc_port: GrpcPort | None = None,
    **ready_fields: object,
) -> None:
    """Serve `app` until a stop signal, then drain and clean up; logs `listening` once bound."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    rpc: grpc.aio.Server | None = None
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        address = format_address(runner.addresses[0])
        if grpc_port is not None:
            rpc = grpc.aio.server()
            rpc.add_generic_rpc_handlers((grpc_port.handler(app),))
            bound = rpc.add_insecure_port(
                f"[{host}]:{grpc_port.port}" if ":" in host else f"{host}:{grpc_port.port}"
            )
            await rpc.start()
            ready_fields["grpc"] = format_address((host, bound))
        log_event("listening", service=service, address=address, **ready_fields)
        await stop.wait()
        log_event("stopping", service=service)
    finally:
        if rpc is not None:
            await rpc.stop(SHUTDOWN_TIMEOUT_S)
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log_event("stopped", service=service)
