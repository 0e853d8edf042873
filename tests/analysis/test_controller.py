"""The controller and the looker with a scripted judge: looks at fixed record counts, state changes, restart
catch-up without re-deciding, and replay equal to live."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from analysis.controller import Controller, replay
from analysis.verdict import LOOK_EVERY, LOOK_SHARE, JudgeLike, Looker, carry_detail, look_gap
from experiments.model import AnalysisSpec, CanaryStrategy, Experiment, UnitKey, Variant
from experiments.outcome import OutcomeRecord
from experiments.state import ExperimentState, Phase, initial_state, transition
from tests.support.wait import wait_until

EXP = Experiment(
    name="e",
    source="t",
    path_prefix="/v2",
    variants=(Variant("stable", "stable", "http://h:1"), Variant("candidate", "candidate", "http://h:2")),
    unit=UnitKey("request"),
    salt="s",
    strategy=CanaryStrategy((10.0, 50.0), min_requests_per_step=0),
    analysis=AnalysisSpec(interval_s=0.01),
)


@dataclass
class Verdict:
    kind: str
    reasons: list[str]
    snapshot: dict[str, Any]


class ScriptedJudge:
    """Fake judge (pure logic): ADVANCE at the 3rd look of step 0, PROMOTE at the 2nd look of step 1."""

    def __init__(self, _: Experiment) -> None:
        self.seen = 0
        self.looks: list[tuple[int, int]] = []
        self.details: list[bool] = []
        self.last: Verdict | None = None

    def observe(self, records: Sequence[OutcomeRecord]) -> None:
        self.seen += len(records)

    def observe_rewards(self, records: Sequence[OutcomeRecord]) -> None:
        pass

    def mature(self, cutoff: float) -> None:
        pass

    def latched(self) -> list[str]:
        return []

    def latch(self, candidates: Sequence[str]) -> None:
        pass

    def decide(
        self, *, step: int, candidate_in_step: int, drops: Mapping[str, int], detail: bool = True
    ) -> Verdict:
        if self.looks and self.looks[-1] == (self.seen, step) and self.last is not None:
            self.details.append(detail)
            return self.last  # the same look asked again (with detail): the same answer
        self.looks.append((self.seen, step))
        self.details.append(detail)
        self.last = self._scripted(step)
        return self.last

    def _scripted(self, step: int) -> Verdict:
        looks_in_step = sum(1 for _, s in self.looks if s == step)
        if step == 0 and looks_in_step == 3:
            return Verdict("ADVANCE", ["scripted"], {"seen": self.seen})
        if step == 1 and looks_in_step == 2:
            return Verdict("PROMOTE", ["scripted"], {"seen": self.seen})
        return Verdict("CONTINUE", [], {"seen": self.seen})

    def snapshot(self) -> dict[str, Any]:
        return {"seen": self.seen}


def records(n: int, start: int = 0) -> list[OutcomeRecord]:
    return [
        OutcomeRecord(
            f"r{i}", float(i), "e", "candidate" if i % 10 == 0 else "stable", 0.1, 200, None, 1.0, 1.0, None
        )
        for i in range(start, start + n)
    ]


class ListSource:
    def __init__(self) -> None:
        self.rows: list[tuple[int, OutcomeRecord]] = []
        self.reads = 0

    def add(self, recs: list[OutcomeRecord]) -> None:
        base = len(self.rows)
        self.rows += [(base + i + 1, r) for i, r in enumerate(recs)]

    def read_after(self, experiment: str, after_seq: int, limit: int) -> list[tuple[int, OutcomeRecord]]:
        self.reads += 1
        return [row for row in self.rows if row[0] > after_seq][:limit]

    def read_feedback(self, experiment: str, after_seq: int, limit: int) -> list[tuple[int, OutcomeRecord]]:
        return []


class MemoryStates:
    def __init__(self, state: ExperimentState) -> None:
        self.state = state

    def current(self, name: str) -> ExperimentState:
        return self.state

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
        self.state = transition(EXP, self.state, phase, step, 0.0, reason, **details)
        if extra:
            self.state = replace(self.state, extra={**self.state.extra, **extra})
        return self.state

    async def annotate(self, name: str, **extra: object) -> None:
        self.state = replace(self.state, version=self.state.version + 1, extra={**self.state.extra, **extra})


def factory(exp: Experiment) -> JudgeLike:
    return ScriptedJudge(exp)


async def test_live_controller_advances_then_promotes_at_record_counts() -> None:
    source, states = ListSource(), MemoryStates(initial_state(EXP))
    finished: list[ExperimentState] = []
    ctl = Controller(EXP, source, states, factory, on_finish=lambda s, snap: finished.append(s))
    assert not await ctl.tick()  # first catch-up: nothing stored yet
    for chunk in (150, 150, 250, 37, 500):  # arrival in uneven chunks must not matter
        source.add(records(chunk, start=len(source.rows)))
        await ctl.tick()
    assert states.state.phase == "promoted"
    created, *decided = states.state.history
    assert created["reason"] == "created"
    assert [h["decision"] for h in decided] == ["ADVANCE", "PROMOTE"]
    assert [h["at_records"] for h in decided] == [3 * LOOK_EVERY, 5 * LOOK_EVERY]
    assert states.state.extra["step_start_candidates"] == 30
    assert await ctl.tick()
    assert finished
    assert finished[0].phase == "promoted"


async def test_replay_matches_live() -> None:
    decisions, snapshot = replay(EXP, records(1087), factory)
    assert [(d.kind, d.records, d.step) for d in decisions] == [("ADVANCE", 300, 0), ("PROMOTE", 500, 1)]
    assert snapshot["records"] == 500  # stops at the final decision


async def test_restart_catches_up_without_deciding_again() -> None:
    source = ListSource()
    source.add(records(250))
    state = transition(EXP, initial_state(EXP), "progressing", 1, 0.0, "ADVANCE")
    states = MemoryStates(replace(state, extra={"step_start_candidates": 30}))
    ctl = Controller(EXP, source, states, factory, history_until=250)
    source.add(records(30, start=250))  # arrived before the first catch-up, after the start: judged
    await ctl.tick()
    assert states.state.version == 2  # history was replayed, no decision re-fired
    judge = ctl.looker.judge
    assert isinstance(judge, ScriptedJudge)
    assert judge.looks == []
    source.add(records(170, start=280))
    await ctl.tick()
    assert [look[1] for look in judge.looks] == [1, 1]
    assert states.state.phase == "promoted"


async def test_run_stops_when_asked() -> None:
    source = ListSource()
    ctl = Controller(EXP, source, MemoryStates(initial_state(EXP)), factory)
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(ctl.run(stop))
    await wait_until(lambda: source.reads > 0, 5.0)  # running: it has ticked, and waits for the next interval
    stop.set()
    await asyncio.wait_for(task, 1)


async def test_drop_counts_survive_a_restart_in_the_state() -> None:
    states = MemoryStates(initial_state(EXP))
    lost = {"candidate": 7}
    first = Controller(EXP, ListSource(), states, factory, drops=lambda: lost)
    await first.tick()
    assert states.state.extra["dropped"] == {"candidate": 7}
    # A new process starts with empty counters: the gate still sees the earlier drops, plus its own.
    second = Controller(EXP, ListSource(), states, factory, drops=lambda: {"stable": 2})
    assert second.total_drops() == {"candidate": 7, "stable": 2}
    await second.tick()
    assert states.state.extra["dropped"] == {"candidate": 7, "stable": 2}


class QuietJudge(ScriptedJudge):
    """Never acts: only the look schedule shows."""

    def decide(
        self, *, step: int, candidate_in_step: int, drops: Mapping[str, int], detail: bool = True
    ) -> Verdict:
        self.looks.append((self.seen, step))
        self.details.append(detail)
        return Verdict("CONTINUE", [], {"seen": self.seen, "detail": detail})


def test_looks_every_block_then_every_percent() -> None:
    assert look_gap(0) == LOOK_EVERY
    assert look_gap(LOOK_EVERY * LOOK_SHARE - 1) == LOOK_EVERY
    assert look_gap(LOOK_EVERY * LOOK_SHARE) == LOOK_EVERY
    assert look_gap(2 * LOOK_EVERY * LOOK_SHARE) == 2 * LOOK_EVERY
    assert look_gap(1_000_000) == 10_000
    judge = QuietJudge(EXP)
    looker = Looker(judge, EXP)
    for start in range(0, 60_000, 7_000):  # uneven feeds: the look points are the same
        looker.feed(records(7_000, start=start), {})
    seen = [s for s, _ in judge.looks]
    assert seen[:3] == [100, 200, 300]
    assert seen[99] == 10_000
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert all(g % LOOK_EVERY == 0 for g in gaps)
    assert all(g == look_gap(a) for a, g in zip(seen, gaps, strict=False))
    assert seen[-1] == 63_000 - 63_000 % LOOK_EVERY or seen[-1] + look_gap(seen[-1]) > 63_000
    assert len(seen) < 350  # a look per block would have been 630


def test_live_looker_details_once_per_interval_and_at_every_action() -> None:
    now = [0.0]
    quiet = QuietJudge(EXP)
    looker = Looker(quiet, EXP, detail_every_s=1.0, clock=lambda: now[0])
    looker.feed(records(500), {})
    assert quiet.details == [True, False, False, False, False]
    assert looker.last_detailed is not None
    assert looker.last_detailed.records == 100
    now[0] = 1.5
    looker.feed(records(100, start=500), {})
    assert quiet.details[-1] is True
    assert looker.last_detailed.records == 600
    scripted = ScriptedJudge(EXP)  # ADVANCE at its 3rd look: an action always carries the detailed snapshot
    acting = Looker(scripted, EXP, detail_every_s=1.0, clock=lambda: 0.0)
    decisions = acting.feed(records(300), {})
    assert [d.kind for d in decisions] == ["ADVANCE"]
    assert decisions[0].snapshot == {"seen": 300, "detail_records": 300}
    assert scripted.details == [True, False, False, True]  # the third look, asked again with its bounds


def test_a_look_without_detail_carries_the_last_intervals_and_says_from_when() -> None:
    def metric(name: str, log_e: float, lo: float | None) -> dict[str, Any]:
        return {
            "name": name,
            "role": "guardrail",
            "log_e_harm": log_e,
            "estimate": 1.1,  # estimates are always fresh: never carried
            "ci_low": lo,
            "ci_high": lo,
        }

    detailed = {"metrics": [metric("error_rate", 0.5, 0.9)], "detail_records": 400}
    fresh = {"metrics": [metric("error_rate", 1.5, None), metric("latency_p99", 0.1, None)], "step": 1}
    out = carry_detail(fresh, detailed)
    assert out["detail_records"] == 400
    assert out["step"] == 1
    assert out["metrics"][0] == metric("error_rate", 1.5, 0.9)  # e-value now, interval from record 400
    assert out["metrics"][1] == metric("latency_p99", 0.1, None)  # nothing to carry
    many = carry_detail({"comparisons": {"c1": fresh}}, {"comparisons": {"c1": detailed}})
    assert many["comparisons"]["c1"]["metrics"][0]["ci_low"] == 0.9
