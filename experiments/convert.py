"""A validated experiment file (pydantic) as the frozen dataclasses the hot path reads.

Usage: `experiment = to_experiment(ExperimentFile.model_validate(data), source="canary.yaml")`
Call it only on a file that also passed `experiments.crossref.cross_check`.
"""

from __future__ import annotations

from experiments import model
from experiments.schema_models import Analysis, Assignment, ExperimentFile, Outcomes
from experiments.schema_shadow import Shadow
from experiments.schema_strategy import Strategy


def to_experiment(doc: ExperimentFile, source: str) -> model.Experiment:
    """The `Experiment` described by `doc`, read from `source`."""
    spec = doc.spec
    variants = tuple(
        model.Variant(v.name, v.role, v.upstream, v.grpc_upstream, v.served_model, v.version)
        for v in spec.variants
    )
    stable = next(v.name for v in variants if v.role == "stable")
    has_shadows = any(v.role == "shadow" for v in variants)
    return model.Experiment(
        name=doc.metadata.name,
        source=source,
        path_prefix=spec.match.path_prefix,
        variants=variants,
        unit=_unit(spec.assignment.unit),
        salt=spec.assignment.salt,
        strategy=_strategy(spec.strategy, stable),
        pins=_pins(spec.assignment),
        shadow=_shadow(spec.shadow or Shadow()) if spec.shadow is not None or has_shadows else None,
        analysis=_analysis(spec.analysis) if spec.analysis is not None else None,
        timeout_s=spec.timeout,
        stream_idle_timeout_s=spec.stream_idle_timeout,
        stream_timeout_s=spec.stream_timeout,
        max_body_bytes=spec.max_body_bytes,
        methods=frozenset(spec.match.methods),
        host=spec.match.host.lower() if spec.match.host else None,
        headers=tuple(sorted((k.lower(), v) for k, v in spec.match.headers.items())),
        outcomes=_outcomes(spec.outcomes) if spec.outcomes is not None else None,
        expose_variant=spec.expose_variant,
    )


def _unit(unit: str) -> model.UnitKey:
    if unit == "request":
        return model.UnitKey("request")
    kind, _, name = unit.partition(":")
    if kind == "header":
        return model.UnitKey("header", name.lower())
    return model.UnitKey("claim", name)


def _pins(assignment: Assignment) -> tuple[model.Pin, ...]:
    return tuple(model.Pin(p.header.lower(), p.value, p.variant) for p in assignment.pins)


def _strategy(strategy: Strategy, stable: str) -> model.Strategy:
    if strategy.canary is not None:
        canary = strategy.canary
        return model.CanaryStrategy(tuple(float(s) for s in canary.steps), canary.min_requests_per_step)
    if strategy.ab_test is not None:
        return model.ABStrategy({k: float(w) for k, w in strategy.ab_test.weights.items()})
    if strategy.shadow is not None:
        return model.ShadowOnlyStrategy()
    assert strategy.blue_green is not None, "cross_check guarantees exactly one strategy"
    return model.BlueGreenStrategy(strategy.blue_green.active or stable)


def _shadow(shadow: Shadow) -> model.ShadowSpec:
    return model.ShadowSpec(
        sample=shadow.sample,
        timeout_s=shadow.timeout,
        compare=shadow.compare.kind,
        agreement_min=shadow.compare.agreement_min,
        compare_options=shadow.compare.options(),
        noise_floor=shadow.noise_floor,
        require_ok=shadow.require_ok,
        mirror_methods=frozenset(shadow.mirror.methods),
        mirror_path_suffixes=tuple(shadow.mirror.path_suffixes),
        forward_headers=frozenset(name.lower() for name in shadow.forward_headers),
        max_body_bytes=shadow.max_body_bytes,
    )


def _analysis(analysis: Analysis) -> model.AnalysisSpec:
    return model.AnalysisSpec(
        interval_s=analysis.interval,
        alpha=analysis.alpha,
        max_requests=analysis.max_requests,
        on_inconclusive=analysis.on_inconclusive,
        feedback_window_s=analysis.feedback_window,
        max_units=analysis.max_units,
        max_duration_s=analysis.max_duration,
        unit_cap=analysis.unit_cap,
        slo=model.Slo(analysis.slo.error_rate, analysis.slo.p99_ms) if analysis.slo is not None else None,
        guardrails=tuple(
            model.MetricRule(g.metric, margin=g.margin, harm_margin=g.harm_margin, error_floor=g.error_floor)
            for g in analysis.guardrails
        ),
        goals=tuple(
            model.MetricRule(
                g.metric, direction=g.direction, min_effect=g.min_effect, range=(g.range[0], g.range[1])
            )
            for g in analysis.goals
        ),
    )


def _outcomes(outcomes: Outcomes) -> model.OutcomeRule:
    errors = frozenset(
        code
        for item in outcomes.error_statuses
        for code in (
            range(int(item[0]) * 100, int(item[0]) * 100 + 100) if item.endswith("xx") else (int(item),)
        )
    )
    return model.OutcomeRule(frozenset(outcomes.methods), tuple(outcomes.path_suffixes), errors)
