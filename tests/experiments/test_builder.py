"""The experiment-file builder: every shape it writes is read by the real loader as the experiment meant.

The examples are rebuilt with it and must load to the same experiment as the files themselves.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from experiments.builder import (
    ABTest,
    Analysis,
    BlueGreen,
    Canary,
    Compare,
    ExperimentDoc,
    Goal,
    Guardrail,
    Mirror,
    Outcomes,
    Pin,
    Shadow,
    ShadowOnly,
    Slo,
    Variant,
    dump,
)
from experiments.config import ConfigError, load_experiment, load_experiment_text
from experiments.model import BlueGreenStrategy, Experiment

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STABLE, CANDIDATE, SHADOW = "http://127.0.0.1:9001", "http://127.0.0.1:9002", "http://127.0.0.1:9003"
DIGITS = (Variant.stable(STABLE), Variant.candidate(CANDIDATE), Variant.shadow(SHADOW, "int8"))


def loaded(doc: ExperimentDoc) -> Experiment:
    return load_experiment_text(doc.yaml(), "built.yaml")


def same_as_example(doc: ExperimentDoc, example: str) -> None:
    want = load_experiment(EXAMPLES / example)
    assert dataclasses.replace(loaded(doc), source=want.source) == want


def test_the_canary_example() -> None:
    guardrails = (
        Guardrail("error_rate", 1.2),
        Guardrail("latency_gmean", 1.05),
        Guardrail("latency_p99", 1.10),
    )
    doc = ExperimentDoc(
        "digits-canary",
        DIGITS,
        Canary((5, 10, 25, 50), min_requests_per_step=2000),
        prefix="/v2/models/digits",
        salt="digits-2026-11",
        shadow=Shadow(sample=1.0, timeout="1s", compare=Compare("oip-top1", agreement_min=0.99)),
        analysis=Analysis(
            guardrails, interval="1s", alpha=0.05, max_requests=200000, on_inconclusive="rollback"
        ),
    )
    same_as_example(doc, "canary.yaml")


def test_the_ab_test_example() -> None:
    doc = ExperimentDoc(
        "ranker-ab",
        (Variant("a", "stable", "http://127.0.0.1:9101"), Variant("b", "candidate", "http://127.0.0.1:9102")),
        ABTest({"a": 50, "b": 50}),
        prefix="/v2/models/ranker",
        unit="claim:sub",
        salt="ranker-ab-1",
        analysis=Analysis(
            (Guardrail("error_rate", 1.2), Guardrail("latency_p99", 1.10)),
            (Goal("reward_mean", "increase", min_effect=0.0),),
            interval="5s",
            max_requests=500000,
            on_inconclusive="hold",
        ),
    )
    same_as_example(doc, "ab-test.yaml")


def test_the_shadow_only_example() -> None:
    doc = ExperimentDoc(
        "digits-int8-shadow",
        (DIGITS[0], DIGITS[2]),
        ShadowOnly(),
        prefix="/v2/models/digits",
        shadow=Shadow(sample=1.0, timeout="1s", compare=Compare("oip-top1", agreement_min=0.99)),
    )
    same_as_example(doc, "shadow-only.yaml")


def test_the_llm_example() -> None:
    urls = ("http://127.0.0.1:8001", "http://127.0.0.1:8002", "http://127.0.0.1:8003")
    metrics = ("latency_gmean", "ttft_gmean", "itl_gmean", "tokens_per_s")
    doc = ExperimentDoc(
        "llm-canary",
        (Variant.stable(urls[0]), Variant.candidate(urls[1]), Variant.shadow(urls[2], "distilled")),
        Canary((5, 25, 50), min_requests_per_step=1000),
        prefix="/v1",
        salt="llm-2026-12",
        stream_idle_timeout="30s",
        stream_timeout="10m",
        shadow=Shadow(
            sample=0.1,
            timeout="60s",
            mirror=Mirror(path_suffixes=("/v1/chat/completions", "/v1/completions")),
            compare=Compare("text", agreement_min=0.9),
        ),
        analysis=Analysis(
            (Guardrail("error_rate", 1.2), *(Guardrail(m, 1.10) for m in metrics)), max_requests=100000
        ),
    )
    same_as_example(doc, "llm-canary.yaml")


def test_blue_green_with_its_match_pins_outcomes_and_limits() -> None:
    doc = ExperimentDoc(
        "bg",
        (
            Variant.stable(STABLE, "blue", model="digits-v1", version="3"),
            Variant.candidate(CANDIDATE, "green"),
        ),
        BlueGreen(active="green"),
        methods=("POST",),
        host="models.internal",
        headers={"seldon-model": "digits"},
        unit="request",
        pins=(Pin("x-pin", "qa", "blue"),),
        analysis=Analysis(
            slo=Slo(error_rate=0.01, p99_ms=250.0), max_units=500, max_duration="1h", unit_cap=50
        ),
        timeout="500ms",
        max_body_bytes=2000,
        expose_variant=False,
        outcomes=Outcomes(methods=("POST",), path_suffixes=("/infer",), error_statuses=("4xx", "5xx")),
        labels={"team": "ml"},
    )
    exp = loaded(doc)
    assert isinstance(exp.strategy, BlueGreenStrategy)
    assert exp.strategy.active == "green"
    assert (exp.methods, exp.host, exp.headers) == (
        frozenset({"POST"}),
        "models.internal",
        (("seldon-model", "digits"),),
    )
    assert (exp.variants[0].model, exp.variants[0].version, exp.unit.kind, exp.salt) == (
        "digits-v1",
        "3",
        "request",
        "bg",
    )
    assert exp.pins[0].variant == "blue"
    assert exp.analysis is not None
    assert exp.analysis.slo is not None
    assert exp.analysis.slo.p99_ms == 250.0
    assert (exp.analysis.max_units, exp.analysis.max_duration_s, exp.analysis.unit_cap) == (500, 3600.0, 50)
    assert (exp.timeout_s, exp.max_body_bytes, exp.expose_variant) == (0.5, 2000, False)
    assert exp.outcomes is not None
    assert exp.outcomes.error_statuses == frozenset(range(400, 600))


def test_shadow_options_and_grpc_upstreams() -> None:
    doc = ExperimentDoc(
        "numeric",
        (Variant.stable(STABLE), DIGITS[1], Variant.shadow(SHADOW, grpc_upstream="127.0.0.1:9013")),
        analysis=Analysis(),
        shadow=Shadow(
            compare=Compare("oip-numeric", agreement_min=0.9, output="probabilities", atol=1e-4, rtol=0.0),
            mirror=Mirror(methods=("POST", "PUT")),
            require_ok=True,
            max_body_bytes=4096,
            forward_headers=("authorization",),
        ),
    )
    exp = loaded(doc)
    assert exp.variants[2].grpc_upstream == "127.0.0.1:9013"
    assert exp.shadow is not None
    assert (exp.shadow.compare, exp.shadow.compare_options) == (
        "oip-numeric",
        {"output": "probabilities", "atol": 1e-4, "rtol": 0.0},
    )
    assert (exp.shadow.mirror_methods, exp.shadow.require_ok, exp.shadow.max_body_bytes) == (
        frozenset({"POST", "PUT"}),
        True,
        4096,
    )
    assert exp.shadow.forward_headers == frozenset({"authorization"})


def test_a_goal_with_a_range_and_a_feedback_window() -> None:
    analysis = Analysis(goals=(Goal("reward_mean", min_effect=0.1, range=(0.0, 5.0)),), feedback_window="1s")
    exp = loaded(ExperimentDoc("rewarded", DIGITS[:2], analysis=analysis))
    assert exp.analysis is not None
    assert exp.analysis.goals[0].range == (0.0, 5.0)
    assert exp.analysis.feedback_window_s == 1.0


def test_empty_sections_are_written_and_unset_fields_are_not() -> None:
    data = ExperimentDoc("x", DIGITS[:2], analysis=Analysis()).data()
    assert data["spec"]["analysis"] == {}  # present and empty: decisions on, every default
    assert "shadow" not in data["spec"]
    assert "timeout" not in data["spec"]
    assert data["spec"]["strategy"] == {"canary": {"steps": [10, 25, 50]}}
    assert loaded(ExperimentDoc("x", DIGITS[:2], analysis=Analysis())).analysis is not None
    assert loaded(ExperimentDoc("x", DIGITS[:2])).analysis is None


def test_copies_change_one_thing() -> None:
    doc = ExperimentDoc("split", DIGITS[:2])
    assert loaded(doc.with_(unit="claim:sub")).unit.name == "sub"
    assert [v.name for v in loaded(doc.adding(DIGITS[2])).variants] == ["stable", "candidate", "int8"]
    assert loaded(doc.with_(extra={"streamTimeout": "5s"})).stream_timeout_s == 5.0
    assert loaded(doc.with_(prefix="/v2/<b>&'\"")).path_prefix == "/v2/<b>&'\""  # quoted as YAML needs


def test_a_broken_file_is_written_from_changed_data_and_refused_by_the_loader() -> None:
    data = ExperimentDoc("split", DIGITS[:2]).data()
    data["spec"]["assignment"]["sal"] = data["spec"]["assignment"].pop("salt")
    with pytest.raises(ConfigError, match=r"built\.yaml:.*assignment"):
        load_experiment_text(dump(data), "built.yaml")
