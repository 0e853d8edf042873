"""Rules that tie sections of an experiment file together: variant names and roles against the strategy, pins
and shadow settings (those in `experiments.crossref_shadow`).

They read the plain document rather than the validated model, so that they are reported together with field
errors elsewhere (a model validator would not run while any field is broken); parts that are malformed are
skipped here, since the schema reports them. Usage: `findings = cross_check(data)`
"""

from __future__ import annotations

from dataclasses import dataclass

from experiments.crossref_shadow import shadow_findings
from experiments.metrics import TOKEN_METRICS
from experiments.yamlmarks import Finding

_STRATEGIES = ("canary", "abTest", "blueGreen", "shadow")
_ROLES = ("stable", "candidate", "shadow")


@dataclass(frozen=True, slots=True)
class _Variants:
    """The variants that are well-formed enough to reason about (name and role readable)."""

    names: dict[str, str]
    """name -> role, for variants whose name is a string and role is known."""
    complete: bool
    """Every variant has a string name and a known role, so names and role counts can be trusted."""

    def serving(self) -> list[str]:
        return [name for name, role in self.names.items() if role != "shadow"]

    def with_role(self, role: str) -> list[str]:
        return [name for name, r in self.names.items() if r == role]


def _dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def cross_check(data: object) -> list[Finding]:
    """Every cross-section problem in the document `data` (as read from YAML)."""
    spec = _dict(_dict(data).get("spec"))
    raw_variants = spec.get("variants")
    if not isinstance(raw_variants, list):
        return []
    findings = _duplicate_names(raw_variants)
    variants = _readable(raw_variants)
    findings += _role_counts(variants)
    strategy = spec.get("strategy")
    if isinstance(strategy, dict):
        findings += _strategy(strategy, variants)
    findings += _pins(_dict(spec.get("assignment")).get("pins"), variants)
    findings += _unit_metrics(_dict(spec.get("assignment")).get("unit"), _dict(spec.get("analysis")))
    findings += shadow_findings(spec, variants.names, complete=variants.complete)
    return findings


PER_UNIT_METRICS = ("error_rate", "latency_gmean", "latency_p99", "reward_mean", *TOKEN_METRICS)
"""Metrics the unit-level analysis judges (a sticky unit makes the unit the observation)."""
PER_REQUEST_ONLY = ("latency_mean", "latency_p50")


def _unit_metrics(unit: object, analysis: dict[str, object]) -> list[Finding]:
    if not isinstance(unit, str) or unit == "request":
        return []
    findings = []
    for section in ("guardrails", "goals"):
        rules = analysis.get(section)
        for i, rule in enumerate(rules if isinstance(rules, list) else []):
            metric = _dict(rule).get("metric")
            if metric in PER_REQUEST_ONLY:
                message = (
                    f"{metric} is judged per request only; with unit {unit!r} use one of "
                    f"{', '.join(PER_UNIT_METRICS)} (or unit: request)"
                )
                findings.append(Finding(("spec", "analysis", section, i, "metric"), message))
    return findings


def _duplicate_names(raw: list[object]) -> list[Finding]:
    first: dict[str, int] = {}
    findings = []
    for i, item in enumerate(raw):
        name = _dict(item).get("name")
        if not isinstance(name, str):
            continue
        if name in first:
            message = f"duplicate variant name {name!r} (also spec.variants.{first[name]}.name)"
            findings.append(Finding(("spec", "variants", i, "name"), message))
        else:
            first[name] = i
    return findings


def _readable(raw: list[object]) -> _Variants:
    names: dict[str, str] = {}
    complete = True
    for item in raw:
        name, role = _dict(item).get("name"), _dict(item).get("role")
        complete = complete and isinstance(name, str) and role in _ROLES
        if isinstance(name, str) and isinstance(role, str) and role in _ROLES:
            names.setdefault(name, role)
    return _Variants(names, complete)


def _role_counts(variants: _Variants) -> list[Finding]:
    if not variants.complete:
        return []
    stable = variants.with_role("stable")
    if len(stable) == 1:
        return []
    message = (
        f"more than one stable variant ({', '.join(stable)})"
        if stable
        else "no stable variant: exactly one variant needs role: stable"
    )
    return [Finding(("spec", "variants"), message, key=True)]


def _strategy(strategy: dict[str, object], variants: _Variants) -> list[Finding]:
    chosen = [key for key in _STRATEGIES if key in strategy]
    if len(chosen) != 1:
        got = " and ".join(chosen) if chosen else "none"
        message = f"choose exactly one of canary, abTest, blueGreen, shadow (got {got})"
        return [Finding(("spec", "strategy"), message, key=True)]
    if not variants.complete:
        return []
    section = _dict(strategy[chosen[0]])
    if chosen[0] == "canary":
        return _canary(variants)
    if chosen[0] == "abTest":
        return _ab_test(section.get("weights"), variants)
    if chosen[0] == "shadow":
        return _shadow_only(variants)
    return _blue_green(section.get("active"), variants)


def _shadow_only(variants: _Variants) -> list[Finding]:
    where = ("spec", "strategy", "shadow")
    findings = []
    if not variants.with_role("shadow"):
        findings.append(
            Finding(where, "a shadow-only experiment needs at least one variant with role: shadow", key=True)
        )
    if variants.with_role("candidate"):
        message = "a shadow-only experiment serves only stable: use role: shadow, not candidate"
        findings.append(Finding(where, message, key=True))
    return findings


def _canary(variants: _Variants) -> list[Finding]:
    count = len(variants.with_role("candidate"))
    if count == 1:
        return []
    message = f"a canary needs exactly one variant with role: candidate, found {count}"
    return [Finding(("spec", "strategy", "canary"), message, key=True)]


def _ab_test(weights: object, variants: _Variants) -> list[Finding]:
    where = ("spec", "strategy", "abTest")
    serving = variants.serving()
    findings = []
    if len(serving) < 2:
        message = f"an A/B test needs at least 2 serving variants, found {len(serving)}"
        findings.append(Finding(where, message, key=True))
    if not isinstance(weights, dict):
        return findings
    for name in weights:
        reason = _not_serving(name, variants)
        if reason is not None:
            findings.append(Finding((*where, "weights", name), f"{reason}, cannot take a weight", key=True))
    missing = [name for name in serving if name not in weights]
    if missing:
        message = f"no weight for serving variant{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        findings.append(Finding((*where, "weights"), message))
    return findings


def _not_serving(name: object, variants: _Variants) -> str | None:
    """Why `name` cannot receive traffic, or None if it is a serving variant."""
    role = variants.names.get(name) if isinstance(name, str) else None
    if role is None:
        return f"unknown variant {name!r} (serving variants: {', '.join(variants.serving())})"
    if role == "shadow":
        return f"variant {name!r} is a shadow"
    return None


def _blue_green(active: object, variants: _Variants) -> list[Finding]:
    if not isinstance(active, str):
        return []
    reason = _not_serving(active, variants)
    if reason is None:
        return []
    return [Finding(("spec", "strategy", "blueGreen", "active"), f"{reason}, cannot be active")]


def _pins(pins: object, variants: _Variants) -> list[Finding]:
    if not isinstance(pins, list) or not variants.complete:
        return []
    findings = []
    for i, pin in enumerate(pins):
        target = _dict(pin).get("variant")
        reason = _not_serving(target, variants) if isinstance(target, str) else None
        if reason is not None:
            where = ("spec", "assignment", "pins", i, "variant")
            findings.append(Finding(where, f"{reason}, cannot be pinned"))
    return findings
