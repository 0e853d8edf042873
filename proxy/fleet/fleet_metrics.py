"""The host's metrics under `outrider run --workers N`: the supervisor's own registry plus every worker's.

Usage:
    fleet = FleetMetrics(workers.targets)   # {pid: admin HOST:PORT} of the workers serving now
    await fleet.refresh(); fleet.render()   # the admin port's /metrics (refresh scrapes every worker)
    fleet.lost(pid)                         # a worker exited: its last values are kept as retired
The supervisor is a `Metrics` whose registry holds what only it knows (decisions, live state, webhook,
workers); the workers' families are summed into it, except those the supervisor owns (`SUPERVISOR_ONLY`).
Scrapes run one at a time, so each worker's values only move forward; a worker's last values are kept
after it is gone, so no counter of the host goes backwards when a worker is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping

import aiohttp
from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric

from plumbing.http_client import http_session
from proxy.fleet.metrics_merge import Snapshot, add, parse, render, retired_part
from proxy.fleet.worker import DROPS_BY_VARIANT
from proxy.telemetry.metrics import Metrics

SCRAPE_EVERY_S = 1.0
"""Between background scrapes: the controllers' drop counts and the retired values are this fresh."""
SCRAPE_TIMEOUT_S = 2.0
SUPERVISOR_ONLY = frozenset(
    {
        # the experiments' live state and the decisions: the supervisor's keeper and controllers own them
        "outrider_ready",
        "outrider_experiment_weight",
        "outrider_experiment_phase",
        "outrider_experiment_step",
        "outrider_srm_flagged",
        "outrider_shadow_agreement",
        "outrider_decisions",
        "outrider_decisions_created",
        "outrider_leader",
        # every process re-reads the same files: one count per reload, the supervisor's
        "outrider_config_reloads",
        "outrider_config_reloads_created",
        # facts of one process that do not add up
        "process_start_time_seconds",
        "process_max_fds",
    }
)


class FleetMetrics(Metrics):
    """The supervisor's metrics, with the workers' summed in."""

    def __init__(self, targets: Callable[[], Mapping[int, str]]) -> None:
        super().__init__()
        self.targets = targets
        self.last: dict[int, Snapshot] = {}
        """Each serving worker's last scrape, by pid."""
        self.retired: Snapshot = {}
        """What workers that are gone counted (their counters and histograms as last seen)."""
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def refresh(self) -> None:
        """Scrape every serving worker now (a worker that does not answer keeps its last values)."""
        async with self._lock:
            if self._closed:
                return
            if self._session is None:
                self._session = http_session(timeout_s=SCRAPE_TIMEOUT_S)
            targets = dict(self.targets())
            scraped = await asyncio.gather(*(self._scrape(pid, admin) for pid, admin in targets.items()))
            serving = self.targets()
            for pid, snapshot in scraped:
                if snapshot is not None and pid in serving:  # not for a worker that has gone meanwhile
                    self.last[pid] = snapshot

    async def _scrape(self, pid: int, admin: str) -> tuple[int, Snapshot | None]:
        assert self._session is not None
        try:
            async with self._session.get(f"http://{admin}/metrics") as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return pid, None
        return pid, await asyncio.to_thread(parse, text)

    def lost(self, pid: int) -> None:
        """Worker `pid` has exited: keep its last counters in the retired total."""
        last = self.last.pop(pid, None)
        if last is not None:
            add(self.retired, retired_part(last))

    def workers(self) -> Snapshot:
        """Every worker's families summed, the retired ones included."""
        total: Snapshot = {}
        for snapshot in (*self.last.values(), self.retired):
            add(total, snapshot, skip=SUPERVISOR_ONLY)
        return total

    def merged(self) -> Snapshot:
        """The host's families: the supervisor's own plus the workers'."""
        total = parse(generate_latest(self.registry).decode())
        add(total, self.workers())
        return total

    def render(self) -> bytes:
        """Prometheus text exposition of the host."""
        return render(self.merged())

    def request_families(self) -> Iterable[Metric]:
        """The host's `outrider_requests` family."""
        family = self.merged().get("outrider_requests")
        return [family.metric()] if family is not None else []

    def drops_for(self, experiment: str) -> dict[str, int]:
        """Outcomes the workers dropped, per variant of `experiment` (what the controllers' gate reads)."""
        family = self.workers().get(DROPS_BY_VARIANT)
        out: dict[str, int] = {}
        for (_, labels), value in family.samples.items() if family is not None else ():
            named = dict(labels)
            if named.get("experiment") == experiment:
                out[named["variant"]] = out.get(named["variant"], 0) + int(value)
        return out

    async def run(self, stop: asyncio.Event) -> None:
        """Scrape in the background until `stop` is set, then `close`."""
        try:
            while not stop.is_set():
                await self.refresh()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), SCRAPE_EVERY_S)
        finally:
            await self.close()

    async def close(self) -> None:
        """Scrape no more; close the HTTP session."""
        async with self._lock:
            self._closed = True
            if self._session is not None:
                await self._session.close()
                self._session = None
