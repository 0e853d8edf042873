"""What a reload may change in a running experiment's shadow section: its body cap and sampling, not its
comparison."""

from __future__ import annotations

from experiments.config import load_experiment_text
from proxy.control.reload_diff import frozen_changes
from tests.integration.conftest import canary_yaml

SHADOW = """\
  shadow:
    sample: 1.0
    maxBodyBytes: {cap}
    compare: {{kind: oip-top1{options}}}
"""


def text(cap: int = 1_048_576, options: str = "") -> str:
    base = canary_yaml("http://127.0.0.1:1", "http://127.0.0.1:2", steps="[10]")
    base = base.replace(
        "  assignment:", '    - {name: shadow, role: shadow, upstream: "http://127.0.0.1:3"}\n  assignment:'
    )
    return base + SHADOW.format(cap=cap, options=options)


def test_the_shadow_body_cap_changes_in_place_and_the_comparison_does_not() -> None:
    old = load_experiment_text(text(), "e.yaml")
    assert frozen_changes(old, load_experiment_text(text(cap=4096), "e.yaml"), text(cap=4096)) == []
    changed = text(options=", labelOutput: predict")
    (problem,) = frozen_changes(old, load_experiment_text(changed, "e.yaml"), changed)
    assert str(problem).startswith("e.yaml:")
    assert "spec.shadow: cannot change while the experiment runs" in str(problem)
