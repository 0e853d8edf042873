"""The shadow verdict (paired shadow data, docs/statistics.md): OK / FAIL / NOT_ENOUGH_DATA per shadow.

Usage: `judge = ShadowJudge(experiment, floor="stable-copy"); judge.observe(records); judge.verdicts()`

Per shadow variant, from the `shadows` entries of the outcome records, and separately for each primary variant
that answered (a shadow is compared with whichever serving variant answered the request: during a canary,
stable and candidate answers are two different references). The verdict and its figures (`pairs`,
`agreement`, `errors`, `latency_ratio`, ...) are those of the pairs whose primary was the stable variant
(named in `primary`); `by_primary` gives, for every primary variant that answered, its own pairs, agreement
with its anytime interval and error rate — never a figure blended across primaries. `skipped` counts the
requests that were not mirrored (`too_large`: over `spec.shadow.maxBodyBytes`), whoever answered them.
- Agreement: one Bernoulli per compared pair (`agree` present), anytime CS of `paired.agreement_verdict` at α.
  OK when the whole CS is above the requirement, FAIL when wholly below. With a `floor` variant (a second
  copy of the stable model: the noise floor) the requirement is relative: the candidate may disagree at most
  1 − agreement_min more often than the floor. Each CS is then at α/2; OK when candidate lower > floor upper −
  tolerance, FAIL when candidate upper < floor lower − tolerance. Comparing two separate CSs is conservative
  (a CS on the paired difference would be narrower) but keeps each error below α by the union bound.
- Errors: FAIL when the lower end of the shadow error rate's CS (at α, over the pairs where the primary
  answered and the copy was sent) exceeds the primary's observed error share + 1%. The share is an
  estimate, not a constant: the 1% tolerance absorbs its noise; this route is a guard, not an exact test,
  and with the agreement route a shadow at both boundaries could be failed wrongly with probability up to 2α.
  Copies outrider never sent (`dropped:*`, `internal`) are reported under `errors` but not held against it.
- Latency (informational): dᵢ = log(shadow latency_ms / primary upstream_ms) where neither side erred;
  geometric-mean ratio with its normal-mixture CS and the one-sided log e-value that the shadow is slower.

State is exact counts and sums added in record order, so any split of the records gives the same verdicts.
Unknown values are None, never NaN, so the result is JSON-able.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from analysis import paired
from analysis.columns import is_error
from analysis.mixtures import bernoulli_cs
from analysis.paired import PairedTally
from experiments.model import Experiment
from experiments.outcome import OutcomeRecord

DEFAULT_REQUIREMENT = 0.99
ERROR_TOLERANCE = 0.01
"""How much above the primary's error share the shadow's error rate may be before it FAILs."""
N_OPT = 5000.0
"""Pairs at which the CSs are tightest; tuning costs power, never validity."""
MIN_MS = 1e-3
"""Latency resolution of the records (ms)."""
NOT_SENT = ("dropped:", "internal")
"""Error classes meaning outrider itself never sent the copy."""
VERDICTS = {"OK": "OK", "FAIL": "FAIL", "UNDECIDED": "NOT_ENOUGH_DATA"}


@dataclass(slots=True)
class _Tally:
    """One shadow variant's running counts (mutable: updated record by record, in order)."""

    pairs: int = 0
    primary_errors: int = 0
    judged: int = 0
    """Pairs where the primary answered and the copy was sent: the shadow error rate's denominator."""
    judged_errors: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    n_agree: int = 0
    agree: int = 0
    n_d: int = 0
    sum_d: float = 0.0
    sum_d2: float = 0.0
    n_exceed: int = 0
    exceed: int = 0
    n_overlap: int = 0
    sum_overlap: float = 0.0
    skipped: dict[str, int] = field(default_factory=dict)

    def add(self, primary_ok: bool, primary_ms: float, entry: dict[str, Any]) -> None:
        """Count one pair."""
        self.pairs += 1
        self.primary_errors += not primary_ok
        status, error = int(entry.get("status", 0)), entry.get("error")
        if entry.get("skipped") is not None:
            reason = str(entry["skipped"])
            self.skipped[reason] = self.skipped.get(reason, 0) + 1
        failed = is_error(status, error)
        if failed:
            name = str(error) if error is not None else f"status_{status}"
            self.errors[name] = self.errors.get(name, 0) + 1
        if primary_ok and not (error is not None and str(error).startswith(NOT_SENT)):
            self.judged += 1
            self.judged_errors += failed
        if entry.get("agree") is not None:
            self.n_agree += 1
            self.agree += bool(entry["agree"])
        if entry.get("exceed") is not None:
            self.n_exceed += 1
            self.exceed += bool(entry["exceed"])
        if entry.get("overlap") is not None:  # `text`: token overlap, reported beside the exact-match rate
            self.n_overlap += 1
            self.sum_overlap += float(entry["overlap"])
        if primary_ok and not failed and "latency_ms" in entry:
            # Records keep latencies to the microsecond: below that a ratio means nothing (and log(0) fails).
            d = math.log(max(float(entry["latency_ms"]), MIN_MS) / max(primary_ms, MIN_MS))
            self.n_d += 1
            self.sum_d += d
            self.sum_d2 += d * d

    def paired(self) -> PairedTally:
        """The counts as `analysis.paired` state."""
        return PairedTally(
            n_d=self.n_d, sum_d=self.sum_d, sum_d2=self.sum_d2, n_agree=self.n_agree, agree=self.agree
        )


class ShadowJudge:
    """Accumulates paired shadow data and gives a verdict per shadow variant (the floor excluded), judged on
    the pairs whose primary was the stable variant, with every primary's agreement beside it."""

    def __init__(self, experiment: Experiment, alpha: float | None = None, floor: str | None = None) -> None:
        names = [v.name for v in experiment.shadows]
        if floor is not None and floor not in names:
            raise ValueError(f"floor {floor!r} is not a shadow variant of {experiment.name!r}: {names}")
        self.alpha = (
            alpha if alpha is not None else (experiment.analysis.alpha if experiment.analysis else 0.05)
        )
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        spec = experiment.shadow
        self.requirement = (
            spec.agreement_min if spec is not None and spec.agreement_min is not None else DEFAULT_REQUIREMENT
        )
        self.floor = floor
        self.primary = experiment.stable.name
        """The primary variant whose pairs decide the verdict."""
        self._roles = {v.name: v.role for v in experiment.serving}
        self._tallies: dict[str, dict[str, _Tally]] = {name: {} for name in names}
        """shadow variant → primary variant that answered → its pairs."""

    def observe(self, records: Sequence[OutcomeRecord]) -> None:
        """Add these records, in order; entries for variants the experiment does not shadow are ignored."""
        for rec in records:
            primary_ok = not is_error(rec.status, rec.error)
            for entry in rec.shadows:
                by_primary = self._tallies.get(str(entry.get("variant")))
                if by_primary is not None:
                    tally = by_primary.get(rec.variant)
                    if tally is None:
                        tally = by_primary[rec.variant] = _Tally()
                    tally.add(primary_ok, rec.upstream_ms, entry)

    def verdicts(self) -> dict[str, dict[str, Any]]:
        """Per shadow variant but the floor, in config order: verdict, reasons and the figures behind them."""
        return {name: self._verdict(by) for name, by in self._tallies.items() if name != self.floor}

    def _verdict(self, by_primary: dict[str, _Tally]) -> dict[str, Any]:
        out = self._judge(self._against_stable(by_primary))
        skipped: dict[str, int] = {}
        for t in by_primary.values():
            for reason, n in t.skipped.items():
                skipped[reason] = skipped.get(reason, 0) + n
        out["primary"] = self.primary
        out["by_primary"] = {
            name: self._summary(name, by_primary[name]) for name in self._ordered(by_primary)
        }
        out["skipped"] = dict(sorted(skipped.items()))
        return out

    def _against_stable(self, by_primary: dict[str, _Tally]) -> _Tally:
        return by_primary.get(self.primary) or _Tally()

    def _ordered(self, by_primary: dict[str, _Tally]) -> list[str]:
        """Primary variants in config order, then any the experiment no longer has (older records), sorted."""
        known = [name for name in self._roles if name in by_primary]
        return known + sorted(name for name in by_primary if name not in self._roles)

    def _summary(self, name: str, t: _Tally) -> dict[str, Any]:
        """One primary variant's pairs with this shadow: agreement with its anytime interval, error rate."""
        lo: float | None = None
        hi: float | None = None
        if t.n_agree:
            _, lo, hi = paired.agreement_verdict(t.paired(), self.requirement, self.alpha, N_OPT)
        return {
            "role": self._roles.get(name),
            "pairs": t.pairs,
            "agreement": {
                "estimate": t.agree / t.n_agree if t.n_agree else None,
                "ci_low": lo,
                "ci_high": hi,
                "n": t.n_agree,
            },
            "error_rate": t.judged_errors / t.judged if t.judged else None,
            **_overlap(t),
        }

    def _judge(self, t: _Tally) -> dict[str, Any]:
        agreement, verdict, reasons = self._agreement(t)
        error_rate = t.judged_errors / t.judged if t.judged else None
        if t.judged_errors:
            limit = t.primary_errors / t.pairs + ERROR_TOLERANCE
            lo = bernoulli_cs(float(t.judged_errors), float(t.judged), self.alpha, N_OPT)[0]
            if lo > limit:
                verdict = "FAIL"
                reasons.append(
                    f"error rate {error_rate:.4f} (CS low {lo:.4f}) above primary's share + 1% {limit:.4f}"
                )
        out: dict[str, Any] = {
            "verdict": verdict,
            "reasons": reasons,
            "pairs": t.pairs,
            "agreement": agreement,
            "latency_ratio": self._latency(t.paired()),
            "errors": dict(sorted(t.errors.items())),
            "error_rate": error_rate,
        }
        if t.n_exceed:
            lo, hi = bernoulli_cs(float(t.exceed), float(t.n_exceed), self.alpha, N_OPT)
            out["exceedance"] = {"rate": t.exceed / t.n_exceed, "ci_low": lo, "ci_high": hi, "n": t.n_exceed}
        return {**out, **_overlap(t)}

    def _agreement(self, t: _Tally) -> tuple[dict[str, Any], str, list[str]]:
        req, n = self.requirement, t.n_agree
        block: dict[str, Any] = {"estimate": t.agree / n if n else None, "requirement": req, "n": n}
        if n == 0:
            block |= {"ci_low": None, "ci_high": None}
            return block, "NOT_ENOUGH_DATA", [f"no compared pairs with {self.primary} (stable) yet"]
        if self.floor is None:
            raw, lo, hi = paired.agreement_verdict(t.paired(), req, self.alpha, N_OPT)
            block |= {"ci_low": lo, "ci_high": hi}
            where = {"OK": "above", "FAIL": "below", "UNDECIDED": "straddles"}[raw]
            return (
                block,
                VERDICTS[raw],
                [f"agreement with {self.primary} (stable) CS [{lo:.4f}, {hi:.4f}] {where} requirement {req}"],
            )
        f = self._against_stable(self._tallies[self.floor])
        _, lo, hi = paired.agreement_verdict(t.paired(), req, self.alpha / 2, N_OPT)
        _, f_lo, f_hi = paired.agreement_verdict(f.paired(), req, self.alpha / 2, N_OPT)
        tol = 1.0 - req
        block |= {"ci_low": lo, "ci_high": hi}
        block["floor"] = {
            "variant": self.floor,
            "estimate": f.agree / f.n_agree if f.n_agree else None,
            "ci_low": f_lo,
            "ci_high": f_hi,
            "n": f.n_agree,
            "tolerance": tol,
        }
        cs = (
            f"agreement with {self.primary} (stable) CS [{lo:.4f}, {hi:.4f}] vs floor CS [{f_lo:.4f}, "
            f"{f_hi:.4f}] − {tol:.4f}"
        )
        if lo > f_hi - tol:
            return block, "OK", [f"{cs}: within tolerance of the floor"]
        if hi < f_lo - tol:
            return block, "FAIL", [f"{cs}: worse than the floor by more than the tolerance"]
        return block, "NOT_ENOUGH_DATA", [f"{cs}: undecided"]

    def _latency(self, state: PairedTally) -> dict[str, Any]:
        c = paired.log_ratio_contrast(state)
        lo, hi = paired.log_ratio_interval(state, N_OPT, self.alpha)
        informative = math.isfinite(hi)
        return {
            "estimate": math.exp(c.mean) if c.n else None,
            "ci_low": lo if informative else None,
            "ci_high": hi if informative else None,
            "log_e_slower": paired.log_ratio_log_e(state, 0.0, N_OPT, self.alpha, "greater")
            if informative
            else None,
            "n": c.n,
        }


def _overlap(t: _Tally) -> dict[str, Any]:
    """`text` comparisons: the mean token overlap of the pairs (the verdict itself is on agreement)."""
    if not t.n_overlap:
        return {}
    return {"overlap": {"mean": t.sum_overlap / t.n_overlap, "n": t.n_overlap}}
