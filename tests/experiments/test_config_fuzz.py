"""Random damage to valid experiment files: the loader gives an Experiment or a ConfigError, never a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments.config import ConfigError, ConfigProblem, load_experiment_text
from experiments.model import Experiment

EXAMPLES = [p.read_text() for p in sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that matter to YAML, plus some that do not.
NOISE = st.text(
    alphabet=st.sampled_from(list(":{}[],-#&*!|>'\"\n\t %@?<=.0123456789abcxyz\x00\u00e9")), max_size=12
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        ["stable", "candidate", "shadow", "1s", "http://x:1", "error_rate", "header:x", "request"]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _check(text: str) -> None:
    problems: list[ConfigProblem] = []
    try:
        experiment = load_experiment_text(text, "fuzz.yaml")
    except ConfigError as exc:
        problems = exc.problems
    else:
        assert isinstance(experiment, Experiment)
        assert experiment.stable.role == "stable"
        return
    assert problems
    for problem in problems:
        assert (problem.file, problem.line >= 1, problem.col >= 1) == ("fuzz.yaml", True, True)
        assert problem.path
        assert problem.message


@FUZZ
@given(
    st.sampled_from(EXAMPLES),
    st.lists(
        st.tuples(st.sampled_from(["insert", "delete", "dup-line", "drop-line"]), st.floats(0, 1), NOISE),
        max_size=4,
    ),
)
def test_damaged_text(example: str, edits: list[tuple[str, float, str]]) -> None:
    text = example
    for kind, where, noise in edits:
        if kind in ("insert", "delete"):
            at = int(where * len(text))
            text = text[:at] + noise + text[at:] if kind == "insert" else text[:at] + text[at + len(noise) :]
        else:
            lines = text.splitlines(keepends=True)
            at = int(where * (len(lines) - 1))
            lines[at:at] = [lines[at]] if kind == "dup-line" else []
            if kind == "drop-line":
                del lines[at]
            text = "".join(lines)
    _check(text)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _paths(value, (*prefix, i))
    return found


@FUZZ
@given(st.sampled_from(EXAMPLES), st.data())
def test_damaged_data(example: str, draw: st.DataObject) -> None:
    data = yaml.safe_load(example)
    for _ in range(draw.draw(st.integers(1, 3))):
        path = draw.draw(st.sampled_from(_paths(data)[1:]))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        action = draw.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw.draw(VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw.draw(st.text(max_size=8))] = draw.draw(VALUES)
        if not _paths(data)[1:]:
            break
    _check(yaml.safe_dump(data, allow_unicode=True))
