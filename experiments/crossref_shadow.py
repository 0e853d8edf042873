"""Rules that tie the `shadow` section to the rest of an experiment file: there are shadow variants, the noise
floor is one of them, and `requireOk` has something that judges the shadows and a candidate to hold back.

Like `experiments.crossref`, which calls it, it reads the plain document and skips malformed parts (the
schema reports them). Usage: `findings = shadow_findings(spec, roles, complete=True)`
"""

from __future__ import annotations

from collections.abc import Mapping

from experiments.yamlmarks import Finding

_SHADOW = ("spec", "shadow")


def shadow_findings(spec: Mapping[str, object], roles: Mapping[str, str], *, complete: bool) -> list[Finding]:
    """Every problem of `spec.shadow` against the rest of `spec`.

    `roles`: name -> role of the readable variants; `complete`: every variant is readable, so names and role
    counts can be trusted (the rules that need them are skipped otherwise).
    """
    if "shadow" not in spec:
        return []
    shadows = [name for name, role in roles.items() if role == "shadow"]
    if complete and not shadows:
        return [Finding(_SHADOW, "shadow settings but no variant has role: shadow", key=True)]
    shadow = spec["shadow"]
    if not isinstance(shadow, dict):
        return []
    findings = []
    floor = shadow.get("noiseFloor")
    if isinstance(floor, str) and complete:
        findings += _noise_floor(floor, shadows)
    if shadow.get("requireOk") is True:
        findings += _require_ok(spec, shadow, roles, complete=complete)
    return findings


def _noise_floor(floor: str, shadows: list[str]) -> list[Finding]:
    where = (*_SHADOW, "noiseFloor")
    if floor not in shadows:
        return [Finding(where, f"{floor!r} is not a shadow variant (shadow variants: {', '.join(shadows)})")]
    if len(shadows) < 2:
        message = (
            "a noise floor needs at least 2 shadow variants (the floor and one to judge against it),"
            f" found {len(shadows)}"
        )
        return [Finding(where, message)]
    return []


def _require_ok(
    spec: Mapping[str, object], shadow: Mapping[str, object], roles: Mapping[str, str], *, complete: bool
) -> list[Finding]:
    where = (*_SHADOW, "requireOk")
    findings = []
    if spec.get("analysis") is None:
        findings.append(
            Finding(where, "requireOk needs an analysis section (spec.analysis) to judge the shadows")
        )
    compare = shadow.get("compare", {"kind": "none"})  # absent: no comparison
    if isinstance(compare, dict) and compare.get("kind") == "none":
        message = "requireOk needs a comparison: set compare.kind to something other than none"
        findings.append(Finding(where, message))
    strategy = spec.get("strategy")
    chosen = [
        key for key in ("canary", "abTest", "blueGreen") if isinstance(strategy, dict) and key in strategy
    ]
    if chosen == ["blueGreen"]:
        message = (
            "requireOk needs a canary or abTest strategy (blueGreen has no candidate share to hold back)"
        )
        findings.append(Finding(where, message))
    elif complete and "candidate" not in roles.values():
        findings.append(Finding(where, "requireOk needs a variant with role: candidate"))
    return findings
