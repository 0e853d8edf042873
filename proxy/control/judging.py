"""The controllers of one sidecar: one per judged experiment, their last looks, and what a decision or the
end of an experiment sets off (the decisions counter, the webhook, the report files).

Usage: `judging = Judging(settings.data_dir, router, metrics, tasks, webhook)`; add `judging.lifecycle` to the
data app's cleanup_ctx after the outcome sink and the state keeper exist (`judging.attach(sink, keeper)`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from analysis.checkpoint import Checkpoints
from analysis.controller import Controller
from analysis.verdict import ACTIONS, Decision
from experiments.model import Experiment, ShadowOnlyStrategy
from experiments.outcome import OutcomeRecord
from experiments.state import ExperimentState
from experiments.stores import is_redis, open_outcomes
from proxy.control.router import Router
from proxy.control.statekeeper import StateKeeper
from proxy.control.webhook import Webhook, decision_event
from proxy.runtime.tasks import TaskGroup
from proxy.telemetry.logs import event
from proxy.telemetry.metrics import Metrics


class DropCounts(Protocol):
    """Where the outcomes dropped per variant are counted: this process's sink, a supervisor's view of its
    workers' (proxy.fleet.fleet_metrics), or a Redis fleet's sum (proxy.fleet.drops)."""

    def drops_for(self, experiment: str) -> dict[str, int]:
        """Dropped outcome records of `experiment` per variant."""
        ...


def judged_experiments(router: Router) -> list[Experiment]:
    """Experiments with an analysis and a candidate (a judge compares a candidate with stable), and
    shadow-only experiments (their shadows' verdict is the result)."""
    return [
        lv.experiment
        for lv in router.all()
        if isinstance(lv.experiment.strategy, ShadowOnlyStrategy)
        or (lv.experiment.analysis is not None and any(v.role == "candidate" for v in lv.experiment.variants))
    ]


class Judging:
    """Owns the controllers; `analysis_of` serves the admin API and the metrics."""

    def __init__(
        self,
        data_dir: Path,
        router: Router,
        metrics: Metrics,
        tasks: TaskGroup,
        webhook: Webhook | None,
        store: str = "sqlite",
    ) -> None:
        self.data_dir, self.store = data_dir, store
        self.router = router
        self.metrics = metrics
        self.tasks = tasks
        self.webhook = webhook
        self.controllers: dict[str, Controller] = {}
        self.sink: DropCounts | None = None
        self.keeper: StateKeeper | None = None
        self.checkpoints: Checkpoints | None = None
        self.durable_drops = False

    def attach(
        self,
        sink: DropCounts,
        keeper: StateKeeper,
        checkpoints: Checkpoints | None = None,
        *,
        durable_drops: bool = False,
    ) -> None:
        """Where drops are counted, the keeper the controllers write and where they keep checkpoints (they
        exist once the data app started, or once this replica leads). `durable_drops`: the counts outlive
        processes (a Redis fleet's), so the controllers do not add the ones persisted in the state again."""
        self.sink, self.keeper, self.checkpoints = sink, keeper, checkpoints
        self.durable_drops = durable_drops

    async def lifecycle(self, _: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: start a controller per judged experiment; stop them all on shutdown."""
        judged = judged_experiments(self.router)
        if not judged:
            yield
            return
        from analysis.comparisons import judge_for  # numpy/scipy load only when something is judged

        assert self.sink is not None
        assert self.keeper is not None
        reader = await asyncio.to_thread(open_outcomes, self.store, self.data_dir)
        stop = asyncio.Event()
        tasks = TaskGroup()
        for exp in judged:
            ctl = Controller(
                exp,
                reader,
                self.keeper,
                judge_for,
                drops=partial(self.sink.drops_for, exp.name),
                durable_drops=self.durable_drops,
                on_decision=partial(self._decided, exp.name),
                on_finish=partial(self._finished, exp),
                history_until=await asyncio.to_thread(reader.max_seq, exp.name),
                checkpoints=self.checkpoints,
            )
            self.controllers[exp.name] = ctl
            for kind in sorted(ACTIONS):  # at 0 from the start, so increase() sees the first decision
                self.metrics.decisions.labels(exp.name, kind)
            tasks.spawn(ctl.run(stop), name=f"controller:{exp.name}")
        yield
        stop.set()
        await tasks.drain(timeout=5.0)
        await asyncio.to_thread(reader.close)

    def _stored(self, experiment: Experiment) -> tuple[list[OutcomeRecord], dict[str, int]] | None:
        """The records of a finished experiment when they are not in the data dir (blocking)."""
        if not is_redis(self.store):
            return None
        import orjson

        reader = open_outcomes(self.store, self.data_dir)
        try:
            records = [OutcomeRecord.from_dict(orjson.loads(r)) for r in reader.iter_raw(experiment.name)]
            return records, reader.feedback_counts(experiment.name)
        finally:
            reader.close()

    def analysis_of(self, name: str) -> dict[str, Any] | None:
        """The controller's last look at `name` (None before the first look or without analysis)."""
        ctl = self.controllers.get(name)
        look = ctl.looker.last_look if ctl is not None else None
        if look is None:
            return None
        # estimates and intervals are refreshed once a second (analysis.verdict.Looker.detail_every_s):
        # `snapshot.detail_records` says at which record count they were computed
        return {
            "kind": look.kind,
            "reasons": look.reasons,
            "records": look.records,
            "candidate_requests": look.candidate_requests,
            "step": look.step,
            "snapshot": look.snapshot,
        }

    def _decided(self, name: str, decision: Decision) -> None:
        self.metrics.decisions.labels(name, decision.kind).inc()
        if self.webhook is not None:
            change = self.controllers[name].looker.transition(decision)
            self.webhook.offer(
                decision_event(self.router.get(name).experiment, decision, change, time.time())
            )

    def _finished(self, experiment: Experiment, state: ExperimentState, snapshot: dict[str, Any]) -> None:
        assert self.sink is not None
        drops = self.sink.drops_for(experiment.name)
        out = self.data_dir / "reports" / experiment.name

        def write() -> None:  # in a thread: it reads the store, replays it for the plots, writes files
            from analysis.comparisons import judge_for  # loaded already by the controllers
            from analysis.offline import live_report

            live_report(
                self.data_dir, experiment, state, snapshot, drops, judge_for, self._stored(experiment)
            )

        self.tasks.spawn(asyncio.to_thread(write), name=f"report:{experiment.name}")
        event(
            "experiment finished",
            experiment=experiment.name,
            phase=state.phase,
            report=str(out / "report.md"),
        )
