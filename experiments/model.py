"""The validated experiment as plain frozen dataclasses: what the hot path reads.

`experiments.config` turns a YAML file into an `Experiment`; nothing on the request path sees pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["stable", "candidate", "shadow"]
UnitKind = Literal["header", "claim", "request"]
CompareKind = Literal["oip-top1", "oip-numeric", "json-exact", "none", "text"]
OnInconclusive = Literal["rollback", "hold"]

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_STREAM_IDLE_TIMEOUT_S = 30.0
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_SHADOW_MAX_BODY_BYTES = 1024 * 1024
MAX_SHADOW_BODY_BYTES = 64 * 1024 * 1024
"""Upper bound of `spec.shadow.maxBodyBytes`: a copy in flight may hold a request and an answer this big."""


@dataclass(frozen=True, slots=True)
class Variant:
    """One model version behind the experiment."""

    name: str
    role: Role
    upstream: str
    """Base URL (scheme://host:port[/prefix]); the request path is appended to it."""
    grpc_upstream: str | None = None
    """HOST:PORT of the same model server's OIP gRPC port (calls on outrider's `--grpc-listen` go there)."""
    model: str | None = None
    """The model name this variant's server knows (the request's is rewritten to it); None: as requested."""
    version: str | None = None
    """The model version to ask this variant's server for (rewritten into the request); None: as requested."""


@dataclass(frozen=True, slots=True)
class OutcomeRule:
    """Which routed requests are an experiment's outcomes (`spec.outcomes`; absent: every call but the
    protocols' health and metadata reads, experiments.protocol_paths)."""

    methods: frozenset[str] = frozenset()
    """Recorded methods; empty: any."""
    path_suffixes: tuple[str, ...] = ()
    """Recorded paths end with one of these; empty: any."""
    error_statuses: frozenset[int] = frozenset(range(500, 600))
    """Upstream statuses recorded as errors."""


@dataclass(frozen=True, slots=True)
class UnitKey:
    """Where the stickiness key comes from: `header:NAME`, `claim:NAME` or `request` (no key)."""

    kind: UnitKind
    name: str | None = None
    """Header name (lower case) or claim name; None for `request`."""


@dataclass(frozen=True, slots=True)
class Pin:
    """A request whose header `header` equals `value` always goes to `variant` (QA, demos, debugging)."""

    header: str
    value: str
    variant: str


@dataclass(frozen=True, slots=True)
class CanaryStrategy:
    """Candidate share goes through `steps` (percent of units); 100 means promoted."""

    steps: tuple[float, ...]
    min_requests_per_step: int = 0


@dataclass(frozen=True, slots=True)
class ABStrategy:
    """Fixed weights (percent, summing to 100) over the serving variants."""

    weights: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class BlueGreenStrategy:
    """All traffic on one variant; switching is all-or-nothing and rollback is instant."""

    active: str


@dataclass(frozen=True, slots=True)
class ShadowOnlyStrategy:
    """Every request served by stable, copies to the shadows; the shadow verdict is the experiment's result
    (SHADOW_OK ends it `promoted`, SHADOW_FAIL `rolled_back`; the traffic never moves)."""


Strategy = CanaryStrategy | ABStrategy | BlueGreenStrategy | ShadowOnlyStrategy


@dataclass(frozen=True, slots=True)
class ShadowSpec:
    """Mirroring of eligible requests to the shadow variants."""

    sample: float = 1.0
    timeout_s: float = 1.0
    compare: CompareKind = "none"
    agreement_min: float | None = None
    compare_options: Mapping[str, object] = field(default_factory=dict)
    """Comparator options: `output` (oip-*), `label_output` (oip-top1), `atol`/`rtol` (oip-numeric),
    `ignore_paths` and `ignore_ids` (json-exact)."""
    noise_floor: str | None = None
    """A shadow variant that runs a second copy of the stable model: its disagreement with the primary is the
    model's own noise, and other shadows are judged against it rather than against a fixed number."""
    require_ok: bool = False
    """Shadow → canary: the candidate gets no traffic until every shadow's verdict is OK (FAIL rolls back)."""
    mirror_methods: frozenset[str] = frozenset({"POST"})
    """Methods the experiment declares side-effect free (only these are mirrored)."""
    mirror_path_suffixes: tuple[str, ...] = ("/infer",)
    """Path endings (under the match prefix) that are mirrored; empty means every path."""
    forward_headers: frozenset[str] = frozenset()
    """Credential headers (lower case) the shadows may receive; every other credential header is removed."""
    max_body_bytes: int = DEFAULT_SHADOW_MAX_BODY_BYTES
    """Largest request mirrored, shadow answer read and answer (decompressed) compared."""


@dataclass(frozen=True, slots=True)
class MetricRule:
    """A guardrail (`margin`: candidate/stable ratio tolerated) or a goal (`direction`, `min_effect`)."""

    metric: str
    margin: float | None = None
    direction: Literal["increase", "decrease"] | None = None
    min_effect: float | None = None
    harm_margin: float | None = None
    """The ratio that counts as harm (None: the metric's default)."""
    error_floor: float | None = None
    """error_rate: absolute tolerance added to the promotion margin (None: the default)."""
    range: tuple[float, float] = (0.0, 1.0)
    """reward_mean: the values a reward may take."""


@dataclass(frozen=True, slots=True)
class Slo:
    """Absolute limits for the variant taking traffic (None: not checked)."""

    error_rate: float | None = None
    p99_ms: float | None = None


@dataclass(frozen=True, slots=True)
class AnalysisSpec:
    """How the controller judges the candidate (docs/statistics.md)."""

    interval_s: float = 1.0
    alpha: float = 0.05
    max_requests: int | None = None
    on_inconclusive: OnInconclusive = "rollback"
    guardrails: tuple[MetricRule, ...] = ()
    goals: tuple[MetricRule, ...] = ()
    max_units: int | None = None
    """Candidate units after which an undecided experiment is INCONCLUSIVE (None: never)."""
    max_duration_s: float | None = None
    """Seconds after the start after which an undecided experiment is INCONCLUSIVE (None: never)."""
    unit_cap: int = 1000
    """Records of one unit that count in the statistics."""
    slo: Slo | None = None
    feedback_window_s: float = 3600.0
    """Rewards arriving later than this after their request are stored as late and not judged."""


@dataclass(frozen=True, slots=True)
class Experiment:
    """One validated experiment file."""

    name: str
    source: str
    """The file it came from (for messages)."""
    path_prefix: str
    variants: tuple[Variant, ...]
    unit: UnitKey
    salt: str
    strategy: Strategy
    pins: tuple[Pin, ...] = ()
    shadow: ShadowSpec | None = None
    analysis: AnalysisSpec | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    """Until the whole answer; for a streamed one, until its head."""
    stream_idle_timeout_s: float = DEFAULT_STREAM_IDLE_TIMEOUT_S
    """A streamed answer's longest silence (no byte)."""
    stream_timeout_s: float | None = None
    """A streamed answer's longest life after its head (None: unbounded)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    methods: frozenset[str] = field(default_factory=frozenset)
    """HTTP methods that belong to the experiment; empty means all."""
    host: str | None = None
    """Only requests for this host (lower case, no port) belong to it."""
    headers: tuple[tuple[str, str], ...] = ()
    """(lower-case name, exact value) pairs a request must all carry to belong to it."""
    outcomes: OutcomeRule | None = None
    """Which of its requests are recorded (None: all but health and metadata reads)."""
    expose_variant: bool = True
    """Send `x-outrider-variant` on responses."""

    def variant(self, name: str) -> Variant:
        """The variant called `name` (KeyError if none)."""
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    @property
    def stable(self) -> Variant:
        """The variant with role `stable` (validation guarantees exactly one)."""
        return next(v for v in self.variants if v.role == "stable")

    @property
    def serving(self) -> tuple[Variant, ...]:
        """Variants that may answer clients (everything but shadows), in config order."""
        return tuple(v for v in self.variants if v.role != "shadow")

    @property
    def shadows(self) -> tuple[Variant, ...]:
        """Variants that only receive mirrored copies."""
        return tuple(v for v in self.variants if v.role == "shadow")
