"""The `spec.shadow` section: what a full or a minimal section becomes, and each problem, exactly placed."""

from __future__ import annotations

import pytest

from experiments.config import ConfigError, load_experiment_text
from experiments.model import ABStrategy, ShadowSpec
from shadow.compare.base import comparator
from shadow.compare.json_exact import JsonExact
from shadow.compare.oip_numeric import OipNumeric
from shadow.compare.oip_top1 import OipTop1

FULL = """\
apiVersion: outrider.dev/v1alpha1
kind: Experiment
metadata: {name: shadowed}
spec:
  match: {pathPrefix: /v2/models/digits}
  variants:
    - {name: stable, role: stable, upstream: http://127.0.0.1:9001}
    - {name: candidate, role: candidate, upstream: http://127.0.0.1:9002}
    - {name: stable-copy, role: shadow, upstream: http://127.0.0.1:9003}
    - {name: int8, role: shadow, upstream: http://127.0.0.1:9004}
  assignment: {unit: header:x-user-id, salt: s1}
  strategy:
    canary: {steps: [5, 50]}
  analysis: {interval: 1s}
  shadow:
    sample: 0.5
    timeout: 250ms
    noiseFloor: stable-copy
    requireOk: true
    mirror:
      methods: [POST, PUT]
      pathSuffixes: [/infer, /generate]
    compare:
      kind: oip-numeric
      agreementMin: 0.99
      output: probabilities
      atol: 1.0e-6
      rtol: 1.0e-3
"""

COMPARE = FULL[FULL.index("    compare:\n") :]
"""The compare block, lines 23 to 28."""


def _with(old: str, new: str, text: str = FULL) -> str:
    assert old in text, old
    return text.replace(old, new)


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_experiment_text(text, "f.yaml")
    return [str(p) for p in caught.value.problems]


def test_a_full_section_becomes_the_right_shadow_spec() -> None:
    exp = load_experiment_text(FULL, "f.yaml")
    assert exp.shadow == ShadowSpec(
        sample=0.5,
        timeout_s=0.25,
        compare="oip-numeric",
        agreement_min=0.99,
        compare_options={"output": "probabilities", "atol": 1e-6, "rtol": 1e-3},
        noise_floor="stable-copy",
        require_ok=True,
        mirror_methods=frozenset({"POST", "PUT"}),
        mirror_path_suffixes=("/infer", "/generate"),
    )
    assert [v.name for v in exp.shadows] == ["stable-copy", "int8"]


def test_only_the_options_given_are_passed_on() -> None:
    text = _with(COMPARE, "    compare: {kind: json-exact, ignorePaths: [id, model_version]}\n")
    text = _with("pathSuffixes: [/infer, /generate]", "pathSuffixes: []", text)
    shadow = load_experiment_text(text, "f.yaml").shadow
    assert shadow is not None
    assert shadow.compare_options == {"ignore_paths": ("id", "model_version")}
    assert shadow.mirror_path_suffixes == ()  # every path under the match
    top1 = _with(COMPARE, "    compare: {kind: oip-top1, output: probabilities}\n")
    shadow = load_experiment_text(top1, "f.yaml").shadow
    assert shadow is not None
    assert shadow.compare_options == {"output": "probabilities"}


def test_the_options_build_the_comparator() -> None:
    shadow = load_experiment_text(FULL, "f.yaml").shadow
    assert shadow is not None
    assert comparator(shadow.compare, **shadow.compare_options) == OipNumeric("probabilities", 1e-6, 1e-3)
    exact = _with(COMPARE, "    compare: {kind: json-exact, ignorePaths: [id, outputs.0.data]}\n")
    shadow = load_experiment_text(exact, "f.yaml").shadow
    assert shadow is not None
    assert comparator(shadow.compare, **shadow.compare_options) == JsonExact(("id", "outputs.0.data"))


def test_a_minimal_section_gets_the_defaults() -> None:
    text = FULL[: FULL.index("  shadow:\n")] + "  shadow: {sample: 0.25}\n"
    shadow = load_experiment_text(text, "f.yaml").shadow
    assert shadow == ShadowSpec(sample=0.25)
    assert shadow is not None
    assert (shadow.timeout_s, shadow.compare, shadow.agreement_min) == (1.0, "none", None)
    assert (shadow.compare_options, shadow.noise_floor, shadow.require_ok) == ({}, None, False)
    assert (shadow.mirror_methods, shadow.mirror_path_suffixes) == (frozenset({"POST"}), ("/infer",))


def test_an_empty_mirror_section_keeps_the_defaults() -> None:
    text = _with(
        "    mirror:\n      methods: [POST, PUT]\n      pathSuffixes: [/infer, /generate]\n",
        "    mirror: {}\n",
    )
    shadow = load_experiment_text(text, "f.yaml").shadow
    assert shadow is not None
    assert (shadow.mirror_methods, shadow.mirror_path_suffixes) == (frozenset({"POST"}), ("/infer",))


def test_require_ok_with_an_ab_test() -> None:
    text = _with("canary: {steps: [5, 50]}", "abTest: {weights: {stable: 90, candidate: 10}}")
    exp = load_experiment_text(text, "f.yaml")
    assert exp.strategy == ABStrategy({"stable": 90.0, "candidate": 10.0})
    assert exp.shadow is not None
    assert exp.shadow.require_ok is True


ONE_SHADOW = _with("    - {name: int8, role: shadow, upstream: http://127.0.0.1:9004}\n", "")
NO_REQUIRE_OK = _with("    requireOk: true\n", "")

# (text, expected problem lines): every class alone, at its exact line and column.
CASES: dict[str, tuple[str, list[str]]] = {
    # Comparator options that the kind does not take: at the key, which should not be there.
    "tolerances on oip-top1": (
        _with("kind: oip-numeric", "kind: oip-top1"),
        [
            "f.yaml:27:7: spec.shadow.compare.atol: atol applies to oip-numeric only",
            "f.yaml:28:7: spec.shadow.compare.rtol: rtol applies to oip-numeric only",
        ],
    ),
    "output on json-exact": (
        _with(COMPARE, "    compare:\n      kind: json-exact\n      output: probabilities\n"),
        ["f.yaml:25:7: spec.shadow.compare.output: output applies to oip-top1 and oip-numeric only"],
    ),
    "ignorePaths on oip-numeric": (
        FULL + "      ignorePaths: [id]\n",
        ["f.yaml:29:7: spec.shadow.compare.ignorePaths: ignorePaths applies to json-exact only"],
    ),
    "options on none": (
        _with(COMPARE, "    compare: {kind: none, atol: 0.1}\n", NO_REQUIRE_OK),
        ["f.yaml:22:27: spec.shadow.compare.atol: atol applies to oip-numeric only"],
    ),
    # Option values.
    "atol not above zero": (
        _with("atol: 1.0e-6", "atol: 0"),
        ["f.yaml:27:13: spec.shadow.compare.atol: must be > 0, got 0"],
    ),
    "negative rtol": (
        _with("rtol: 1.0e-3", "rtol: -0.1"),
        ["f.yaml:28:13: spec.shadow.compare.rtol: must be >= 0, got -0.1"],
    ),
    "exponent without a dot is text in YAML": (
        _with("atol: 1.0e-6", "atol: 1e-6"),
        [
            "f.yaml:27:13: spec.shadow.compare.atol: expected a number, got '1e-6'"
            " (YAML reads a number without a '.' as text: write it like 1.0e-6)"
        ],
    ),
    "empty output name": (
        _with("output: probabilities", "output: ''"),
        ["f.yaml:26:15: spec.shadow.compare.output: must not be empty"],
    ),
    "ignore path that is not a dotted path": (
        _with(COMPARE, "    compare:\n      kind: json-exact\n      ignorePaths: [id, outputs..data]\n"),
        [
            "f.yaml:25:25: spec.shadow.compare.ignorePaths.1:"
            " 'outputs..data' must be a dotted path like 'outputs.0.data'"
        ],
    ),
    # The noise floor.
    "noise floor that is no variant": (
        _with("noiseFloor: stable-copy", "noiseFloor: x"),
        [
            "f.yaml:18:17: spec.shadow.noiseFloor:"
            " 'x' is not a shadow variant (shadow variants: stable-copy, int8)"
        ],
    ),
    "noise floor that is not a shadow": (
        _with("noiseFloor: stable-copy", "noiseFloor: stable"),
        [
            "f.yaml:18:17: spec.shadow.noiseFloor:"
            " 'stable' is not a shadow variant (shadow variants: stable-copy, int8)"
        ],
    ),
    "noise floor and nothing to judge": (
        ONE_SHADOW,
        [
            "f.yaml:17:17: spec.shadow.noiseFloor: a noise floor needs at least 2 shadow variants"
            " (the floor and one to judge against it), found 1"
        ],
    ),
    "noise floor not a string": (
        _with("noiseFloor: stable-copy", "noiseFloor: [stable-copy]"),
        ["f.yaml:18:17: spec.shadow.noiseFloor: expected a string, got a list"],
    ),
    # requireOk and what it needs.
    "requireOk without analysis": (
        _with("  analysis: {interval: 1s}\n", ""),
        [
            "f.yaml:18:16: spec.shadow.requireOk:"
            " requireOk needs an analysis section (spec.analysis) to judge the shadows"
        ],
    ),
    "requireOk without a comparison": (
        FULL[: FULL.index(COMPARE)],
        [
            "f.yaml:19:16: spec.shadow.requireOk:"
            " requireOk needs a comparison: set compare.kind to something other than none"
        ],
    ),
    "requireOk with compare kind none": (
        _with(COMPARE, "    compare: {kind: none}\n"),
        [
            "f.yaml:19:16: spec.shadow.requireOk:"
            " requireOk needs a comparison: set compare.kind to something other than none"
        ],
    ),
    "requireOk with blue-green": (
        _with("canary: {steps: [5, 50]}", "blueGreen: {}"),
        [
            "f.yaml:19:16: spec.shadow.requireOk: requireOk needs a canary or abTest strategy"
            " (blueGreen has no candidate share to hold back)"
        ],
    ),
    "requireOk without a candidate": (
        _with("{name: candidate, role: candidate", "{name: candidate, role: shadow"),
        [
            "f.yaml:13:5: spec.strategy.canary:"
            " a canary needs exactly one variant with role: candidate, found 0",
            "f.yaml:19:16: spec.shadow.requireOk: requireOk needs a variant with role: candidate",
        ],
    ),
    "requireOk not a boolean": (
        _with("requireOk: true", "requireOk: 1"),
        ["f.yaml:19:16: spec.shadow.requireOk: expected true or false, got 1"],
    ),
    # The mirror section.
    "lower-case method": (
        _with("methods: [POST, PUT]", "methods: [post]"),
        [
            "f.yaml:21:17: spec.shadow.mirror.methods.0:"
            " 'post' must be an HTTP method in upper case, like POST"
        ],
    ),
    "no methods": (
        _with("methods: [POST, PUT]", "methods: []"),
        ["f.yaml:21:16: spec.shadow.mirror.methods: must not be empty"],
    ),
    "repeated method": (
        _with("methods: [POST, PUT]", "methods: [POST, POST]"),
        ["f.yaml:21:23: spec.shadow.mirror.methods.1: 'POST' appears twice"],
    ),
    "path suffix without a slash": (
        _with("pathSuffixes: [/infer, /generate]", "pathSuffixes: [/infer, generate]"),
        [
            "f.yaml:22:30: spec.shadow.mirror.pathSuffixes.1:"
            " 'generate' must start with '/' and hold no spaces, '?' or '#'"
        ],
    ),
    "unknown mirror key": (
        _with("      pathSuffixes:", "      paths: [/x]\n      pathSuffixes:"),
        ["f.yaml:22:7: spec.shadow.mirror.paths: unknown key 'paths' (allowed: methods, pathSuffixes)"],
    ),
    "unknown shadow key": (
        _with("requireOk: true", "requireOK: true"),
        [
            "f.yaml:19:5: spec.shadow.requireOK:"
            " unknown key 'requireOK'"
            " (allowed: sample, timeout, mirror, compare, noiseFloor, requireOk, maxBodyBytes,"
            " forwardHeaders)"
        ],
    ),
}


@pytest.mark.parametrize(("text", "expected"), CASES.values(), ids=list(CASES))
def test_problem(text: str, expected: list[str]) -> None:
    assert _problems(text) == expected


def test_every_shadow_problem_is_reported_in_one_run() -> None:
    text = (
        _with("  analysis: {interval: 1s}\n", "")
        .replace("sample: 0.5", "sample: 2")
        .replace("noiseFloor: stable-copy", "noiseFloor: x")
        .replace("methods: [POST, PUT]", "methods: [post]")
        .replace("kind: oip-numeric", "kind: json-exact")
    )
    assert _problems(text) == [
        "f.yaml:15:13: spec.shadow.sample: must be <= 1, got 2",
        "f.yaml:17:17: spec.shadow.noiseFloor:"
        " 'x' is not a shadow variant (shadow variants: stable-copy, int8)",
        "f.yaml:18:16: spec.shadow.requireOk:"
        " requireOk needs an analysis section (spec.analysis) to judge the shadows",
        "f.yaml:20:17: spec.shadow.mirror.methods.0: 'post' must be an HTTP method in upper case, like POST",
        "f.yaml:25:7: spec.shadow.compare.output: output applies to oip-top1 and oip-numeric only",
        "f.yaml:26:7: spec.shadow.compare.atol: atol applies to oip-numeric only",
        "f.yaml:27:7: spec.shadow.compare.rtol: rtol applies to oip-numeric only",
    ]


def test_label_output_ignore_ids_and_the_body_cap() -> None:
    labelled = _with(COMPARE, "    compare: {kind: oip-top1, labelOutput: predict}\n")
    labelled = _with("    timeout: 250ms\n", "    timeout: 250ms\n    maxBodyBytes: 65536\n", labelled)
    shadow = load_experiment_text(labelled, "f.yaml").shadow
    assert shadow is not None
    assert (shadow.compare_options, shadow.max_body_bytes) == ({"label_output": "predict"}, 65536)
    assert comparator(shadow.compare, **shadow.compare_options) == OipTop1(label_output="predict")
    both = _with(COMPARE, "    compare: {kind: oip-top1, output: predict, labelOutput: predict}\n")
    assert load_experiment_text(both, "f.yaml").shadow is not None
    exact = _with(COMPARE, "    compare: {kind: json-exact, ignoreIds: false, ignorePaths: [parameters]}\n")
    shadow = load_experiment_text(exact, "f.yaml").shadow
    assert shadow is not None
    assert shadow.compare_options == {"ignore_paths": ("parameters",), "ignore_ids": False}
    assert comparator(shadow.compare, **shadow.compare_options) == JsonExact(
        ("parameters",), ignore_ids=False
    )
    default = load_experiment_text(FULL, "f.yaml").shadow
    assert default is not None
    assert default.max_body_bytes == 1024 * 1024


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            _with(COMPARE, "    compare: {kind: oip-numeric, labelOutput: predict}\n"),
            ["f.yaml:23:34: spec.shadow.compare.labelOutput: labelOutput applies to oip-top1 only"],
        ),
        (
            _with(COMPARE, "    compare: {kind: oip-top1, ignoreIds: false}\n"),
            ["f.yaml:23:31: spec.shadow.compare.ignoreIds: ignoreIds applies to json-exact only"],
        ),
        (
            _with(COMPARE, "    compare: {kind: oip-top1, output: scores, labelOutput: predict}\n"),
            [
                "f.yaml:23:60: spec.shadow.compare.labelOutput: labelOutput 'predict' is not the output "
                "compared ('scores'): leave output out or give both the same name"
            ],
        ),
        (
            _with("    timeout: 250ms\n", "    timeout: 250ms\n    maxBodyBytes: 67108865\n"),
            ["f.yaml:18:19: spec.shadow.maxBodyBytes: must be at most 67108864 (64 MiB), got 67108865"],
        ),
        (
            _with("    timeout: 250ms\n", "    timeout: 250ms\n    maxBodyBytes: 0\n"),
            ["f.yaml:18:19: spec.shadow.maxBodyBytes: must be > 0, got 0"],
        ),
    ],
)
def test_new_options_are_checked(text: str, expected: list[str]) -> None:
    assert _problems(text) == expected
