"""Synthetic sticky traffic: users with their own request rates and outcome propensities, seeded, vectorised.

Usage:
    traffic = Traffic(HEAVY, Scenario(error_mult=2.0), seed=1)
    batch = traffic.take(1000, (0.10,))          # 1000 requests in arrival order, candidate share 10%
    batch.unit, batch.arm, batch.error, batch.latency_ms

No I/O; the same (population, scenario, seed) and the same sequence of `take` calls give the same rows.

**Users** (`draw_units`). `n_users` units, each with
- a request rate λ_u: lognormal(0, `rate_shape`) ("heavy": σ 1.5, 20k users; "mild": σ 1.0, 100k users), or
  Pareto I with shape `rate_shape` ("pareto": shape 1.5, 20k users: an infinite-variance power-law tail,
  top user ≈ 1% of all traffic as with the heavy lognormal, but no near-silent users: every rate is ≥ 1/3 of
  the mean);
- an error propensity p_u ~ Beta(a, b) with mean a/(a + b) = `base_error` (1%) and a + b =
  `error_concentration` = 20, i.e. Beta(0.2, 19.8). The within-unit correlation of errors is then
  1/(a + b + 1) ≈ 0.048 and the design effect of an error rate over N requests is
  1 + (Σn²/N − 1)/(a + b + 1); at 350k requests of the heavy population (35k candidate records at 10%,
  Σn²/N ≈ 1 + N·e^{σ²}/n_users ≈ 167) that is ≈ 9. (Beta(0.5, 49.5) would give ≈ 4.3.) Base rate 0 gives
  p_u = 0 for everyone (the zero-error pair);
- a log-latency offset N(0, `unit_latency_sigma`² = 0.3²); each request adds lognormal noise around a
  median of `latency_ms` = 50 ms with log-sd `latency_sigma` = 0.5. Intra-unit correlation of log latency
  0.09/0.34 ≈ 0.26, design effect ≈ 40 at the same horizon;
- a uniform bucket u ∈ [0, 1) (outrider's `hash(salt, unit) mod 10000`, continuous here).

**Arrivals** (`ArrivalStream`). Each user's requests form a Poisson stream of intensity λ_u·g(t) with one time
profile g shared by every user (g(t) = 1 + `traffic_swing`·sin(2πt/`traffic_period_s`), flat by default),
scaled so that all users together send `requests_per_s` on average. The superposition is then a Poisson
stream of intensity Λ·g(t) whose marks (which user sent each request) are i.i.d. with P(u) = λ_u/Λ,
independent of the times: the stream is drawn in chunks of any size, in arrival order, by inverting
G(t) = ∫g at cumulative Exp(1)/Λ gaps and drawing marks from the rate CDF. This is the arrival model under
which the unit-level tests are valid (independent increments in information time).

**Assignment** exactly like `experiments.assignment`: candidates own the low bucket ranges in layout order,
the stable arm the rest. With candidate shares (s_1, …, s_k) a unit is on candidate j iff
s_1 + … + s_{j−1} ≤ u < s_1 + … + s_j, on stable iff u ≥ Σs. Raising a canary step only moves units from
stable to the candidate. Three arms 50/25/25: c1 u < 0.25, c2 0.25 ≤ u < 0.5, stable u ≥ 0.5. With
`Scenario(sticky=False)` each request draws its own u (per-request randomisation). Shares (0, …) route every
request to stable with certainty (ρ = 0; the shadowing phase).

**Outcomes** (`Scenario`). On a candidate, p = `error_mult`·p_u·d_e(t) + `error_add` (clipped to [0, 1]) and
latency × `latency_mult`; on stable, p = p_u·d_e(t). `drift`: d_e(t) = 1 + 0.5·sin(2πt/`drift_period_s`) on
errors and 1 + 0.2·sin(…) on latency, shared by the arms (period 500 s = 50k requests at 100/s, as
`analysis.simulate`). The shadowing phase (`Traffic.take(..., shadow=True)`) multiplies latency by
`shadow_latency` (0.75 by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ArmArray = npt.NDArray[np.int8]

STABLE = 0
"""Arm code of the stable variant; candidates are 1, 2, … in layout order."""


@dataclass(frozen=True, slots=True)
class Population:
    """Who sends the traffic: user count, rate law, outcome propensities (see the module docstring)."""

    name: str
    n_users: int
    rate_law: Literal["lognormal", "pareto"] = "lognormal"
    rate_shape: float = 1.5
    """Log-sd of a lognormal rate, or the shape of a Pareto rate."""
    base_error: float = 0.01
    error_concentration: float = 20.0
    """a + b of the per-user Beta error propensity."""
    latency_ms: float = 50.0
    unit_latency_sigma: float = 0.3
    latency_sigma: float = 0.5
    requests_per_s: float = 100.0
    traffic_swing: float = 0.0
    """Amplitude of the shared arrival-rate profile g(t) = 1 + swing·sin(2πt/period) (0 ≤ swing < 1)."""
    traffic_period_s: float = 500.0


HEAVY = Population("heavy", 20_000, "lognormal", 1.5)
MILD = Population("mild", 100_000, "lognormal", 1.0)
PARETO = Population("pareto", 20_000, "pareto", 1.5)
POPULATIONS: dict[str, Population] = {p.name: p for p in (HEAVY, MILD, PARETO)}


@dataclass(frozen=True, slots=True)
class Scenario:
    """The truth of one simulated experiment (candidate effects, drift, assignment)."""

    error_mult: float = 1.0
    error_add: float = 0.0
    """Absolute error probability added on a candidate (p_B = mult·p_A + add: the error-floor boundary)."""
    latency_mult: float = 1.0
    base_error: float | None = None
    """Overrides the population's base error rate (0: no errors on either arm unless `error_add`)."""
    drift: bool = False
    drift_period_s: float = 500.0
    sticky: bool = True
    """False: every request draws its own bucket (per-request randomisation)."""
    shadow_requests: int = 0
    """Requests served by stable alone (ρ = 0) before the canary starts (the run loop reads it)."""
    shadow_latency: float = 0.75


@dataclass(frozen=True, slots=True)
class Units:
    """One realisation of a population's users (index = unit id)."""

    rate_cdf: Array
    """Cumulative share of arrivals up to each unit (last = 1)."""
    p_error: Array
    latency_offset: Array
    bucket: Array

    @property
    def size(self) -> int:
        """Number of units."""
        return int(self.bucket.size)

    @property
    def weight(self) -> Array:
        """Share of arrivals of each unit (λ_u/Λ)."""
        return np.diff(self.rate_cdf, prepend=0.0)


def draw_rates(pop: Population, rng: np.random.Generator) -> Array:
    """Unnormalised request rates of `pop.n_users` users."""
    if pop.rate_law == "pareto":
        return 1.0 + rng.pareto(pop.rate_shape, pop.n_users)
    return np.exp(pop.rate_shape * rng.standard_normal(pop.n_users))


def draw_units(pop: Population, rng: np.random.Generator, base_error: float | None = None) -> Units:
    """Rates, error propensities, latency offsets and buckets of every user (each from its own child
    generator, so a different base error rate leaves the rates, offsets and buckets unchanged)."""
    rate_rng, err_rng, lat_rng, bucket_rng = rng.spawn(4)
    rates = draw_rates(pop, rate_rng)
    cdf = np.cumsum(rates)
    cdf /= cdf[-1]
    base = pop.base_error if base_error is None else base_error
    if base > 0.0:
        a = base * pop.error_concentration
        p_err = err_rng.beta(a, pop.error_concentration - a, pop.n_users)
    else:
        p_err = np.zeros(pop.n_users)
    offsets = pop.unit_latency_sigma * lat_rng.standard_normal(pop.n_users)
    return Units(cdf, p_err, offsets, bucket_rng.random(pop.n_users))


def assign(bucket: Array, shares: Sequence[float]) -> ArmArray:
    """Arm of each bucket: candidate j (1-based, layout order) on [s_1+…+s_{j−1}, s_1+…+s_j), else STABLE."""
    cum = np.cumsum(np.asarray(shares, dtype=np.float64))
    if cum.size and cum[-1] > 1.0 + 1e-12:
        raise ValueError(f"candidate shares {tuple(shares)} exceed 1")
    arm = np.searchsorted(cum, bucket, side="right") + 1
    return np.where(arm > cum.size, STABLE, arm).astype(np.int8)


def pair_rho(shares: Sequence[float], candidate: int) -> float:
    """Planned P(candidate) among the two compared arms, s_cand/(s_cand + s_stable); 0 if it gets nothing."""
    s_cand = float(shares[candidate - 1])
    s_stable = 1.0 - float(np.sum(shares))
    return s_cand / (s_cand + s_stable) if s_cand > 0.0 else 0.0


def profile_integral(t: Array, swing: float, period: float) -> Array:
    """G(t) = ∫₀ᵗ (1 + swing·sin(2πs/period)) ds."""
    if swing == 0.0:
        return t
    w = 2.0 * np.pi / period
    return t + swing / w * (1.0 - np.cos(w * t))


def invert_profile(s: Array, swing: float, period: float) -> Array:
    """t with G(t) = s (G strictly increasing for 0 ≤ swing < 1): Newton from t = s, then checked."""
    if swing == 0.0:
        return s
    if not 0.0 <= swing < 1.0:
        raise ValueError(f"traffic_swing {swing} must be in [0, 1)")
    w = 2.0 * np.pi / period
    t = s.copy()
    for _ in range(60):
        step = (profile_integral(t, swing, period) - s) / (1.0 + swing * np.sin(w * t))
        t -= step
        if float(np.max(np.abs(step), initial=0.0)) < 1e-9 * max(period, 1.0):
            return t
    raise RuntimeError("time-profile inversion did not converge")


@dataclass(slots=True)
class ArrivalStream:
    """Requests in arrival order, drawn chunk by chunk: (unit id, time in seconds)."""

    pop: Population
    units: Units
    gaps: np.random.Generator
    marks: np.random.Generator
    clock: float = 0.0
    """Operational time G(t) of the last arrival."""
    served: int = 0

    def take(self, n: int) -> tuple[IntArray, Array]:
        """The next `n` arrivals."""
        gaps = self.gaps.standard_exponential(n) / self.pop.requests_per_s
        s = self.clock + np.cumsum(gaps)
        if n:
            self.clock = float(s[-1])
        self.served += n
        unit = np.searchsorted(self.units.rate_cdf, self.marks.random(n), side="right")
        unit = np.minimum(unit, self.units.size - 1).astype(np.int64)
        return unit, invert_profile(s, self.pop.traffic_swing, self.pop.traffic_period_s)


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive requests served under one set of candidate shares."""

    unit: IntArray
    time: Array
    arm: ArmArray
    error: BoolArray
    latency_ms: Array
    shares: tuple[float, ...]
    """Candidate shares in force (layout order); stable has the rest."""

    @property
    def size(self) -> int:
        """Number of requests."""
        return int(self.unit.size)


def drift_factors(t: Array, sc: Scenario) -> tuple[Array, Array]:
    """(error factor, latency factor) at times `t`, shared by every arm."""
    if not sc.drift:
        return np.ones(t.size), np.ones(t.size)
    wave = np.sin(2.0 * np.pi * t / sc.drift_period_s)
    return 1.0 + 0.5 * wave, 1.0 + 0.2 * wave


@dataclass(slots=True)
class Traffic:
    """One simulated experiment's traffic: a population realisation, its arrival stream and the outcomes.

    Independent generators are spawned from `seed` for users, arrival gaps, arrival marks, per-request
    buckets, errors and latencies, each consumed in order: any split of the same requests into `take` calls
    gives the same rows, and the same seed gives the same users and arrival order whatever the scenario (rows
    of a bench compare on common random numbers).
    """

    pop: Population
    scenario: Scenario
    seed: int
    units: Units = field(init=False)
    stream: ArrivalStream = field(init=False)
    rngs: tuple[np.random.Generator, ...] = field(init=False)

    def __post_init__(self) -> None:
        users, gaps, marks, *rest = np.random.default_rng(self.seed).spawn(6)
        self.units = draw_units(self.pop, users, self.scenario.base_error)
        self.stream = ArrivalStream(self.pop, self.units, gaps, marks)
        self.rngs = tuple(rest)

    @property
    def served(self) -> int:
        """Requests drawn so far."""
        return self.stream.served

    def take(self, n: int, shares: Sequence[float], shadow: bool = False) -> Batch:
        """The next `n` requests, assigned with candidate `shares`; `shadow` applies the shadowing latency."""
        sc, pop, units = self.scenario, self.pop, self.units
        unit, t = self.stream.take(n)
        buckets, errors, latencies = self.rngs
        bucket = units.bucket[unit] if sc.sticky else buckets.random(n)
        arm = assign(bucket, shares)
        on_cand = arm != STABLE
        err_f, lat_f = drift_factors(t, sc)
        p = units.p_error[unit] * err_f
        p = np.where(on_cand, sc.error_mult * p + sc.error_add, p)
        error = errors.random(n) < np.clip(p, 0.0, 1.0)
        log_lat = (
            np.log(pop.latency_ms)
            + units.latency_offset[unit]
            + pop.latency_sigma * latencies.standard_normal(n)
            + np.log(lat_f)
            + np.where(on_cand, np.log(sc.latency_mult), 0.0)
        )
        if shadow:
            log_lat += np.log(sc.shadow_latency)
        return Batch(unit, t, arm, error, np.exp(log_lat), tuple(float(s) for s in shares))
