"""Re-read the experiment files on SIGHUP and when they change; keep the last good set if the new one is bad.

A reload is all or nothing: every file must validate and no running experiment may change what its
statistics depend on (proxy.control.reload_diff), else nothing changes, `outrider_config_reloads_total{result=
"rejected"}` counts it and each problem is logged as FILE:LINE:COL. Files are read in a worker thread;
the new routing is swapped in one assignment per experiment, so requests never see a half-applied config.
Usage: `reloader = Reloader(files, router, registry, interval_s=2.0)`; spawn `reloader.run()`;
`reloader.request()` from the SIGHUP handler; `reloader.close()` on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from experiments.config import ConfigError, ConfigProblem, load_experiments
from experiments.model import Experiment
from proxy.control.reload_diff import frozen_changes
from proxy.control.router import Router
from proxy.telemetry.logs import event

Fingerprint = tuple[tuple[int, int, int], ...]
RESULTS = ("applied", "unchanged", "rejected")


def fingerprints(files: list[str]) -> Fingerprint:
    """(inode, size, mtime_ns) of each file; (0, 0, 0) for one that cannot be read right now."""
    out = []
    for name in files:
        try:
            st = os.stat(name)
        except OSError:
            out.append((0, 0, 0))
        else:
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Checked:
    """The result of checking the files against the running experiments."""

    changed: list[Experiment]
    problems: list[ConfigProblem]


def check(files: list[str], running: dict[str, Experiment]) -> Checked:
    """Load `files` and compare them with `running` (blocking: call it in a thread)."""
    try:
        loaded = load_experiments(files)
    except ConfigError as err:
        return Checked([], err.problems)
    problems = []
    names = {exp.name for exp in loaded}
    for exp in loaded:
        old = running.get(exp.name)
        if old is None:
            message = f"experiment {exp.name!r} is new: adding experiments needs a restart"
            problems.append(ConfigProblem(exp.source, 1, 1, "metadata.name", message))
        else:
            problems += frozen_changes(old, exp, Path(exp.source).read_text())
    for name in sorted(set(running) - names):
        message = f"experiment {name!r} is no longer in any file: removing experiments needs a restart"
        problems.append(ConfigProblem(running[name].source, 1, 1, "metadata.name", message))
    changed = [exp for exp in loaded if exp.name in running and exp != running[exp.name]]
    return Checked(changed, problems)


class Reloader:
    """Owns the reload loop of one sidecar."""

    def __init__(
        self, files: list[str], router: Router, registry: CollectorRegistry, interval_s: float
    ) -> None:
        self.files = list(files)
        self.router = router
        self.interval_s = interval_s
        self.reloads = Counter(
            "outrider_config_reloads", "Experiment file reloads by result", ["result"], registry=registry
        )
        for result in RESULTS:
            self.reloads.labels(result)
        self._wake = asyncio.Event()
        self._closed = False

    def request(self) -> None:
        """Reload at once (SIGHUP)."""
        self._wake.set()

    def close(self) -> None:
        """Stop the loop after the current check."""
        self._closed = True
        self._wake.set()

    async def run(self) -> None:
        """Check the files every `interval_s` (or only when asked, if 0) until closed."""
        seen = await asyncio.to_thread(fingerprints, self.files)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s or None)
            if self._closed:
                return
            asked, now = self._wake.is_set(), await asyncio.to_thread(fingerprints, self.files)
            self._wake.clear()
            if asked or now != seen:
                seen = now
                await self.reload()

    async def reload(self) -> str:
        """Check and apply the files once; returns "applied", "unchanged" or "rejected"."""
        running = {live.experiment.name: live.experiment for live in self.router.all()}
        checked = await asyncio.to_thread(check, self.files, running)
        if checked.problems:
            for problem in checked.problems:
                event("config rejected", level=logging.WARNING, problem=str(problem))
            result = "rejected"
        else:
            for exp in checked.changed:
                self.router.replace(exp)
            result = "applied" if checked.changed else "unchanged"
            event("config reloaded", result=result, experiments=[e.name for e in checked.changed])
        self.reloads.labels(result).inc()
        return result
