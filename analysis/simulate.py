"""Synthetic canary traffic for calibration tests and `stats_bench`: seeded, vectorised, no I/O.

Usage: `outcome = run_engine(policy, Scenario(error_mult=2.0), seed=1)` → (decision kind, requests, step)

Each request goes to the candidate with the current step's share ρ. Errors are Bernoulli with a base rate
(optionally drifting over time, with a shared incident) times `error_mult` on the candidate; latencies
are lognormal (median `latency_ms`, log-sd `latency_sigma`, drifting with the same profile) times
`latency_mult` on the candidate. Looks follow `look_points` (any cadence is valid for the tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from analysis import tally as tally_mod
from analysis.columns import Columns, make_columns
from analysis.policy import Policy
from analysis.rules import DecisionKind, decide
from analysis.tally import Tally, tracks_for

FINAL: frozenset[str] = frozenset({"ROLLBACK", "PROMOTE", "INCONCLUSIVE", "HOLD"})


@dataclass(frozen=True, slots=True)
class Scenario:
    """The truth a simulation draws from."""

    base_error: float = 0.01
    error_mult: float = 1.0
    latency_ms: float = 50.0
    latency_sigma: float = 0.5
    latency_mult: float = 1.0
    drift: bool = False
    """Diurnal ±50% on error rate and ±20% on latency (period 50k requests), and a 5× error incident."""
    max_total: int = 2_000_000


def drift_profile(t: np.ndarray, drift: bool) -> tuple[np.ndarray, np.ndarray]:
    """(error factor, latency factor) at request indices `t`, shared by both arms."""
    if not drift:
        return np.ones(t.size), np.ones(t.size)
    wave = np.sin(2 * np.pi * t / 50_000.0)
    incident = np.where((t % 200_000 > 30_000) & (t % 200_000 < 33_000), 5.0, 1.0)
    return (1.0 + 0.5 * wave) * incident, 1.0 + 0.2 * wave


def draw(rng: np.random.Generator, sc: Scenario, start: int, n: int, share: float) -> Columns:
    """`n` requests from index `start`, candidate share `share`."""
    t = np.arange(start, start + n, dtype=np.float64)
    err_f, lat_f = drift_profile(t, sc.drift)
    in_b = rng.random(n) < share
    p_err = np.minimum(sc.base_error * err_f * np.where(in_b, sc.error_mult, 1.0), 1.0)
    error = rng.random(n) < p_err
    log_lat = np.log(sc.latency_ms * lat_f) + sc.latency_sigma * rng.standard_normal(n)
    latency = np.exp(log_lat) * np.where(in_b, sc.latency_mult, 1.0)
    return make_columns(in_b, np.full(n, share), error, latency)


def look_points(first: int = 1000, dense_until: int = 20_000, mid_until: int = 100_000) -> Iterator[int]:
    """Total request counts at which to look: every 1k to 20k, every 5k to 100k, then every 20k."""
    n = first
    while True:
        yield n
        n += 1000 if n < dense_until else 5000 if n < mid_until else 20_000


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one simulated experiment ended."""

    kind: DecisionKind | str
    total: int
    """Requests (both arms) when it ended."""
    step: int
    candidate: int


def run_engine(
    policy: Policy,
    sc: Scenario,
    seed: int,
    shares: tuple[float, ...] | None = None,
    ramp_at: tuple[int, ...] = (),
) -> Outcome:
    """Simulate until a final decision (or `sc.max_total`).

    The candidate share follows `shares` (default: the policy's steps): ADVANCE moves to the next one, or,
    when `ramp_at` is given, the share moves at those total request counts whatever the engine says.
    """
    rng = np.random.default_rng(seed)
    shares = shares or tuple(s / 100.0 for s in policy.steps)
    tally, step, step_start, done = Tally(tracks_for(policy.metrics)), 0, 0, 0
    for point in look_points():
        if point > sc.max_total:
            break
        tally = tally_mod.update(tally, draw(rng, sc, done, point - done, shares[step]))
        done = point
        if ramp_at and step < len(ramp_at) and done >= ramp_at[step]:
            step, step_start = step + 1, tally.n_candidate
        d = decide(tally, policy, step, tally.n_candidate - step_start, {}, detail=False)
        if d.kind in FINAL:
            return Outcome(d.kind, done, step, tally.n_candidate)
        if d.kind == "ADVANCE" and not ramp_at:
            step, step_start = step + 1, tally.n_candidate
    return Outcome("CONTINUE", done, step, tally.n_candidate)
