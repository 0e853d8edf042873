"""What a reload may change in a running experiment's shadow section: its body cap and sampling, not its
comparison."""

from __future__ import annotations

from experiments.builder import Compare, Shadow, Variant
from experiments.config import load_experiment_text
from proxy.control.reload_diff import frozen_changes
from tests.integration.conftest import canary_doc


def text(cap: int = 1_048_576, label_output: str | None = None) -> str:
    copies = Shadow(sample=1.0, max_body_bytes=cap, compare=Compare("oip-top1", label_output=label_output))
    doc = canary_doc("http://127.0.0.1:1", "http://127.0.0.1:2", steps=(10,), shadow=copies)
    return doc.adding(Variant.shadow("http://127.0.0.1:3")).yaml()


def test_the_shadow_body_cap_changes_in_place_and_the_comparison_does_not() -> None:
    old = load_experiment_text(text(), "e.yaml")
    assert frozen_changes(old, load_experiment_text(text(cap=4096), "e.yaml"), text(cap=4096)) == []
    changed = text(label_output="predict")
    (problem,) = frozen_changes(old, load_experiment_text(changed, "e.yaml"), changed)
    assert str(problem).startswith("e.yaml:")
    assert "spec.shadow: cannot change while the experiment runs" in str(problem)
