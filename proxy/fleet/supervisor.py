"""`outrider run --workers N`: one supervisor, N worker processes serving one data port (docs/scale-out.md).

Usage: exit_code = proxy.runtime.loop.run(supervise(settings, argv))   # argv: the supervisor's own `run ...`
args
The supervisor reserves HOST:PORT (proxy.fleet.port), is the control side of the host — the leader lock,
the controllers, the state keeper, webhook and reports, the one admin port, whose /metrics sums the workers'
(proxy.fleet.fleet_metrics) — and starts the workers: `outrider run` with the same arguments and
`--listen HOST:PORT --admin 127.0.0.1:0 --worker-of PID --worker-index I`. It logs `listening` (address: the
data port, admin: its admin port, workers: N) once every worker listens. SIGTERM/SIGINT: readiness off,
forwarded to the workers, which drain and flush; a second one is forwarded too (they end their drain delay).
SIGHUP: the files are re-read here and in every worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from proxy.fleet.fleet_metrics import FleetMetrics
from proxy.fleet.port import reserve
from proxy.fleet.workers import WorkerFailed, Workers, WorkersCollector
from proxy.runtime.outcome_sink import FLUSH_TIMEOUT_S
from proxy.runtime.ports import bound, hostport
from proxy.runtime.server import Sidecar
from proxy.runtime.startup import start_problems
from proxy.settings import Settings
from proxy.telemetry.logs import event


class Supervisor:
    """The control side of a host and its workers."""

    def __init__(self, settings: Settings, argv: Sequence[str], address: str) -> None:
        self.settings, self.argv, self.address = settings, list(argv), address
        self.workers = Workers(settings.conf.workers, self.command, on_lost=self._lost)
        self.fleet = FleetMetrics(self.workers.targets)
        self.fleet.registry.register(WorkersCollector(self.workers))
        self.sidecar = Sidecar(settings, fleet=self.fleet)

    def command(self, index: int) -> list[str]:
        """The command line of worker `index`: the supervisor's own arguments, then the worker's."""
        own = ("--listen", self.address, "--admin", "127.0.0.1:0")
        link = ("--worker-of", str(os.getpid()), "--worker-index", str(index))
        return [sys.executable, "-m", "proxy.cli", *self.argv, *own, *link]

    def _lost(self, pid: int) -> None:
        self.fleet.lost(pid)

    @property
    def stop_timeout_s(self) -> float:
        """How long workers get to drain and flush after SIGTERM before they are killed."""
        drain = self.settings.conf.drain
        return drain.delay + drain.timeout + FLUSH_TIMEOUT_S + 5.0

    async def run(self) -> int:
        """Serve until SIGTERM or SIGINT; the exit code (1 if a worker could not start)."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_stop_signal() -> None:
            if stop.is_set():
                self.workers.signal(signal.SIGTERM)  # a second one: the workers end their drain delay
            stop.set()

        def on_hup() -> None:
            self.sidecar.reload_requested()
            self.workers.signal(signal.SIGHUP)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_stop_signal)
        loop.add_signal_handler(signal.SIGHUP, on_hup)
        control = web.AppRunner(self.sidecar.data_app, handle_signals=False)  # the control side's lifecycle
        admin = web.AppRunner(self.sidecar.admin_app, access_log=None, handle_signals=False)
        await control.setup()
        await admin.setup()
        self.sidecar.tasks.spawn(self.fleet.run(stop), name="fleet-metrics")
        code = 0
        try:
            await self.workers.start()
            await web.TCPSite(admin, *self.settings.admin).start()
            self.sidecar.ready = True
            self.sidecar.log_listening(
                "listening", self.address, bound(admin), workers=self.settings.conf.workers
            )
            await stop.wait()
        except WorkerFailed as err:
            event("refusing to start", level=logging.ERROR, problem=str(err))
            code = 1
        finally:
            self.sidecar.ready = False
            event("stopping", service="outrider", workers=self.workers.serving)
            await self.workers.stop(self.stop_timeout_s)
            stop.set()  # ends the scrapes
            await admin.cleanup()
            await control.cleanup()  # the controllers stop, the state keeper closes, the lock is released
            await self.sidecar.tasks.drain(timeout=5.0)  # the scrapes and any report still being written
        event("stopped", service="outrider", workers_restarted=self.workers.restarts)
        return code


async def supervise(settings: Settings, argv: Sequence[str]) -> int:
    """Reserve the data port, then supervise the workers until SIGTERM; returns the exit code."""
    problems = start_problems(settings)
    if settings.conf.server.data_plane != "native":
        problems.append("workers > 1 need the native data plane (server.dataPlane: native)")
        event("refusing to start", level=logging.ERROR, problem=problems[-1])
    if problems:
        return 2
    host, port = settings.listen
    try:
        sock = await asyncio.to_thread(reserve, host, port)
    except OSError as err:
        event("refusing to start", level=logging.ERROR, problem=f"--listen {hostport(host, port)}: {err}")
        return 2
    try:
        address = hostport(host, sock.getsockname()[1])
        if settings.rate_limit is not None and settings.rate_limit.store == "memory":
            n = settings.conf.workers
            event(
                "rate limit per worker",
                level=logging.WARNING,
                detail=f"in memory, each of the {n} workers has its own budget: up to "
                f"{n}x the limit; a shared Redis store limits exactly (docs/scale-out.md)",
            )
        return await Supervisor(settings, argv, address).run()
    finally:
        sock.close()
