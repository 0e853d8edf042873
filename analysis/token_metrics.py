"""Token metrics of LLM completions: the latency tests, run on another measure of the records that carry it.

Usage (analysis.engine.Judge does this):
    tokens = TokenTallies(policy)                       # nothing kept unless a rule names a token metric
    cols = from_records(records, ..., measures=tokens.measures); tokens.add(cols)
    ev = tokens.wrap(main_evidence)                     # answers token rules from their own tallies

| metric | test | measure, per record |
|---|---|---|
| `ttft_gmean` | latency_gmean's | `ttft_ms` |
| `ttft_p99` | latency_p99's | `ttft_ms` |
| `itl_gmean` | latency_gmean's | `itl_ms` |
| `tokens_per_s` | latency_gmean's | `latency_ms / output_tokens` (ms per output token) |

`tokens_per_s` is judged as its inverse, the time per output token, so that like every guardrail a ratio above
1 is worse: its estimate and bounds are stable/candidate token rates, and `margin: 1.1` means "the candidate's
token rate is at least stable's / 1.1".

Records without the measure are left out of that metric, explicitly: errors (error_rate judges those; a cut
stream's tokens are partial), answers that were not streamed (no `ttft_ms`, `itl_ms`), streams without content
(no `ttft_ms`), with one content event (no `itl_ms`), without `output_tokens` ≥ 1 (no `tokens_per_s`). Each
measure has its own tally (per request or per unit, as the experiment's unit says), so the tests, their
burn-ins and their validity are exactly the latency tests' on the records that carry the measure; and a rule
may not pass before `MIN_EXPOSURE` records per arm carry its measure (so an arm that stops streaming cannot
pass a ttft guardrail by having no ttft). The comparison is conditional on carrying the measure: if one arm
carries it much less often than the other, the report's record counts per metric show it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Literal

import numpy as np

from analysis.bounds import Scale
from analysis.columns import Columns, make_columns
from analysis.metrics_eval import Evidence, Side
from analysis.policy import MIN_EXPOSURE, Policy
from analysis.request_evidence import RequestEvidence
from analysis.tally import Tally, tracks_for, update
from analysis.unit_evidence import UnitEvidence
from analysis.unit_tally import UnitTally
from experiments.model import MetricRule

MEASURE_OF = {
    "ttft_gmean": "ttft_ms",
    "ttft_p99": "ttft_ms",
    "itl_gmean": "itl_ms",
    "tokens_per_s": "ms_per_token",
}
"""The record measure each token metric reads."""
BASE_OF = {
    "ttft_gmean": "latency_gmean",
    "ttft_p99": "latency_p99",
    "itl_gmean": "latency_gmean",
    "tokens_per_s": "latency_gmean",
}
"""The latency metric whose tests each token metric runs."""
FIELD_NAME = {"ttft_ms": "ttft_ms", "itl_ms": "itl_ms", "ms_per_token": "output_tokens"}


def measures_for(metrics: Iterable[str]) -> tuple[str, ...]:
    """The measures these metric names read, in a fixed order."""
    wanted = {MEASURE_OF[m] for m in metrics if m in MEASURE_OF}
    return tuple(m for m in ("ttft_ms", "itl_ms", "ms_per_token") if m in wanted)


def _subset(cols: Columns, measure: str) -> Columns:
    """The rows of `cols` that carry `measure`, with the measure in the latency column."""
    values = cols.extra[measure]
    keep = np.isfinite(values) & (values > 0.0)
    unit = None if cols.unit is None else cols.unit[keep]
    n = int(np.count_nonzero(keep))
    return make_columns(cols.in_b[keep], cols.rho[keep], np.zeros(n, np.bool_), values[keep], None, unit)


class TokenTallies:
    """One tally per measure the policy's rules read (per request, or per unit with a sticky unit)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.measures = measures_for(policy.metrics)
        bases: dict[str, list[str]] = {m: [] for m in self.measures}
        for metric in policy.metrics:
            if metric in MEASURE_OF:
                bases[MEASURE_OF[metric]].append(BASE_OF[metric])
        self.requests = {m: Tally(tracks_for(b)) for m, b in bases.items()}
        self.units: dict[str, UnitTally] = {}
        if policy.unit_mode:
            self.units = {
                m: UnitTally(policy.unit_cap, 0.99 if "latency_p99" in b else None) for m, b in bases.items()
            }

    def add(self, cols: Columns) -> None:
        """Add the rows of `cols` that carry each measure (`cols.extra` must hold them)."""
        for m in self.measures:
            sub = _subset(cols, m)
            if sub.size == 0:
                continue
            if self.policy.unit_mode:
                assert sub.unit is not None, "per-unit analysis needs the unit of every row"
                self.units[m].add(sub.unit, sub.in_b, sub.rho, sub.error, sub.latency_ms)
            else:
                self.requests[m] = update(self.requests[m], sub)

    def wrap(self, main: Evidence) -> Evidence:
        """`main`, answering token rules from this tally's evidence."""
        if not self.measures:
            return main
        subs: dict[str, Evidence] = {}
        for m in self.measures:
            if self.policy.unit_mode:
                subs[m] = UnitEvidence(self.units[m], self.policy)
            else:
                subs[m] = RequestEvidence(self.requests[m], self.policy.tuning)
        return TokenEvidence(main, subs)


class TokenEvidence:
    """An `Evidence` that sends token rules to their measure's evidence (as the latency rule they are)."""

    def __init__(self, main: Evidence, subs: Mapping[str, Evidence]) -> None:
        self.main, self.subs = main, subs
        self.unit: Literal["request", "unit"] = main.unit
        self.n_stable, self.n_candidate = main.n_stable, main.n_candidate
        self._bases: dict[MetricRule, MetricRule] = {}

    def _pick(self, rule: MetricRule) -> tuple[Evidence, MetricRule]:
        measure = MEASURE_OF.get(rule.metric)
        if measure is None:
            return self.main, rule
        base = self._bases.get(rule)
        if base is None:
            base = self._bases[rule] = replace(rule, metric=BASE_OF[rule.metric])
        return self.subs[measure], base

    def log_e(self, rule: MetricRule, c: float, side: Side, alpha: float, role: str) -> float:
        """The latency test of the rule's measure."""
        ev, base = self._pick(rule)
        return ev.log_e(base, c, side, alpha, role)

    def estimate(self, rule: MetricRule) -> float:
        """Candidate/stable ratio of the measure."""
        ev, base = self._pick(rule)
        return ev.estimate(base)

    def harm_wait(self, rule: MetricRule) -> str | None:
        """The latency test's wait, counted on the records that carry the measure."""
        ev, base = self._pick(rule)
        return ev.harm_wait(base)

    def pass_block(self, rule: MetricRule) -> str | None:
        """The latency test's block, and too few records carrying the measure."""
        ev, base = self._pick(rule)
        if ev is not self.main and min(ev.n_stable, ev.n_candidate) < MIN_EXPOSURE:
            field = FIELD_NAME[MEASURE_OF[rule.metric]]
            return (
                f"{ev.n_stable} stable and {ev.n_candidate} candidate records carry {field}; "
                f"no promotion before {MIN_EXPOSURE} per arm (errors and records without it are left out)"
            )
        return ev.pass_block(base)

    def scale(self, rule: MetricRule) -> Scale:
        """Where its bounds are searched (ratios)."""
        ev, base = self._pick(rule)
        return ev.scale(base)
