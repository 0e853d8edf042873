"""The single writer of experiment states: the controller and the admin API both change states through it.

Usage: keeper = StateKeeper(router, store); await keeper.restore(); await keeper.change(name, "promoted", ...)
Every change is persisted (in a worker thread) before it is put in force, so a restart resumes where the
experiment was. Weights are always recomputed from the current config, so an edited file cannot leave a
stale split behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from experiments.model import CanaryStrategy, Experiment
from experiments.state import ExperimentState, Phase, planned_weights, transition
from experiments.stores import StateStore
from proxy.control.router import Router
from proxy.telemetry.logs import event

T = TypeVar("T")


def in_force(experiment: Experiment, stored: ExperimentState) -> ExperimentState:
    """A stored state as the current config puts it in force: the step bounded by the config's steps and
    the weights recomputed from it (an edited file cannot leave a stale split behind)."""
    step = stored.step
    if isinstance(experiment.strategy, CanaryStrategy):
        step = min(step, len(experiment.strategy.steps) - 1)
    return replace(stored, step=step, weights=planned_weights(experiment, stored.phase, step))


class StateConflict(Exception):
    """A change that the state in force does not allow (e.g. promoting a rolled-back experiment)."""


class StateKeeper:
    """Serialises state changes per sidecar and persists them."""

    def __init__(self, router: Router, store: StateStore, clock: Callable[[], float] = time.time) -> None:
        self.router, self.store, self.clock = router, store, clock
        self._lock = asyncio.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-db")

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def restore(self) -> None:
        """Put each experiment's stored state in force (or store its initial state)."""
        for live in self.router.all():
            exp = live.experiment
            await self._db(self._keep_config, exp.name, exp.source)
            stored = await self._db(self.store.load, exp.name)
            if stored is None:
                await self._db(self.store.save, live.state)
                continue
            restored = in_force(exp, stored)
            self.router.force(restored)
            event(
                "state restored",
                experiment=exp.name,
                version=restored.version,
                phase=restored.phase,
                step=restored.step,
            )

    def current(self, name: str) -> ExperimentState:
        """The state in force."""
        return self.router.get(name).state

    def _keep_config(self, name: str, source: str) -> None:
        try:
            text = Path(source).read_text()
        except OSError:
            return  # not a file (tests build experiments in memory); reports then need -c
        self.store.save_config(name, source, text)

    async def change(
        self,
        name: str,
        phase: Phase,
        step: int,
        reason: str,
        *,
        extra: Mapping[str, object] | None = None,
        **details: object,
    ) -> ExperimentState:
        """Move experiment `name` to (`phase`, `step`), persist, apply; returns the new state."""
        return await self.change_if(name, phase, step, reason, None, extra=extra, **details)

    async def change_if(
        self,
        name: str,
        phase: Phase,
        step: int | None,
        reason: str,
        precondition: Callable[[ExperimentState], str | None] | None,
        *,
        extra: Mapping[str, object] | None = None,
        **details: object,
    ) -> ExperimentState:
        """`change`, if `precondition` (shown the state in force, under the lock) returns no objection;
        else StateConflict and nothing changes. `step` None keeps the current step."""
        async with self._lock:
            live = self.router.get(name)
            refused = precondition(live.state) if precondition is not None else None
            if refused is not None:
                raise StateConflict(refused)
            step = live.state.step if step is None else step
            new = transition(live.experiment, live.state, phase, step, self.clock(), reason, **details)
            if extra:
                new = replace(new, extra={**new.extra, **extra})
            await self._db(self.store.save, new)
            self.router.apply(new)
        event(
            "state changed",
            experiment=name,
            version=new.version,
            phase=phase,
            step=step,
            reason=reason,
            weights=dict(new.weights),
        )
        return new

    async def annotate(self, name: str, **extra: object) -> None:
        """Record controller bookkeeping in the state without a new version of the weights."""
        async with self._lock:
            live = self.router.get(name)
            state = replace(live.state, version=live.state.version + 1, extra={**live.state.extra, **extra})
            await self._db(self.store.save, state)
            self.router.apply(state)

    def stop(self) -> None:
        """Stop the worker thread (the store stays open: a replica that stepped down keeps it)."""
        self._worker.shutdown(wait=True)

    def close(self) -> None:
        """Stop the worker thread and close the store."""
        self.stop()
        self.store.close()
