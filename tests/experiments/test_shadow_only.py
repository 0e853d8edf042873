"""`strategy: {shadow: {}}`: stable serves everything, the shadows' verdict is the result; validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.config import check_file, load_experiment_text
from experiments.model import ShadowOnlyStrategy
from experiments.state import initial_state

BASE = """\
apiVersion: outrider.dev/v1alpha1
kind: Experiment
metadata: {{name: s}}
spec:
  match: {{pathPrefix: /v2/models/m}}
  variants:
    - {{name: stable, role: stable, upstream: "http://127.0.0.1:1"}}
{more}
  assignment: {{unit: request, salt: s}}
  strategy: {{shadow: {{}}}}
"""
SHADOW = '    - {name: copy, role: shadow, upstream: "http://127.0.0.1:2"}'
CANDIDATE = '    - {name: cand, role: candidate, upstream: "http://127.0.0.1:3"}'


def test_a_shadow_only_experiment_starts_shadowing_with_all_traffic_on_stable() -> None:
    exp = load_experiment_text(BASE.format(more=SHADOW), "s.yaml")
    assert isinstance(exp.strategy, ShadowOnlyStrategy)
    state = initial_state(exp)
    assert (state.phase, dict(state.weights)) == ("shadowing", {"stable": 100.0})


@pytest.mark.parametrize(
    ("more", "says"),
    [
        ("", "needs at least one variant with role: shadow"),
        (f"{SHADOW}\n{CANDIDATE}", "use role: shadow, not candidate"),
    ],
)
def test_what_a_shadow_only_experiment_refuses(tmp_path: Path, more: str, says: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(BASE.format(more=more))
    problems = check_file(path)
    assert any(says in p.message and p.path == "spec.strategy.shadow" for p in problems), problems
