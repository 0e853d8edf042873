"""Looks at fixed record counts, and what each decision does to the experiment's phase and step.

Usage: looker = Looker(judge, experiment, state); decisions = looker.feed(records, drops)
Shared by the live controller and the offline replay (`outrider analyze`), so both decide at the same records.
The looker keeps its own view of the phase and step (advanced by its own decisions), so a decision never
depends on when the controller happened to wake up.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from analysis.detail import carry_detail
from analysis.judge_protocol import DecisionLike, JudgeLike
from analysis.reward_arrival import RewardClock
from analysis.shadow_judge import ShadowJudge
from experiments.model import Experiment, ShadowOnlyStrategy
from experiments.outcome import OutcomeRecord
from experiments.state import ExperimentState, Phase

LOOK_EVERY = 100
"""Records per block: the judge is fed in blocks, and looks fall on block ends (any cadence is valid for the
e-processes)."""
LOOK_SHARE = 100
"""Past LOOK_SHARE blocks, the gap between looks grows with the records seen: about 1/LOOK_SHARE of them
(whole blocks), so a decision comes at most ~1% of the records late, and a fleet at 10k requests/s looks a
few hundred times an hour instead of a hundred times a second (a look costs milliseconds)."""


def look_gap(records: int) -> int:
    """Records from a look at `records` to the next one: one block up to LOOK_SHARE blocks, then ~1%."""
    return LOOK_EVERY * max(1, records // (LOOK_EVERY * LOOK_SHARE))


ACTIONS = frozenset({"ADVANCE", "PROMOTE", "ROLLBACK", "INCONCLUSIVE", "SHADOW_OK", "SHADOW_FAIL"})
"""Decisions that change the experiment. SHADOW_OK / SHADOW_FAIL end the `shadowing` phase of an experiment
whose canary waits for the shadow verdict (`shadow.requireOk`)."""


@dataclass
class Decision:
    """A decision at a look, with where it was taken."""

    kind: str
    reasons: list[str]
    snapshot: dict[str, Any]
    records: int
    """Outcome records seen when the decision was taken."""
    candidate_requests: int
    step: int


@dataclass
class View:
    """The looker's own phase/step, moved by its decisions."""

    phase: Phase = "progressing"
    step: int = 0
    step_start_candidates: int = 0
    extra: dict[str, object] = field(default_factory=dict)


class Looker:
    """Feeds the judge in blocks of LOOK_EVERY records and decides at the record counts `look_gap` spaces."""

    def __init__(
        self,
        judge: JudgeLike,
        experiment: Experiment,
        state: ExperimentState | None = None,
        *,
        detail_every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.judge, self.experiment = judge, experiment
        self.detail_every_s, self.clock = detail_every_s, clock
        """Bounds (a look's costliest part, bisections) at every look when None; else at looks that act and
        at most once per `detail_every_s` otherwise, the others carrying the last ones (`carry_detail`; the
        live controller: bounds are for screens and reasons, decisions never read them)."""
        self._detailed_at = -math.inf
        spec = experiment.shadow
        floor = spec.noise_floor if spec is not None else None
        self.shadow: ShadowJudge | None = ShadowJudge(experiment, floor=floor) if experiment.shadows else None
        self.pending: list[OutcomeRecord] = []
        self.last_look: Decision | None = None
        self.last_detailed: Decision | None = None
        """The last look whose snapshot has estimates and bounds (the same as `last_look` when every look has
        them; see `detail_every_s`)."""
        self.rewards_inline = False
        """Replay: rewards travel inside the records (an export), so offer them with their block."""
        analysis = experiment.analysis
        self.rewards = RewardClock(analysis.feedback_window_s if analysis is not None else 3600.0)
        self.records = 0
        self.next_look = LOOK_EVERY
        """The record count of the next look (a function of the record count alone: live = replay)."""
        self.candidates = 0
        gated = experiment.shadow is not None and experiment.shadow.require_ok
        gated = gated or isinstance(experiment.strategy, ShadowOnlyStrategy)
        self.view = View("shadowing" if gated else "progressing")
        if state is not None:
            start = state.extra.get("step_start_candidates", 0)
            self.view = View(state.phase, state.step, int(start) if isinstance(start, int | float) else 0)
            latched = state.extra.get("srm_latched")
            if isinstance(latched, list):
                judge.latch([str(x) for x in latched])

    def feed(
        self, records: Sequence[OutcomeRecord], drops: Mapping[str, int], decide: bool = True
    ) -> list[Decision]:
        """Add records; look after each full block; return the decisions that change something."""
        self.pending.extend(records)
        out: list[Decision] = []
        while len(self.pending) >= LOOK_EVERY:
            block, self.pending = self.pending[:LOOK_EVERY], self.pending[LOOK_EVERY:]
            self.judge.observe(block)
            if self.shadow is not None:
                self.shadow.observe(block)
            if self.rewards_inline:
                self.rewards.offer(block)
            matured = self.rewards.advance(block)
            if matured:
                self.judge.observe_rewards(matured)
            self.judge.mature(self.rewards.cutoff)
            self.records += len(block)
            self.candidates += sum(
                1 for r in block if r.variant != self.experiment.stable.name and not r.pinned
            )
            if self.records < self.next_look:
                continue
            self.next_look = self.records + look_gap(self.records)
            if decide and self.view.phase == "shadowing":
                gate = self._shadow_gate()
                if gate is not None:
                    out.append(gate)
            elif decide and self.view.phase == "progressing":
                decision = self._look(drops)
                if decision.kind in ACTIONS:
                    out.append(decision)
        return out

    def feed_rewards(self, records: Sequence[OutcomeRecord]) -> None:
        """Rewards joined to outcomes, as read from the store; each counts once its window has closed."""
        self.rewards.offer(records)

    def _look(self, drops: Mapping[str, int]) -> Decision:
        view = self.view
        now = self.clock()
        detail = self.detail_every_s is None or now - self._detailed_at >= self.detail_every_s
        raw = self.judge.decide(
            step=view.step,
            candidate_in_step=self.candidates - view.step_start_candidates,
            drops=drops,
            detail=detail,
        )
        if not detail and raw.kind in ACTIONS:  # an action's reasons and snapshot have their bounds
            detail = True
            raw = self.judge.decide(
                step=view.step,
                candidate_in_step=self.candidates - view.step_start_candidates,
                drops=drops,
                detail=True,
            )
        stats = raw.snapshot
        if detail:
            self._detailed_at = now
            stats = {**stats, "detail_records": self.records}
        elif self.last_detailed is not None:
            stats = carry_detail(stats, self.last_detailed.snapshot)
        snapshot = stats if self.shadow is None else {**stats, "shadow": self.shadow.verdicts()}
        decision = Decision(raw.kind, list(raw.reasons), snapshot, self.records, self.candidates, view.step)
        self.last_look = decision
        if detail:
            self.last_detailed = decision
        change = self.transition(decision)
        if change is not None:
            phase, step, extra = change
            start = extra.get("step_start_candidates", view.step_start_candidates)
            self.view = View(
                phase, step, start if isinstance(start, int) else view.step_start_candidates, extra
            )
        return decision

    def _shadow_gate(self) -> Decision | None:
        """While shadowing: SHADOW_OK once every shadow is OK, SHADOW_FAIL as soon as one fails."""
        if self.shadow is None:
            return None
        verdicts = self.shadow.verdicts()
        kinds = {name: str(v["verdict"]) for name, v in verdicts.items()}
        if "FAIL" in kinds.values():
            kind = "SHADOW_FAIL"
        elif kinds and all(k == "OK" for k in kinds.values()):
            kind = "SHADOW_OK"
        else:
            return None
        reasons = [
            f"{name}: {v['verdict']} — {'; '.join(v.get('reasons') or [])}" for name, v in verdicts.items()
        ]
        decision = Decision(
            kind, reasons, {"shadow": verdicts}, self.records, self.candidates, self.view.step
        )
        self.last_look = self.last_detailed = decision  # shadow verdicts only: nothing to leave out
        change = self.transition(decision)
        if change is not None:
            self.view = View(change[0], change[1], self.candidates, change[2])
        return decision

    def transition(self, decision: Decision) -> tuple[Phase, int, dict[str, object]] | None:
        """(phase, step, state extra) a decision leads to, or None when it changes nothing."""
        step = decision.step
        if decision.kind == "SHADOW_OK":
            if isinstance(self.experiment.strategy, ShadowOnlyStrategy):  # the verdict is the result
                return "promoted", step, {}
            return "progressing", 0, {"step_start_candidates": decision.candidate_requests}
        if decision.kind == "SHADOW_FAIL":
            return "rolled_back", step, {}
        if decision.kind == "ADVANCE":
            return "progressing", step + 1, {"step_start_candidates": decision.candidate_requests}
        if decision.kind == "PROMOTE":
            return "promoted", step, {}
        if decision.kind == "ROLLBACK":
            return "rolled_back", step, {}
        if decision.kind == "INCONCLUSIVE":
            analysis = self.experiment.analysis
            hold = analysis is not None and analysis.on_inconclusive == "hold"
            return ("paused" if hold else "rolled_back"), step, {}
        return None

    def replay(self, records: Sequence[OutcomeRecord]) -> list[Decision]:
        """Offline: every record in order, looks as live; stops at the first final decision."""
        self.rewards_inline = True
        out: list[Decision] = []
        for start in range(0, len(records), LOOK_EVERY):
            out += self.feed(records[start : start + LOOK_EVERY], {})
            if self.view.phase not in ("progressing", "shadowing"):
                break
        return out

    def snapshot(self) -> dict[str, Any]:
        """The judge's statistics plus the looker's counts."""
        shadow = {"shadow": self.shadow.verdicts()} if self.shadow is not None else {}
        return {
            **self.judge.snapshot(),
            **shadow,
            "records": self.records,
            "candidate_requests": self.candidates,
        }

    def shadow_verdicts(self) -> dict[str, str]:
        """variant → OK / FAIL / NOT_ENOUGH_DATA (empty without shadows)."""
        if self.shadow is None:
            return {}
        return {name: str(v["verdict"]) for name, v in self.shadow.verdicts().items()}


__all__ = ["ACTIONS", "Decision", "DecisionLike", "JudgeLike", "Looker", "View", "carry_detail", "look_gap"]
