"""Experiment files built in code: typed parts in, the YAML text (or plain data) that the loader reads out.

The tests, the demo and the benchmarks write their experiment files with it instead of pasting YAML and
patching it with `str.replace`. Parts mirror the file's sections (`Variant`, a strategy — `Canary`, `ABTest`,
`BlueGreen`, `ShadowOnly` —, `Analysis` with `Guardrail`s and `Goal`s, `Shadow` with `Compare` and `Mirror`,
`Outcomes`); a field left at `None` (or empty) is not written, so the loader's default applies. Durations are
written as given: `"200ms"`, `"1s"` or seconds. Nothing is checked here: `experiments.config` is the one judge
of a file, and `tests/experiments/test_builder.py` loads every shape with it. To write a file the schema
refuses (a test of the error messages), change `doc.data()` and `dump` it.
Usage: `ExperimentDoc("split", (Variant.stable(a), Variant.candidate(b)), Canary((10, 50))).yaml()`
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import yaml

from experiments import model
from experiments.model import Pin, Slo

__all__ = [
    "ABTest",
    "Analysis",
    "BlueGreen",
    "Canary",
    "Compare",
    "ExperimentDoc",
    "Goal",
    "Guardrail",
    "Mirror",
    "Outcomes",
    "Pin",
    "Shadow",
    "ShadowOnly",
    "Slo",
    "Variant",
    "dump",
]

Duration = str | float
"""`"200ms"`, `"1s"`, `"10m"`, or seconds."""


class Variant(model.Variant):
    """A variant as the model has it (`experiments.model.Variant`), with a constructor per role:
    `Variant.stable(url)`, `Variant.candidate(url)`, `Variant.shadow(url, "int8", grpc_upstream=...)`."""

    __slots__ = ()

    @classmethod
    def stable(cls, upstream: str, name: str = "stable", **more: str) -> Variant:
        return cls(name, "stable", upstream, **more)

    @classmethod
    def candidate(cls, upstream: str, name: str = "candidate", **more: str) -> Variant:
        return cls(name, "candidate", upstream, **more)

    @classmethod
    def shadow(cls, upstream: str, name: str = "shadow", **more: str) -> Variant:
        return cls(name, "shadow", upstream, **more)


@dataclass(frozen=True, slots=True)
class Canary:
    """The candidate's percent of units rises through `steps`."""

    KEY: ClassVar[str] = "canary"
    steps: tuple[float, ...] = (10, 25, 50)
    min_requests_per_step: int | None = None


@dataclass(frozen=True, slots=True)
class ABTest:
    """Fixed percents per serving variant, by name."""

    KEY: ClassVar[str] = "abTest"
    weights: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class BlueGreen:
    """All traffic on `active` (default: the stable variant)."""

    KEY: ClassVar[str] = "blueGreen"
    active: str | None = None


@dataclass(frozen=True, slots=True)
class ShadowOnly:
    """No split: stable serves everything; the shadows' verdict ends the experiment."""

    KEY: ClassVar[str] = "shadow"


Strategy = Canary | ABTest | BlueGreen | ShadowOnly


@dataclass(frozen=True, slots=True)
class Guardrail:
    metric: str
    margin: float
    harm_margin: float | None = None
    error_floor: float | None = None


@dataclass(frozen=True, slots=True)
class Goal:
    metric: str
    direction: Literal["increase", "decrease"] = "increase"
    min_effect: float | None = None
    range: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class Analysis:
    """How the candidate is judged (`interval` defaults to the file's own default when `None`)."""

    guardrails: tuple[Guardrail, ...] = ()
    goals: tuple[Goal, ...] = ()
    interval: Duration | None = None
    alpha: float | None = None
    max_requests: int | None = None
    on_inconclusive: Literal["rollback", "hold"] | None = None
    max_units: int | None = None
    max_duration: Duration | None = None
    unit_cap: int | None = None
    slo: Slo | None = None
    feedback_window: Duration | None = None


@dataclass(frozen=True, slots=True)
class Compare:
    """How a shadow's answer is compared with the primary's: `Compare("oip-top1", agreement_min=0.99)`."""

    kind: str
    agreement_min: float | None = None
    output: str | None = None
    atol: float | None = None
    rtol: float | None = None
    ignore_paths: tuple[str, ...] | None = None
    ignore_ids: bool | None = None
    label_output: str | None = None


@dataclass(frozen=True, slots=True)
class Mirror:
    """Which requests are copied to the shadows."""

    methods: tuple[str, ...] | None = None
    path_suffixes: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Shadow:
    """The `shadow` section: how many copies, how long they may take, how their answers are compared."""

    sample: float | None = None
    timeout: Duration | None = None
    compare: Compare | None = None
    mirror: Mirror | None = None
    noise_floor: str | None = None
    require_ok: bool | None = None
    max_body_bytes: int | None = None
    forward_headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Which of the experiment's requests are recorded."""

    methods: tuple[str, ...] = ()
    path_suffixes: tuple[str, ...] = ()
    error_statuses: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ExperimentDoc:
    """One experiment file. `doc.with_(unit="claim:sub")` is a changed copy; `.yaml()` its text."""

    name: str
    variants: tuple[Variant, ...]
    strategy: Strategy = field(default_factory=Canary)
    prefix: str = "/v2"
    methods: tuple[str, ...] = ()
    host: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    unit: str = "header:x-user-id"
    salt: str | None = None
    """Default: the experiment's name."""
    pins: tuple[Pin, ...] = ()
    shadow: Shadow | None = None
    analysis: Analysis | None = None
    timeout: Duration | None = None
    stream_idle_timeout: Duration | None = None
    stream_timeout: Duration | None = None
    max_body_bytes: int | None = None
    expose_variant: bool | None = None
    outcomes: Outcomes | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    """More keys of `spec`, as plain data, written last."""

    def with_(self, **changes: Any) -> ExperimentDoc:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def adding(self, *variants: Variant) -> ExperimentDoc:
        """A copy with more variants (after the ones it has)."""
        return dataclasses.replace(self, variants=(*self.variants, *variants))

    def data(self) -> dict[str, Any]:
        """The file as plain data (camelCase keys, in the order a person would write them)."""
        match = {"pathPrefix": self.prefix, **_plain(self, ("methods", "host", "headers"))}
        assignment = {"unit": self.unit, "salt": self.salt or self.name, **_plain(self, ("pins",))}
        spec: dict[str, Any] = {
            "match": match,
            "variants": [_plain(v) for v in self.variants],
            "assignment": assignment,
            "strategy": {self.strategy.KEY: _plain(self.strategy)},
            **_plain(self, ("shadow", "analysis", "timeout", "stream_idle_timeout", "stream_timeout")),
            **_plain(self, ("max_body_bytes", "expose_variant", "outcomes")),
            **self.extra,
        }
        metadata = {"name": self.name, **_plain(self, ("labels",))}
        return {
            "apiVersion": "outrider.dev/v1alpha1",
            "kind": "Experiment",
            "metadata": metadata,
            "spec": spec,
        }

    def yaml(self) -> str:
        """The file's YAML text."""
        return dump(self.data())


def dump(data: Mapping[str, Any]) -> str:
    """YAML text of an experiment file's data (from `ExperimentDoc.data()`, perhaps changed)."""
    return yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True, width=120, default_flow_style=None)


def _plain(part: Any, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The set fields of a dataclass (all, or `names`) as data: camelCase keys; `None`, `()` and `{}` left out
    (an empty section, like `ShadowOnly()` or `Analysis()`, is written: it means something)."""
    names = names if names is not None else tuple(f.name for f in dataclasses.fields(part))
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(part, name)
        if value is not None and not (isinstance(value, tuple | Mapping) and not value):
            out[_camel(name)] = _value(value)
    return out


def _value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(value)
    if isinstance(value, tuple | list):
        return [_value(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _value(v) for k, v in value.items()}
    return value


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)
