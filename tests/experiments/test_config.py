"""Loading valid experiment files: the examples, the Experiment they become, defaults, and sets of files."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.config import (
    ConfigError,
    ConfigProblem,
    check_file,
    check_files,
    load_experiment,
    load_experiment_text,
    load_experiments,
)
from experiments.model import (
    ABStrategy,
    BlueGreenStrategy,
    CanaryStrategy,
    MetricRule,
    Pin,
    ShadowSpec,
    UnitKey,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

MINIMAL = """\
apiVersion: outrider.dev/v1alpha1
kind: Experiment
metadata: {name: minimal}
spec:
  match: {pathPrefix: /v2/models/m}
  variants:
    - {name: blue, role: stable, upstream: http://127.0.0.1:9001/}
    - {name: green, role: candidate, upstream: "https://models.internal:8443/base"}
  assignment: {unit: request, salt: x}
  strategy:
    blueGreen: {}
"""


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    assert check_file(path) == []


def test_the_examples_are_there() -> None:
    assert {p.name for p in EXAMPLES.glob("*.yaml")} >= {"canary.yaml", "ab-test.yaml", "shadow-only.yaml"}


def test_canary_example_becomes_the_right_experiment() -> None:
    exp = load_experiment(EXAMPLES / "canary.yaml")
    assert exp.name == "digits-canary"
    assert exp.source == str(EXAMPLES / "canary.yaml")
    assert exp.path_prefix == "/v2/models/digits"
    assert [(v.name, v.role, v.upstream) for v in exp.variants] == [
        ("stable", "stable", "http://127.0.0.1:9001"),
        ("candidate", "candidate", "http://127.0.0.1:9002"),
        ("int8", "shadow", "http://127.0.0.1:9003"),
    ]
    assert exp.unit == UnitKey("header", "x-user-id")
    assert exp.salt == "digits-2026-11"
    assert exp.strategy == CanaryStrategy(steps=(5.0, 10.0, 25.0, 50.0), min_requests_per_step=2000)
    assert exp.shadow == ShadowSpec(sample=1.0, timeout_s=1.0, compare="oip-top1", agreement_min=0.99)
    assert exp.analysis is not None
    assert exp.analysis.interval_s == 1.0
    assert exp.analysis.alpha == 0.05
    assert exp.analysis.max_requests == 200_000
    assert exp.analysis.on_inconclusive == "rollback"
    assert exp.analysis.guardrails == (
        MetricRule("error_rate", margin=1.2),
        MetricRule("latency_gmean", margin=1.05),
        MetricRule("latency_p99", margin=1.10),
    )
    assert exp.analysis.goals == ()
    assert (exp.timeout_s, exp.max_body_bytes, exp.methods) == (30.0, 10 * 1024 * 1024, frozenset())


def test_ab_example_becomes_the_right_experiment() -> None:
    exp = load_experiment(EXAMPLES / "ab-test.yaml")
    assert exp.strategy == ABStrategy(weights={"a": 50.0, "b": 50.0})
    assert exp.unit == UnitKey("claim", "sub")
    assert exp.shadow is None
    assert exp.analysis is not None
    assert exp.analysis.interval_s == 5.0
    assert exp.analysis.on_inconclusive == "hold"
    assert exp.analysis.goals == (MetricRule("reward_mean", direction="increase", min_effect=0.0),)
    assert [v.name for v in exp.serving] == ["a", "b"]


def test_defaults_and_normalisation() -> None:
    exp = load_experiment_text(MINIMAL, "minimal.yaml")
    assert exp.strategy == BlueGreenStrategy(active="blue")  # default: the stable variant
    assert exp.unit == UnitKey("request", None)
    assert exp.variant("blue").upstream == "http://127.0.0.1:9001"  # trailing '/' removed
    assert exp.variant("green").upstream == "https://models.internal:8443/base"
    assert exp.shadow is None
    assert exp.analysis is None
    assert exp.pins == ()


def test_optional_fields() -> None:
    text = MINIMAL.replace("blueGreen: {}", "blueGreen: {active: green}") + (
        "  timeout: 2.5s\n"
        "  maxBodyBytes: 1024\n"
        "  analysis: {interval: 500ms, goals: [{metric: latency_p99, direction: decrease}]}\n"
    )
    text = text.replace("{pathPrefix: /v2/models/m}", "{pathPrefix: /v2/models/m, methods: [POST, GET]}")
    text = text.replace(
        "{unit: request, salt: x}",
        "{unit: header:X-User, salt: x, pins: [{header: X-QA, value: '1', variant: green}]}",
    )
    exp = load_experiment_text(text, "opt.yaml")
    assert exp.strategy == BlueGreenStrategy(active="green")
    assert (exp.timeout_s, exp.max_body_bytes, exp.methods) == (2.5, 1024, frozenset({"POST", "GET"}))
    assert exp.unit == UnitKey("header", "x-user")
    assert exp.pins == (Pin("x-qa", "1", "green"),)
    assert exp.analysis is not None
    assert exp.analysis.interval_s == 0.5
    assert exp.analysis.goals == (MetricRule("latency_p99", direction="decrease", min_effect=0.0),)


def test_shadow_variants_without_a_shadow_section_get_defaults() -> None:
    text = MINIMAL.replace(
        "  assignment:", "    - {name: int8, role: shadow, upstream: http://127.0.0.1:9003}\n  assignment:"
    )
    exp = load_experiment_text(text, "s.yaml")
    assert exp.shadow == ShadowSpec()
    assert [v.name for v in exp.shadows] == ["int8"]


def test_yaml_merge_keys_and_anchors_are_understood() -> None:
    text = MINIMAL.replace(
        "    - {name: blue, role: stable, upstream: http://127.0.0.1:9001/}",
        "    - &blue {name: blue, role: stable, upstream: http://127.0.0.1:9001/}",
    ).replace(
        '    - {name: green, role: candidate, upstream: "https://models.internal:8443/base"}',
        "    - {<<: *blue, name: green, role: candidate}",
    )
    exp = load_experiment_text(text, "merge.yaml")
    assert exp.variant("green").upstream == "http://127.0.0.1:9001"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_experiments_returns_all(tmp_path: Path) -> None:
    other = MINIMAL.replace("name: minimal", "name: other").replace("/v2/models/m}", "/v2/models/n}")
    paths = [_write(tmp_path, "a.yaml", MINIMAL), _write(tmp_path, "b.yaml", other)]
    assert [e.name for e in load_experiments(paths)] == ["minimal", "other"]


def test_load_experiments_rejects_reused_names_and_prefixes(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.yaml", MINIMAL)
    b = _write(tmp_path, "b.yaml", MINIMAL)
    with pytest.raises(ConfigError) as caught:
        load_experiments([a, b])
    assert [str(p) for p in caught.value.problems] == [
        f"{b}:3:18: metadata.name: experiment name 'minimal' is already used in {a}",
        f"{b}:5:23: spec.match.pathPrefix: pathPrefix '/v2/models/m' is already used by experiment"
        f" 'minimal' in {a}",
    ]
    assert check_files([a, b]) == caught.value.problems


def test_config_error_lists_every_problem() -> None:
    problems = [
        ConfigProblem("f.yaml", 3, 5, "spec.x", "bad"),
        ConfigProblem("f.yaml", 4, 1, "spec.y", "worse"),
    ]
    error = ConfigError(problems)
    assert error.problems == problems
    assert str(error) == "f.yaml:3:5: spec.x: bad\nf.yaml:4:1: spec.y: worse"


def test_unreadable_files_are_problems(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    binary = _write(tmp_path, "binary.yaml", "")
    binary.write_bytes(b"apiVersion: \xff\n")
    assert [str(p) for p in check_file(missing)] == [
        f"{missing}:1:1: (file): cannot read: No such file or directory"
    ]
    assert [str(p) for p in check_file(binary)] == [
        f"{binary}:1:1: (file): cannot read: not UTF-8 text (byte 0xff at offset 12)"
    ]
    with pytest.raises(ConfigError):
        load_experiment(missing)
