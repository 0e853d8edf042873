"""What a reload may change in a running experiment, and a located problem for what it may not.

Routing details (upstream URLs, timeouts, body caps — the shadows' too —, pins, shadow sampling and
forwarded headers, exposeVariant) change in place. What the outcomes and statistics depend on (variants and
roles, assignment, strategy, analysis, shadow comparison, matched paths and methods) is fixed for the life of
an experiment: changing it means a new experiment name.
Usage: `problems = frozen_changes(old_experiment, new_experiment, new_text)`
"""

from __future__ import annotations

from dataclasses import fields, replace

from experiments.config import ConfigProblem
from experiments.model import Experiment
from experiments.yamlmarks import load_marked

_WHERE = {
    "path_prefix": ("spec", "match", "pathPrefix"),
    "methods": ("spec", "match", "methods"),
    "variants": ("spec", "variants"),
    "unit": ("spec", "assignment", "unit"),
    "salt": ("spec", "assignment", "salt"),
    "strategy": ("spec", "strategy"),
    "shadow": ("spec", "shadow"),
    "analysis": ("spec", "analysis"),
}
"""Where each fixed field is written in an experiment file."""


def _fixed_part(exp: Experiment) -> Experiment:
    """`exp` with every field a reload may change blanked out."""
    shadow = exp.shadow
    if shadow is not None:
        shadow = replace(shadow, sample=1.0, timeout_s=1.0, forward_headers=frozenset(), max_body_bytes=0)
    variants = tuple(replace(v, upstream="") for v in exp.variants)
    return replace(
        exp, source="", timeout_s=0.0, max_body_bytes=0, pins=(), variants=variants, shadow=shadow,
        expose_variant=True,
    )  # fmt: skip


def frozen_changes(old: Experiment, new: Experiment, text: str) -> list[ConfigProblem]:
    """One problem per fixed field that differs, located in the new file's `text`."""
    before, after = _fixed_part(old), _fixed_part(new)
    if before == after:
        return []
    doc = load_marked(text)
    problems = []
    for f in fields(Experiment):
        if getattr(before, f.name) == getattr(after, f.name):
            continue
        path = _WHERE.get(f.name, ("spec",))
        mark = doc.mark_of(path)
        message = (
            "cannot change while the experiment runs (its outcomes and statistics depend on it); "
            "give the experiment a new metadata.name to start a new one"
        )
        problems.append(ConfigProblem(new.source, mark.line, mark.col, ".".join(path), message))
    return problems
