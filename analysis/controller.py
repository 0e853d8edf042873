"""The controller: reads new outcomes, feeds the judge in fixed blocks, decides, and changes the state.

Usage:
    ctl = Controller(experiment, source, states, judge_factory=Judge)
    tasks.spawn(ctl.run(stop), name=f"controller:{experiment.name}")

Looks happen at record counts in store order: every `LOOK_EVERY` records up to 10,000, then every ~1% of
the records seen (`analysis.verdict.look_gap`; the controller catches up every interval). Because the look
points depend only on the records, never on the clock, a replay of the export (`outrider analyze`) makes the
same decisions at the same records (estimates and intervals, which decide nothing, are refreshed at most once
a second live, and at every action). Heavy numpy work runs in a worker
thread, never on the event loop. After a restart the controller replays every stored outcome, so the e-values
continue where they were; with `checkpoints` (the Redis store) it instead loads the last checkpoint (positions
and its looker, saved every CHECKPOINT_EVERY_S and after every action) and reads on from there, deciding.
A decision at a record count the state's history shows acted on already (by a previous leader) is not acted
on again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from analysis.checkpoint import Checkpoints, Mark
from analysis.verdict import Decision, JudgeLike, Looker
from experiments.model import Experiment
from experiments.outcome import OutcomeRecord
from experiments.state import ExperimentState, Phase

log = logging.getLogger(__name__)
READ_PAGE = 20_000
DETAIL_EVERY_S = 1.0
CHECKPOINT_EVERY_S = 2.0
"""A controller with checkpoints saves one this often while it reads records (and after every action)."""
"""Estimates and bounds at most once a second (and at every action): screens read them, decisions do not."""


class OutcomeSource(Protocol):
    """Where the controller reads stored outcomes and rewards from (blocking; called in a worker thread)."""

    def read_after(self, experiment: str, after_seq: int, limit: int) -> list[tuple[int, OutcomeRecord]]:
        """Stored outcomes after `after_seq`, in store order."""
        ...

    def read_feedback(self, experiment: str, after_seq: int, limit: int) -> list[tuple[int, OutcomeRecord]]:
        """Timely rewards after `after_seq` (outcomes with `reward` set)."""
        ...


class StateWriter(Protocol):
    """The single writer of experiment states (proxy.control.statekeeper.StateKeeper)."""

    def current(self, name: str) -> ExperimentState:
        """The state in force."""
        ...

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
        """Persist and apply a new state."""
        ...

    async def annotate(self, name: str, **extra: object) -> None:
        """Record facts in the state (a new version, same weights)."""
        ...


@dataclass
class Progress:
    """What the controller has read so far (kept in memory; rebuilt by replay after a restart)."""

    outcome_seq: int = 0
    feedback_seq: int = 0
    shadow: dict[str, str] | None = None
    last: Decision | None = None


class Controller:
    """Runs the decision loop of one experiment."""

    def __init__(
        self,
        experiment: Experiment,
        source: OutcomeSource,
        states: StateWriter,
        judge_factory: Callable[[Experiment], JudgeLike],
        drops: Callable[[], Mapping[str, int]] = dict,
        on_decision: Callable[[Decision], None] = lambda d: None,
        on_finish: Callable[[ExperimentState, dict[str, Any]], None] = lambda s, snap: None,
        history_until: int = 0,
        checkpoints: Checkpoints | None = None,
        durable_drops: bool = False,
    ) -> None:
        self.experiment = experiment
        self.history_until = history_until
        """Outcomes stored before this process started (seq ≤ this) are replayed without deciding: those
        looks were taken by the previous process."""
        self.source, self.states = source, states
        self.looker = Looker(
            judge_factory(experiment),
            experiment,
            states.current(experiment.name),
            detail_every_s=DETAIL_EVERY_S,
        )
        self.drops, self.on_decision, self.on_finish = drops, on_decision, on_finish
        persisted = states.current(experiment.name).extra.get("dropped")
        self.drops_before: dict[str, int] = (
            {str(k): int(v) for k, v in persisted.items()} if isinstance(persisted, dict) else {}
        )
        """Outcomes dropped by earlier processes (persisted with the state, so the gate survives restarts)."""
        self.durable_drops = durable_drops
        """`drops` counts every process's drops, the earlier ones too (a Redis fleet's): the persisted counts
        are a floor, not an addition."""
        self.progress = Progress()
        self.checkpoints = checkpoints
        self._unacted: list[Decision] = []
        """Decisions taken by the looker and not yet written (their write failed): retried first."""
        self._saved: tuple[Mark, float] | None = None
        """The last checkpoint saved (or loaded) and when (loop time)."""
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="controller")

    @property
    def interval(self) -> float:
        """Seconds between catch-ups."""
        return self.experiment.analysis.interval_s if self.experiment.analysis else 1.0

    async def run(self, stop: asyncio.Event) -> None:
        """Catch up every interval until `stop` is set or the experiment has finished."""
        try:
            if self.checkpoints is not None:
                try:
                    await asyncio.get_running_loop().run_in_executor(self._worker, self._restore)
                except Exception as err:  # the store away at takeover: replay the stream instead
                    log.warning(
                        "%s: no checkpoint read (%r): replaying the stream", self.experiment.name, err
                    )
                    self.history_until = 0
            failing = False
            while not stop.is_set():
                try:
                    if await self.tick():
                        return
                    failing = False
                except Exception as err:  # the store away (Redis), a refused write: try again next interval
                    if not failing:
                        log.warning("controller of %s: tick failed (%r); retrying", self.experiment.name, err)
                    failing = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
        finally:
            self._worker.shutdown(wait=False, cancel_futures=True)

    async def tick(self) -> bool:
        """One catch-up: read, look, act. True once the experiment has finished (and was reported)."""
        loop = asyncio.get_running_loop()
        state = self.states.current(self.experiment.name)
        finished = state.phase in ("promoted", "rolled_back")
        drops = self.total_drops()
        if drops and drops != state.extra.get("dropped"):
            await self.states.annotate(self.experiment.name, dropped=drops)
        self._unacted += await loop.run_in_executor(self._worker, self._read, drops, not finished)
        decisions = list(self._unacted)
        latched = self.looker.judge.latched()
        if latched and latched != state.extra.get("srm_latched") and not finished:
            await self.states.annotate(self.experiment.name, srm_latched=latched)
        verdicts = await loop.run_in_executor(self._worker, self.looker.shadow_verdicts)
        if verdicts and verdicts != self.progress.shadow and not finished:
            self.progress.shadow = verdicts
            await self.states.annotate(self.experiment.name, shadow_verdicts=verdicts)
        while self._unacted:  # a decision whose write failed (the store away) is retried at the next tick
            state = await self._act(self._unacted[0])
            self._unacted.pop(0)
        await self._checkpoint(force=bool(decisions))
        if state.phase in ("promoted", "rolled_back"):
            snapshot = await loop.run_in_executor(self._worker, self.looker.snapshot)
            self.on_finish(state, snapshot)
            return True
        return False

    def total_drops(self) -> dict[str, int]:
        """Dropped outcomes per variant: earlier processes' plus this one's (durable counts: the larger)."""
        now = dict(self.drops())
        names = set(now) | set(self.drops_before)
        before, durable = self.drops_before, self.durable_drops
        return {
            v: max(before.get(v, 0), int(now.get(v, 0))) if durable else before.get(v, 0) + int(now.get(v, 0))
            for v in sorted(names)
        }

    def _read(self, drops: dict[str, int], decide: bool) -> list[Decision]:
        name = self.experiment.name
        decisions: list[Decision] = []
        # Feedback first: a reward stored before the outcome at which it matures is then always seen in time.
        while rewards := self.source.read_feedback(name, self.progress.feedback_seq, READ_PAGE):
            self.progress.feedback_seq = rewards[-1][0]
            self.looker.feed_rewards([r for _, r in rewards])
        while rows := self.source.read_after(name, self.progress.outcome_seq, READ_PAGE):
            self.progress.outcome_seq = rows[-1][0]
            old = [r for seq, r in rows if seq <= self.history_until]
            new = [r for seq, r in rows if seq > self.history_until]
            self.looker.feed(old, drops, decide=False)
            decisions += self.looker.feed(new, drops, decide=decide)
        return decisions

    def _restore(self) -> None:
        assert self.checkpoints is not None
        restored = self.checkpoints.load(self.experiment.name, self.experiment)
        if restored is None:  # none yet, or not usable: the stream is read from its start
            self.history_until = 0
            return
        mark, self.looker = restored
        self.progress.outcome_seq, self.progress.feedback_seq = mark.outcome_seq, mark.feedback_seq
        self.history_until = 0  # the looks after the checkpoint are this leader's to take
        self._saved = (mark, -math.inf)
        log.info(
            "%s: continuing from the checkpoint at %d records", self.experiment.name, self.looker.records
        )

    async def _checkpoint(self, force: bool) -> None:
        if self.checkpoints is None:
            return
        loop = asyncio.get_running_loop()
        mark = Mark(self.progress.outcome_seq, self.progress.feedback_seq)
        if mark == Mark(0, 0):  # nothing read yet
            return
        if self._saved is not None and (
            self._saved[0] == mark or (not force and loop.time() - self._saved[1] < CHECKPOINT_EVERY_S)
        ):
            return
        await loop.run_in_executor(
            self._worker, self.checkpoints.save, self.experiment.name, mark, self.looker
        )
        self._saved = (mark, loop.time())

    def acted(self, decision: Decision) -> bool:
        """Whether the state's history shows this look acted on already (by an earlier leader)."""
        state = self.states.current(self.experiment.name)
        done = [h.get("at_records") for h in state.history if h.get("decision") == decision.kind]
        return any(isinstance(n, int) and n >= decision.records for n in done)

    async def _act(self, decision: Decision) -> ExperimentState:
        self.progress.last = decision
        name = self.experiment.name
        if self.acted(decision):
            log.info(
                "decision %s for %s at %d records: acted on already", decision.kind, name, decision.records
            )
            return self.states.current(name)
        self.on_decision(decision)
        change = self.looker.transition(decision)
        if change is None:
            return self.states.current(name)
        phase, step, extra = change
        log.info("decision %s for %s at %d records", decision.kind, name, decision.records)
        return await self.states.change(
            name,
            phase,
            step,
            f"{decision.kind}: {'; '.join(decision.reasons)}",
            extra=extra,
            decision=decision.kind,
            reasons=decision.reasons,
            at_records=decision.records,
            at_candidate_requests=decision.candidate_requests,
            snapshot=decision.snapshot,
        )


def replay(
    experiment: Experiment, records: Sequence[OutcomeRecord], judge_factory: Callable[[Experiment], JudgeLike]
) -> tuple[list[Decision], dict[str, Any]]:
    """Offline: the decisions the controller makes on `records` (store order), and the final snapshot."""
    looker = Looker(judge_factory(experiment), experiment)
    decisions = looker.replay(records)
    last = looker.last_look
    return decisions, {**looker.snapshot(), "last_look": last.kind if last is not None else "WARMUP"}
