"""Run an aiohttp application on HOST:PORT until SIGTERM or SIGINT, announcing the bound address.

Usage: await serve(app, "127.0.0.1", 0, service="modelserver", model="digits")
"""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from modelserver.log import log_event

SHUTDOWN_TIMEOUT_S = 10.0
"""How long in-flight requests may take to finish once a stop signal arrives."""


def format_address(sockname: tuple[object, ...]) -> str:
    """HOST:PORT of a bound socket name, with IPv6 hosts in brackets so the result fits into a URL."""
    host, port = str(sockname[0]), sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(app: web.Application, host: str, port: int, *, service: str, **ready_fields: object) -> None:
    """Serve `app` until a stop signal, then drain and clean up; logs `listening` once bound."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        address = format_address(runner.addresses[0])
        log_event("listening", service=service, address=address, **ready_fields)
        await stop.wait()
        log_event("stopping", service=service)
    finally:
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log_event("stopped", service=service)
