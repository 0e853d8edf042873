"""Problems in experiment files: each class with its exact `FILE:LINE:COL: path: message`, and all at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.config import ConfigError, check_file, load_experiment_text

DATA = Path(__file__).parent / "data"

# One fixture per error class: "LINE:COL: path" and the message, the only problem it must produce.
CLASSES = {
    "unknown-key.yaml": (
        "14:7: spec.variants.1.weight",
        "unknown key 'weight' (allowed: name, role, upstream, model, version, grpcUpstream)",
    ),
    "wrong-type.yaml": ("15:12: spec.analysis.alpha", "expected a number, got 'abc'"),
    "weights-sum.yaml": ("14:16: spec.strategy.abTest.weights", "weights sum to 90, must be 100"),
    "steps-not-increasing.yaml": (
        "17:11: spec.strategy.canary.steps.2",
        "steps must be strictly increasing: 10 follows 25",
    ),
    "duplicate-variant.yaml": (
        "11:14: spec.variants.2.name",
        "duplicate variant name 'candidate' (also spec.variants.1.name)",
    ),
    "no-stable.yaml": ("8:3: spec.variants", "no stable variant: exactly one variant needs role: stable"),
    "bad-upstream.yaml": (
        "12:17: spec.variants.1.upstream",
        "upstream port must be a number from 1 to 65535: 'http://127.0.0.1:99999'",
    ),
    "unknown-metric.yaml": (
        "18:17: spec.analysis.guardrails.1.metric",
        "unknown metric 'latency_p95'"
        " (known: error_rate, latency_gmean, latency_mean, latency_p50, latency_p99, ttft_gmean, ttft_p99,"
        " itl_gmean, tokens_per_s)",
    ),
    "duplicate-key.yaml": (
        "14:5: spec.assignment.unit",
        "duplicate key 'unit' (first defined at line 12, column 5)",
    ),
    "syntax-error.yaml": (
        "10:7: (document)",
        "YAML syntax error: expected ',' or '}', but got '{' (while parsing a flow mapping at line 9)",
    ),
    "bad-duration.yaml": (
        "14:12: spec.timeout",
        "bad duration '30 seconds': write a number with a unit (ms, s, m, h),"
        " like 500ms, 1s, 2.5s, 5m or 1h, or a number of seconds",
    ),
}


@pytest.mark.parametrize(
    ("name", "where", "message"), [(n, *c) for n, c in CLASSES.items()], ids=list(CLASSES)
)
def test_each_error_class_alone(name: str, where: str, message: str) -> None:
    path = DATA / name
    assert [str(p) for p in check_file(path)] == [f"{path}:{where}: {message}"]


def test_every_class_in_one_file_is_reported_in_one_run() -> None:
    path = DATA / "all-errors.yaml"
    expected = [
        "9:3: spec.variants: no stable variant",
        "13:13: spec.variants.1.name: duplicate variant name 'stable'",
        "15:17: spec.variants.1.upstream: upstream must be an http:// or https:// URL",
        "19:7: spec.variants.2.weight: unknown key 'weight' "
        "(allowed: name, role, upstream, model, version, grpcUpstream)",
        "23:5: spec.assignment.salt: duplicate key 'salt'",
        "26:22: spec.strategy.canary.steps.2: steps must be strictly increasing",
        "27:27: spec.strategy.canary.minRequestsPerStep: expected an integer, got 'abc'",
        "29:16: spec.strategy.abTest.weights: weights sum to 90, must be 100",
        "31:14: spec.shadow.timeout: bad duration 'soon'",
        "34:18: spec.analysis.guardrails.0.metric: unknown metric 'error_rte'",
    ]
    lines = [str(p) for p in check_file(path)]
    for start in expected:
        assert any(line.startswith(f"{path}:{start}") for line in lines), (start, lines)
    # Both strategies are set, which is one more problem; nothing else.
    assert len(lines) == len(expected) + 1
    assert f"{path}:24:3: spec.strategy: choose exactly one of canary, abTest, blueGreen" in "\n".join(lines)


BASE = """\
apiVersion: outrider.dev/v1alpha1
kind: Experiment
metadata:
  name: bad
spec:
  match:
    pathPrefix: /v2/models/digits
  variants:
    - {name: stable, role: stable, upstream: http://127.0.0.1:9001}
    - {name: candidate, role: candidate, upstream: http://127.0.0.1:9002}
  assignment:
    unit: header:x-user-id
    salt: s1
  strategy:
    canary: {steps: [5, 10, 25, 50]}
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_experiment_text(text, "f.yaml")
    return [str(p) for p in caught.value.problems]


def _edit(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new)


SHADOW = "    - {name: s, role: shadow, upstream: http://127.0.0.1:9003}\n  assignment:"

# Smaller classes: (text, expected problem lines).
CASES: dict[str, tuple[str, list[str]]] = {
    "missing key points at the parent": (
        _edit("    salt: s1\n", ""),
        ["f.yaml:12:5: spec.assignment.salt: missing required key 'salt'"],
    ),
    "missing section points at the document": (
        BASE.split("spec:")[0],
        ["f.yaml:1:1: spec: missing required key 'spec'"],
    ),
    "unknown enum value": (
        _edit("role: candidate", "role: canary"),
        [
            "f.yaml:10:31: spec.variants.1.role: unknown value 'canary'"
            " (allowed: 'stable', 'candidate' or 'shadow')"
        ],
    ),
    "wrong api version": (
        _edit("outrider.dev/v1alpha1", "outrider.dev/v2"),
        ["f.yaml:1:13: apiVersion: unknown value 'outrider.dev/v2' (allowed: 'outrider.dev/v1alpha1')"],
    ),
    "bad name": (
        _edit("name: bad", "name: Bad_Name"),
        [
            "f.yaml:4:9: metadata.name: 'Bad_Name' must be lowercase letters, digits and '-',"
            " starting and ending with a letter or digit"
        ],
    ),
    "path prefix without slash": (
        _edit("pathPrefix: /v2", "pathPrefix: v2"),
        [
            "f.yaml:7:17: spec.match.pathPrefix: 'v2/models/digits'"
            " must start with '/' and hold no spaces, '?' or '#'"
        ],
    ),
    "bad unit": (
        _edit("unit: header:x-user-id", "unit: cookie:x"),
        ["f.yaml:12:11: spec.assignment.unit: 'cookie:x' must be 'header:NAME', 'claim:NAME' or 'request'"],
    ),
    "step out of range": (
        _edit("[5, 10, 25, 50]", "[5, 10, 250]"),
        ["f.yaml:15:29: spec.strategy.canary.steps.2: must be <= 100, got 250"],
    ),
    "a broken step is not also an empty list": (
        _edit("[5, 10, 25, 50]", "[abc]"),
        ["f.yaml:15:22: spec.strategy.canary.steps.0: expected a number, got 'abc'"],
    ),
    "more than one stable": (
        _edit("role: candidate", "role: stable"),
        [
            "f.yaml:8:3: spec.variants: more than one stable variant (stable, candidate)",
            "f.yaml:15:5: spec.strategy.canary:"
            " a canary needs exactly one variant with role: candidate, found 0",
        ],
    ),
    "no strategy": (
        _edit("    canary: {steps: [5, 10, 25, 50]}\n", "    {}\n"),
        ["f.yaml:14:3: spec.strategy: choose exactly one of canary, abTest, blueGreen, shadow (got none)"],
    ),
    "weights name unknown and shadow variants, and miss one": (
        _edit("  assignment:", SHADOW).replace(
            "canary: {steps: [5, 10, 25, 50]}", "abTest: {weights: {stable: 50, s: 25, x: 25}}"
        ),
        [
            "f.yaml:16:23: spec.strategy.abTest.weights: no weight for serving variant candidate",
            "f.yaml:16:36: spec.strategy.abTest.weights.s: variant 's' is a shadow, cannot take a weight",
            "f.yaml:16:43: spec.strategy.abTest.weights.x:"
            " unknown variant 'x' (serving variants: stable, candidate), cannot take a weight",
        ],
    ),
    "ab test with one serving variant": (
        _edit("role: candidate", "role: shadow").replace(
            "canary: {steps: [5, 10, 25, 50]}", "abTest: {weights: {stable: 100}}"
        ),
        ["f.yaml:15:5: spec.strategy.abTest: an A/B test needs at least 2 serving variants, found 1"],
    ),
    "blue-green active must serve": (
        _edit("  assignment:", SHADOW).replace("canary: {steps: [5, 10, 25, 50]}", "blueGreen: {active: s}"),
        ["f.yaml:16:25: spec.strategy.blueGreen.active: variant 's' is a shadow, cannot be active"],
    ),
    "pins name serving variants": (
        _edit("    salt: s1\n", "    salt: s1\n    pins: [{header: x-qa, value: '1', variant: nope}]\n"),
        [
            "f.yaml:14:48: spec.assignment.pins.0.variant: unknown variant 'nope'"
            " (serving variants: stable, candidate), cannot be pinned"
        ],
    ),
    "shadow section needs a shadow variant": (
        BASE + "  shadow: {sample: 0.5}\n",
        ["f.yaml:16:3: spec.shadow: shadow settings but no variant has role: shadow"],
    ),
    "agreement needs a comparison": (
        _edit("  assignment:", SHADOW) + "  shadow: {compare: {kind: none, agreementMin: 0.9}}\n",
        [
            "f.yaml:17:21: spec.shadow.compare:"
            " agreementMin needs a comparison: set kind to something other than none"
        ],
    ),
    "upstream with a query": (
        _edit("upstream: http://127.0.0.1:9002", "upstream: 'http://127.0.0.1:9002/?a=1'"),
        [
            "f.yaml:10:52: spec.variants.1.upstream: upstream must not have a query (?...): 'http://127.0.0.1:9002/?a=1'"
        ],
    ),
    "upstream without a host": (
        _edit("http://127.0.0.1:9002", "http:///x"),
        ["f.yaml:10:52: spec.variants.1.upstream: upstream has no host: 'http:///x'"],
    ),
    "repeated guardrail": (
        BASE + "  analysis:\n"
        "    guardrails: [{metric: error_rate, margin: 1.2}, {metric: error_rate, margin: 2}]\n",
        ["f.yaml:17:62: spec.analysis.guardrails.1.metric: metric 'error_rate' appears twice"],
    ),
    "negative duration and nan": (
        BASE + "  timeout: -1\n  analysis: {alpha: .nan}\n",
        [
            "f.yaml:16:12: spec.timeout: duration must be greater than zero, got -1",
            "f.yaml:17:21: spec.analysis.alpha: expected a finite number, got nan",
        ],
    ),
    "not a mapping": (
        "- just a list\n",
        ["f.yaml:1:1: (document): expected a mapping, got a list"],
    ),
    "empty file": ("# nothing\n", ["f.yaml:1:1: (document): the file is empty: expected an Experiment"]),
    "unsupported tag": (
        _edit("salt: s1", "salt: !secret s1"),
        ["f.yaml:13:11: spec.assignment.salt: unsupported YAML tag '!secret'"],
    ),
    "recursive alias": (
        BASE + "  shadow: &loop {compare: *loop}\n",
        [
            "f.yaml:16:3: spec.shadow: shadow settings but no variant has role: shadow",
            "f.yaml:16:11: spec.shadow.compare: expected a mapping, got null",
            "f.yaml:16:11: spec.shadow.compare: recursive YAML alias",
        ],
    ),
}


@pytest.mark.parametrize(("text", "expected"), CASES.values(), ids=list(CASES))
def test_problem(text: str, expected: list[str]) -> None:
    assert _problems(text) == expected
