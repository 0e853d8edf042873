"""The decision engine (STATS §2 and §6 of docs/statistics.md): classify every rule → combine → decide.

Usage:
    judge = Judge(experiment)
    judge.observe(records)                     # outcomes, in arrival order
    decision = judge.decide(step=0, candidate_in_step=n, drops={"v1": 0, "v2": 0})

At every look: ROLLBACK if any guardrail's harm test rejects at α/(K·J) (Bonferroni over K guardrails and J
candidates) — at once for the exact per-request error test, after the burn-in of the others, whatever the
SRM gate says → ROLLBACK if an absolute SLO is broken (blue-green) → WARMUP until the minimum exposure for
promotion (500 records and, per unit, 100 units per arm) → HOLD on a sample ratio mismatch (latched; it
holds promotion only) → PROMOTE at the last canary step / ADVANCE (after `minRequestsPerStep` candidate
records in the step) if every guardrail's non-inferiority test and every goal's test rejects at α/J; HOLD
instead while outcome drops exceed 0.1% of an arm or rewards arrive unevenly → INCONCLUSIVE at `maxRequests`
candidate records, `maxUnits` candidate units or `maxDuration` (action: `onInconclusive`) → else CONTINUE.
E-processes never reset between steps. `decide` is a pure function of the evidence; the same records with
the same looks always
give the same decisions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from analysis import tally as tally_mod
from analysis.columns import Columns, from_records, is_error
from analysis.engine_types import Exposure
from analysis.metrics_eval import Evidence
from analysis.policy import Policy
from analysis.request_evidence import RequestEvidence
from analysis.reward_arrival import ArrivalMonitor
from analysis.rules import Decision, Look, classify, combine, floors, snapshot_of
from analysis.slo import Served, check_slo
from analysis.srm import srm_log_bf_split
from analysis.tally import Tally, tracks_for
from analysis.token_metrics import TokenTallies
from analysis.unit_evidence import UnitEvidence, new_unit_tally
from experiments.model import BlueGreenStrategy, Experiment
from experiments.outcome import OutcomeRecord


def candidate_of(experiment: Experiment) -> str:
    """The first variant with role `candidate` (ValueError if none)."""
    for v in experiment.serving:
        if v.role == "candidate":
            return v.name
    raise ValueError(f"experiment {experiment.name!r} has no candidate variant to judge")


class Judge:
    """Holds one comparison's evidence (candidate vs stable) between looks.

    Per request (`unit: request`) the evidence is an immutable `Tally`; per unit (header or claim) also a
    `UnitTally` of per-unit running sums. All statistics are functions of them, so replays agree.
    """

    def __init__(
        self, experiment: Experiment, candidate: str | None = None, policy: Policy | None = None
    ) -> None:
        self.experiment = experiment
        self.stable = experiment.stable.name
        self.candidate = candidate or candidate_of(experiment)
        self.policy = policy or Policy.from_experiment(experiment, self.candidate)
        unit_mode = self.policy.unit_mode
        self.tally = Tally(frozenset() if unit_mode else tracks_for(self.policy.metrics))
        self.units: Any = new_unit_tally(self.policy) if unit_mode else None
        self.tokens = TokenTallies(self.policy)
        """ttft_gmean, ...: the latency tests on the records' token measures (analysis.token_metrics)."""
        self.slo = experiment.analysis.slo if experiment.analysis is not None else None
        self.active = (
            experiment.strategy.active if isinstance(experiment.strategy, BlueGreenStrategy) else None
        )
        self.srm_latched = False
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        has_rewards = any(g.metric == "reward_mean" for g in self.policy.goals)
        self.arrival: ArrivalMonitor | None = ArrivalMonitor() if has_rewards else None
        self.served = Served()
        """Blue-green: everything the active side answered (absolute SLOs; no comparison exists)."""
        self._last: Decision | None = None

    def observe(self, records: Sequence[OutcomeRecord]) -> None:
        """Add outcomes in arrival order (skips pinned and certain records and other variants; no rewards)."""
        if records:
            self.first_ts = records[0].ts if self.first_ts is None else self.first_ts
            self.last_ts = max(self.last_ts or records[-1].ts, records[-1].ts)
        if self.active is not None and self.slo is not None:
            rows = [r for r in records if r.variant == self.active and not r.pinned]
            self.served.add([is_error(r.status, r.error) for r in rows], [r.latency_ms for r in rows])
        p = self.policy
        cols = from_records(
            records,
            self.stable,
            self.candidate,
            pair_share=p.pair_share,
            by_unit=p.unit_mode,
            measures=self.tokens.measures,
        )
        self.observe_columns(cols)
        if self.arrival is not None and records:
            n_b = int(np.count_nonzero(cols.in_b))
            self.arrival.add_block(max(r.ts for r in records), cols.size - n_b, n_b)

    def observe_rewards(self, records: Sequence[OutcomeRecord]) -> None:
        """Add matured rewards (records with `reward` set; each keeps its request's arm, unit and ρ)."""
        p = self.policy
        cols = from_records(
            records, self.stable, self.candidate, pair_share=p.pair_share, by_unit=p.unit_mode
        )
        self.observe_reward_columns(cols)
        if self.arrival is not None:
            n_b = int(np.count_nonzero(cols.in_b & ~np.isnan(cols.reward)))
            self.arrival.add_rewards(int(np.count_nonzero(~np.isnan(cols.reward))) - n_b, n_b)

    def mature(self, cutoff: float) -> None:
        """Requests at or before `cutoff` have had their whole feedback window (feedback arrival check)."""
        if self.arrival is not None:
            self.arrival.advance(cutoff)

    def latched(self) -> list[str]:
        """[candidate] once its sample-ratio check has fired, else []."""
        return [self.candidate] if self.srm_latched else []

    def latch(self, candidates: Sequence[str]) -> None:
        """Restore the sample-ratio latch (persisted in the experiment state) after a restart."""
        if self.candidate in candidates:
            self.srm_latched = True

    def observe_columns(self, cols: Columns) -> None:
        """Add outcomes given as columns (simulations, offline analysis)."""
        self.tally = tally_mod.update(self.tally, cols)
        if self.units is not None and cols.size:
            self.units.add(_unit_keys(cols), cols.in_b, cols.rho, cols.error, cols.latency_ms)
        if cols.extra:
            self.tokens.add(cols)

    def observe_reward_columns(self, cols: Columns) -> None:
        """Add rewards given as columns."""
        self.tally = tally_mod.update_rewards(self.tally, cols)
        if self.units is not None and cols.size:
            self.units.add_rewards(_unit_keys(cols), cols.in_b, cols.rho, cols.reward)

    def evidence(self) -> tuple[Evidence, float, Exposure]:
        """The comparison's tests, its SRM log Bayes factor and its exposure, now."""
        duration = None if self.first_ts is None or self.last_ts is None else self.last_ts - self.first_ts
        t = self.tally
        if self.units is None:
            ev = RequestEvidence(t, self.policy.tuning, floors(self.policy))
            exposure = Exposure(t.n_stable, t.n_candidate, duration_s=duration)
            return self.tokens.wrap(ev), srm_log_bf_split(t.requests), exposure
        u = UnitEvidence(self.units, self.policy)
        return self.tokens.wrap(u), u.srm_log_bf(), u.exposure(duration)

    def classify(self, detail: bool = True) -> Look:
        """Every rule, SRM, SLOs and data quality at this point."""
        ev, log_bf, exposure = self.evidence()
        look = classify(ev, self.policy, log_bf, exposure, self.srm_latched, detail)
        slo = check_slo(self.served, self.slo, self.policy.alpha) if self.active is not None else ()
        hold = self.arrival.hold_reason() if self.arrival is not None else None
        notes = ("blue-green: no concurrent comparison exists; judged on absolute SLOs and shadows",)
        return Look(
            look.guardrails, look.goals, look.srm_log_bf, look.srm_flagged, look.exposure,
            slo, hold, notes if self.active is not None else (),
        )  # fmt: skip

    def decide(
        self,
        *,
        step: int,
        candidate_in_step: int,
        drops: Mapping[str, int] | None = None,
        detail: bool = True,
    ) -> Decision:
        """Decide now; `step` indexes the canary steps, `drops` counts lost outcomes per variant name.

        `detail=False` leaves estimates and bounds out of the snapshot (same decision, less work).
        """
        look = self.classify(detail)
        decision = combine(look, self.policy, step, candidate_in_step, self.by_role(drops or {}))
        self.srm_latched = bool(decision.snapshot["srm"]["flagged"])
        self._last = decision
        return decision

    def by_role(self, drops: Mapping[str, int]) -> dict[str, int]:
        """Drop counts per variant name → per role of this comparison."""
        return {"stable": int(drops.get(self.stable, 0)), "candidate": int(drops.get(self.candidate, 0))}

    def snapshot(self) -> dict[str, Any]:
        """The statistics now, as at a look at the last decided step (JSON-able)."""
        step = int(self._last.snapshot["step"]) if self._last is not None else 0
        drops = self._last.snapshot["drops"] if self._last is not None else {}
        return snapshot_of(self.classify(), step, drops)


def _unit_keys(cols: Columns) -> Any:
    """Each row's unit; a row without one is its own unit."""
    if cols.unit is not None:
        return cols.unit
    raise ValueError("per-unit analysis needs the unit of every row (Columns.unit)")
