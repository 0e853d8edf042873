"""The worker processes of a supervisor: start them, know where they listen, restart one that exits.

Usage:
    workers = Workers(4, command=lambda i: [...], on_lost=fleet.lost)
    await workers.start()          # returns once every worker listens (WorkerFailed if one cannot start)
    workers.targets()              # {pid: admin HOST:PORT} of the workers serving now
    workers.signal(signal.SIGHUP)  # forwarded to every worker
    await workers.stop(timeout)    # SIGTERM, wait (they drain and flush), SIGKILL what is left
A worker says where it listens in one line on its stdout (proxy.fleet.worker); its log lines go to the
supervisor's stderr. A worker that exits while the supervisor is not stopping is started again after a
back-off (0.5 s, doubling to 10 s; back to 0.5 s after a worker ran 30 s), counted in `restarts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from proxy.fleet.worker import announcement
from proxy.runtime.tasks import TaskGroup
from proxy.telemetry.logs import event

BACKOFF_S = (0.5, 10.0)
"""Shortest and longest wait before a worker is started again."""
STABLE_S = 30.0
"""A worker that ran this long is started again after the shortest wait."""
READY_TIMEOUT_S = 30.0


class WorkerFailed(Exception):
    """A worker exited (or stayed silent) before it listened, at start-up."""


@dataclass
class Slot:
    """One worker position: the process in it now, once it listens."""

    index: int
    proc: asyncio.subprocess.Process | None = None
    pid: int | None = None
    admin: str | None = None
    """Its private admin port, HOST:PORT (set while it serves)."""


class Workers:
    """Owns the worker processes."""

    def __init__(
        self, count: int, command: Callable[[int], list[str]], on_lost: Callable[[int], None]
    ) -> None:
        self.slots = [Slot(i) for i in range(count)]
        self.command, self.on_lost = command, on_lost
        self.restarts = 0
        self.tasks = TaskGroup()
        self._running: list[asyncio.Task[Any]] = []
        self._stopping = asyncio.Event()

    def targets(self) -> dict[int, str]:
        """{pid: admin HOST:PORT} of every worker serving now."""
        return {s.pid: s.admin for s in self.slots if s.pid is not None and s.admin is not None}

    @property
    def serving(self) -> int:
        """Workers listening now."""
        return sum(1 for s in self.slots if s.pid is not None)

    async def start(self) -> None:
        """Start every worker; return once all listen (WorkerFailed if one exits or is silent first)."""
        loop = asyncio.get_running_loop()
        firsts: list[asyncio.Future[None]] = [loop.create_future() for _ in self.slots]
        for slot, first in zip(self.slots, firsts, strict=True):
            self._running.append(self.tasks.spawn(self._keep(slot, first), name=f"worker:{slot.index}"))
        failed = [r for r in await asyncio.gather(*firsts, return_exceptions=True) if r is not None]
        if failed:
            raise failed[0]

    async def _keep(self, slot: Slot, first: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        backoff = BACKOFF_S[0]
        while not self._stopping.is_set():
            began = loop.time()
            code = await self._run(slot, first)
            if not first.done():
                first.set_exception(WorkerFailed(f"worker {slot.index} exited with {code} before listening"))
                return
            if self._stopping.is_set():
                return
            self.restarts += 1
            wait = BACKOFF_S[0] if loop.time() - began >= STABLE_S else backoff
            backoff = min(wait * 2, BACKOFF_S[1])
            event("worker exited", level=logging.WARNING, worker=slot.index, code=code, restart_in_s=wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait)

    async def _run(self, slot: Slot, first: asyncio.Future[None]) -> int:
        """One process in `slot`, from start to exit; returns its exit code."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command(slot.index),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                start_new_session=True,  # a terminal's Ctrl-C reaches the supervisor only, which forwards it
            )
        except OSError as err:  # could not even be started (fork failed): as if it had exited at once
            event("worker not started", level=logging.ERROR, worker=slot.index, error=str(err))
            return -1
        slot.proc = proc
        try:
            assert proc.stdout is not None
            try:
                ready = await asyncio.wait_for(self._announced(proc.stdout), READY_TIMEOUT_S)
            except TimeoutError:
                ready = None
            if ready is not None:
                slot.pid, slot.admin = proc.pid, str(ready["admin"])
                event("worker started", worker=slot.index, pid=proc.pid, admin=slot.admin)
                if not first.done():
                    first.set_result(None)
                while await proc.stdout.read(65536):  # the worker closes it once it announced
                    pass
            elif proc.returncode is None:
                proc.kill()  # silent for too long
            return await proc.wait()
        finally:
            if proc.returncode is None:  # cancelled: never leave a worker behind
                proc.kill()
            pid, slot.proc, slot.pid, slot.admin = slot.pid, None, None, None
            if pid is not None:
                self.on_lost(pid)

    @staticmethod
    async def _announced(stdout: asyncio.StreamReader) -> dict[str, Any] | None:
        while line := await stdout.readline():
            found = announcement(line)
            if found is not None:
                return found
        return None

    def signal(self, sig: int) -> None:
        """Send `sig` to every worker process alive."""
        for slot in self.slots:
            if slot.proc is not None and slot.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(sig)

    async def stop(self, timeout: float) -> None:
        """SIGTERM every worker and wait up to `timeout` for them to drain and exit; SIGKILL what is left."""
        self._stopping.set()
        self.signal(signal.SIGTERM)
        running = [task for task in self._running if not task.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=timeout)
            if late:
                self.signal(signal.SIGKILL)
        await self.tasks.drain(timeout=5.0)


class WorkersCollector(Collector):
    """`outrider_workers` (serving now) and `outrider_worker_restarts_total`, read at scrape time."""

    def __init__(self, workers: Workers) -> None:
        self.workers = workers

    def collect(self) -> Iterator[Any]:
        """Yield both families."""
        serving = GaugeMetricFamily("outrider_workers", "Worker processes listening on the data port")
        serving.add_metric([], float(self.workers.serving))
        restarts = CounterMetricFamily(
            "outrider_worker_restarts",
            "Workers started again after exiting while the supervisor was not stopping",
        )
        restarts.add_metric([], float(self.workers.restarts))
        yield from (serving, restarts)
