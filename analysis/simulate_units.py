"""Sticky-traffic experiments through the real engine: `analysis.populations` traffic fed to `Judge`s.

Usage:
    exp = bench_experiment(sticky=True)                       # 10% canary, K = 3, maxRequests 35k
    out = run_units(exp, HEAVY, Scenario(error_mult=2.0), seed=1)
    out.kind, out.total, out.units, out.srm

Like `analysis.simulate.run_engine`, but the traffic comes from users with their own rates and propensities,
assigned by bucket (sticky) or per request, and the engine is the experiment's `Judge` (one per candidate),
given unit codes in `Columns.unit` when the experiment is sticky. The loop serves `look_every` requests (all
arms), feeds each judge the rows of its pair (stable + its candidate, ρ = s_cand/(s_cand + s_stable) on every
row), and looks; ADVANCE moves to the next canary step (units move stable → candidate only). Final:
ROLLBACK (any candidate), PROMOTE (every candidate passed), INCONCLUSIVE (a candidate hit maxRequests and none
rolled back), or LIMIT (`limit` requests served). HOLD is not final: the SRM gate only holds promotion, a
rollback stays possible; the outcome records whether a look ever held or flagged SRM. `hold_is_final=True`
reproduces the engine before unit-level analysis, where a latched SRM hold ended the experiment.

A shadowing phase (`Scenario.shadow_requests`) is served first, all on stable with ρ = 0, looked at like the
rest; the outcome's counts start after it.

Validation: with the engine as it was before unit-level analysis (per-request tests whatever the unit, HOLD
final), sticky A/A on the heavy population gave 16.5% false rollbacks and 61.2% SRM holds over 1000 runs
(the audit: 18.5% / 67.5% over 200), per-request A/A on the same users 2.5% / 0.5% (audit: 2.0% / 0%).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from analysis.columns import Columns, make_columns
from analysis.engine import Judge
from analysis.populations import STABLE, Batch, BoolArray, Population, Scenario, Traffic, pair_rho
from analysis.rules import Decision
from experiments.assignment import layout_order
from experiments.model import (
    ABStrategy,
    AnalysisSpec,
    CanaryStrategy,
    Experiment,
    MetricRule,
    UnitKey,
    Variant,
)

FINAL: frozenset[str] = frozenset({"ROLLBACK", "PROMOTE", "INCONCLUSIVE"})
LOOK_EVERY = 1_000
MAX_REQUESTS = 35_000
CANARY = 10.0
STICKY_UNIT = UnitKey("header", "x-user-id")


def bench_experiment(
    sticky: bool = True,
    arms: Mapping[str, float] | None = None,
    canary: tuple[float, ...] = (CANARY, 100.0),
    max_requests: int | None = MAX_REQUESTS,
    guardrails: tuple[MetricRule, ...] = (),
) -> Experiment:
    """A bench experiment: a canary over `canary` steps (percent), or fixed `arms` weights (percent by variant
    name, "stable" plus candidates, e.g. {"stable": 50, "c1": 25, "c2": 25}); default guardrails (K = 3)."""
    variants: tuple[Variant, ...]
    if arms is None:
        variants = (Variant("stable", "stable", "http://a"), Variant("candidate", "candidate", "http://b"))
        strategy: CanaryStrategy | ABStrategy = CanaryStrategy(canary)
    else:
        variants = tuple(
            Variant(name, "stable" if name == "stable" else "candidate", f"http://{name}") for name in arms
        )
        strategy = ABStrategy(dict(arms))
    return Experiment(
        name="bench-units",
        source="simulate_units",
        path_prefix="/",
        variants=variants,
        unit=STICKY_UNIT if sticky else UnitKey("request"),
        salt="bench",
        strategy=strategy,
        analysis=AnalysisSpec(max_requests=max_requests, guardrails=guardrails),
    )


def step_shares(experiment: Experiment) -> tuple[tuple[float, ...], ...]:
    """Candidate shares (fractions, layout order) per step: the canary's steps below 100%, or the weights."""
    strategy = experiment.strategy
    if isinstance(strategy, CanaryStrategy):
        steps = tuple(s for s in strategy.steps if s < 100.0) or (100.0,)
        return tuple((s / 100.0,) for s in steps)
    if isinstance(strategy, ABStrategy):
        cands = [v.name for v in layout_order(experiment) if v.role != "stable"]
        return (tuple(float(strategy.weights.get(c, 0.0)) / 100.0 for c in cands),)
    raise ValueError(f"no candidate shares for a {type(strategy).__name__}")


def pair_columns(batch: Batch, candidate: int, sticky: bool) -> Columns:
    """The rows of stable and candidate `candidate` (1-based), as the engine's columns."""
    keep = (batch.arm == STABLE) | (batch.arm == candidate)
    n = int(np.count_nonzero(keep))
    return make_columns(
        batch.arm[keep] == candidate,
        np.full(n, pair_rho(batch.shares, candidate)),
        batch.error[keep],
        batch.latency_ms[keep],
        unit=batch.unit[keep] if sticky else None,
    )


@dataclass(frozen=True, slots=True)
class UnitOutcome:
    """How one simulated sticky experiment ended (counts after any shadowing phase)."""

    kind: str
    """ROLLBACK, PROMOTE, INCONCLUSIVE, LIMIT, or HOLD (only with `hold_is_final`)."""
    total: int
    """Requests served (all arms) when it ended."""
    candidate: int
    """Candidate requests (all candidates)."""
    units: int
    """Distinct users seen (all arms)."""
    candidate_units: int
    """Distinct users seen on a candidate."""
    srm: bool
    """Some look held (HOLD) or flagged a sample ratio mismatch."""
    step: int
    kinds: tuple[str, ...] = ()
    """Final kind per candidate (layout order; CONTINUE if undecided)."""
    harmful: tuple[str, ...] = ()
    """For ROLLBACK: the guardrails whose harm test fired (from the decision's reasons)."""


@dataclass(slots=True)
class _Seen:
    """Which users were seen, on any arm and on a candidate."""

    any: BoolArray
    cand: BoolArray

    def add(self, batch: Batch) -> None:
        self.any[batch.unit] = True
        self.cand[batch.unit[batch.arm != STABLE]] = True


def _srm_seen(d: Decision) -> bool:
    srm = d.snapshot.get("srm") if isinstance(d.snapshot, dict) else None
    flagged = bool(srm.get("flagged", False)) if isinstance(srm, dict) else False
    return d.kind == "HOLD" or flagged


def run_units(
    experiment: Experiment,
    pop: Population,
    sc: Scenario,
    seed: int,
    look_every: int = LOOK_EVERY,
    limit: int | None = None,
    hold_is_final: bool = False,
) -> UnitOutcome:
    """Simulate until a final decision or `limit` requests after shadowing (default: 3× the requests at which
    the smallest candidate share reaches maxRequests, or 2M)."""
    sticky = sc.sticky and experiment.unit.kind != "request"
    shares = step_shares(experiment)
    cands = [v.name for v in layout_order(experiment) if v.role != "stable"]
    judges = [Judge(experiment, candidate=c) for c in cands]
    limit = _default_limit(judges[0], shares) if limit is None else limit
    traffic = Traffic(pop, sc, seed)
    seen = _Seen(np.zeros(pop.n_users, dtype=np.bool_), np.zeros(pop.n_users, dtype=np.bool_))
    kinds, n_cand = ["CONTINUE"] * len(judges), [0] * len(judges)
    step, step_start, srm = 0, [0] * len(judges), False
    harmful: list[str] = []

    def look(batch: Batch) -> None:
        nonlocal srm
        for j, judge in enumerate(judges):
            if kinds[j] in FINAL:
                continue
            cols = pair_columns(batch, j + 1, sticky)
            n_cand[j] += int(np.count_nonzero(cols.in_b))
            judge.observe_columns(cols)
            d = judge.decide(step=step, candidate_in_step=n_cand[j] - step_start[j], drops={}, detail=False)
            srm = srm or _srm_seen(d)
            if d.kind in FINAL or (hold_is_final and d.kind == "HOLD"):
                kinds[j] = d.kind
                if d.kind == "ROLLBACK":
                    harmful.extend(r.split(":", 1)[0] for r in d.reasons if ":" in r)
            elif d.kind == "ADVANCE":
                kinds[j] = "ADVANCE"

    _shadowing(traffic, look, sc.shadow_requests, len(shares[0]), look_every)
    served = 0
    while served < limit and not _ended(kinds, hold_is_final):
        batch = traffic.take(min(look_every, limit - served), shares[step])
        served += batch.size
        seen.add(batch)
        look(batch)
        if "ADVANCE" in kinds and all(k in ("ADVANCE", "PROMOTE") for k in kinds):
            step, step_start = min(step + 1, len(shares) - 1), list(n_cand)
        kinds = ["CONTINUE" if k == "ADVANCE" else k for k in kinds]
    return UnitOutcome(
        _combine(kinds, served >= limit, hold_is_final),
        served,
        sum(n_cand),
        int(np.count_nonzero(seen.any)),
        int(np.count_nonzero(seen.cand)),
        srm,
        step,
        tuple(kinds),
        tuple(dict.fromkeys(harmful)),
    )


def _default_limit(judge: Judge, shares: Sequence[Sequence[float]]) -> int:
    """3× the requests at which the smallest candidate share reaches maxRequests, or 2M."""
    max_req = judge.policy.max_requests
    least = min(min(s) for s in shares)
    return int(3 * max_req / least) if max_req and least > 0 else 2_000_000


def _shadowing(traffic: Traffic, look: Callable[[Batch], None], requests: int, arms: int, every: int) -> None:
    """The shadowing phase: `requests` all on stable (the candidates get nothing yet), looked at as usual."""
    left = requests
    while left > 0:
        n = min(every, left)
        look(traffic.take(n, (0.0,) * arms, shadow=True))
        left -= n


def _ended(kinds: list[str], hold_is_final: bool) -> bool:
    """A candidate rolled back (or held, before unit-level analysis), or every candidate is decided."""
    return "ROLLBACK" in kinds or (hold_is_final and "HOLD" in kinds) or all(k in FINAL for k in kinds)


def _combine(kinds: list[str], at_limit: bool, hold_is_final: bool) -> str:
    """The experiment's decision from its candidates'."""
    if "ROLLBACK" in kinds:
        return "ROLLBACK"
    if hold_is_final and "HOLD" in kinds:
        return "HOLD"
    if all(k == "PROMOTE" for k in kinds):
        return "PROMOTE"
    if all(k in FINAL for k in kinds):
        return "INCONCLUSIVE"
    return "LIMIT" if at_limit else "CONTINUE"
