"""Starting a sidecar process: refuse an unfit runtime, install the signal handlers, serve until SIGTERM.

Usage: exit_code = proxy.runtime.loop.run(serve(settings))  (`outrider run`; proxy.fleet's workers pass their
link)
"""

from __future__ import annotations

import asyncio
import logging
import signal

from proxy.dataplane import missing as native_missing
from proxy.fleet.worker import WorkerLink
from proxy.runtime.checks import runtime_facts, runtime_problems
from proxy.runtime.server import Sidecar
from proxy.settings import Settings
from proxy.telemetry.logs import event


def start_problems(settings: Settings) -> list[str]:
    """Why this runtime cannot serve these settings (each logged as `refusing to start`)."""
    problems = runtime_problems(runtime_facts())
    if settings.conf.server.data_plane == "native" and (why := native_missing()) is not None:
        problems.append(why)
    for problem in problems:
        event("refusing to start", level=logging.ERROR, problem=problem)
    return problems


async def serve(settings: Settings, worker: WorkerLink | None = None) -> int:
    """Run a sidecar (or a worker of a supervisor) until SIGTERM or SIGINT; returns the exit code (2 if the
    runtime is unfit, 1 if the supervisor of a worker is gone already)."""
    if worker is not None and not worker.bind():
        return 1
    if start_problems(settings):
        return 2
    stop, hurry = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_stop_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop_signal)
    sidecar = Sidecar(settings, worker=worker)
    loop.add_signal_handler(signal.SIGHUP, sidecar.reload_requested)
    await sidecar.serve(stop, hurry)
    return 0
