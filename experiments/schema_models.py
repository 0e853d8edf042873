"""The experiment file schema as pydantic models: its sections, and the rules that concern one field.

The `shadow` section is in `experiments.schema_shadow`, the `strategy` section in
`experiments.schema_strategy`. Rules that tie sections together (weights name variants, one stable variant,
...) are in `experiments.crossref`, so they are reported even when an unrelated field is broken.
Usage: `ExperimentFile.model_validate(data)`
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, StrictFloat, StrictInt, field_validator, model_validator

from experiments import model
from experiments.schema_shadow import Shadow
from experiments.schema_strategy import Strategy
from experiments.schema_types import (
    DNS_LABEL,
    GRPC_TARGET,
    HEADER_NAME,
    HOST_NAME,
    MODEL_NAME,
    PATH_PREFIX,
    UNIT,
    VARIANT_NAME,
    Duration,
    GoalMetric,
    GuardrailMetric,
    Section,
    Upstream,
    problem,
)

SCHEMA_ID = "https://outrider.dev/schemas/experiment-v1alpha1.json"


class Metadata(Section):
    """Who the experiment is."""

    name: str = Field(max_length=63, pattern=DNS_LABEL)
    """Experiment name: lowercase letters, digits and '-', at most 63 characters; unique among the files."""
    labels: dict[str, str] = {}  # noqa: RUF012 (a pydantic field: ruff cannot see that Section is a model)
    """Free-form labels, copied to events and reports."""


class Match(Section):
    """Which requests belong to the experiment."""

    path_prefix: str = Field(pattern=PATH_PREFIX)
    """Requests whose path starts with this prefix (which starts with '/') belong to the experiment."""
    methods: tuple[Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], ...] = ()
    """HTTP methods that belong to the experiment; empty or absent means all."""
    host: str | None = Field(None, pattern=HOST_NAME)
    """Only requests for this host (the `Host` header without its port, case-insensitive) belong to it."""
    headers: dict[Annotated[str, Field(pattern=HEADER_NAME)], str] = Field(default_factory=dict)
    """Only requests carrying each of these headers with exactly this value belong to it (e.g. Seldon's
    `seldon-model: digits`); with `host`, they let experiments share a path prefix."""


class Outcomes(Section):
    """Which of the experiment's requests are its outcomes (recorded and judged); the others are routed the
    same way but not recorded."""

    methods: tuple[Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], ...] = ()
    """Recorded methods; empty or absent means all."""
    path_suffixes: tuple[str, ...] = ()
    """Recorded paths end with one of these (e.g. `/infer`, `:predict`); empty or absent means all."""
    error_statuses: tuple[Annotated[str, Field(pattern=r"^([1-5]xx|[1-5][0-9][0-9])$")], ...] = ("5xx",)
    """Upstream statuses recorded as errors (`upstream_4xx`/`upstream_5xx`): classes like `4xx` or codes like
    `404`; 5xx by default. A variant that answers 404 to half the users is then judged for it."""


class Variant(Section):
    """One model version behind the experiment."""

    name: str = Field(max_length=63, pattern=VARIANT_NAME)
    """Variant name, unique in the experiment; shown in `x-outrider-variant` and metric labels."""
    role: model.Role
    """`stable` (the current version), `candidate` (the one under test) or `shadow` (mirrored copies only)."""
    upstream: Upstream
    """Base URL of the model server, `http://host:port[/prefix]`; the request path is appended."""
    served_model: str | None = Field(None, alias="model", pattern=MODEL_NAME)
    """The model name this variant's server serves, when it differs from the one clients ask for: the path
    (`/v2/models/NAME/...`, `/v1/models/NAME:predict`) and a gRPC call's `model_name` are rewritten to it."""
    version: str | None = Field(None, pattern=MODEL_NAME)
    """The model version to ask this variant's server for (`/v2/models/NAME/versions/V/...`); a version the
    client named is replaced by it."""
    grpc_upstream: str | None = Field(None, pattern=GRPC_TARGET)
    """`HOST:PORT` of the model server's Open Inference Protocol gRPC port: calls to outrider's gRPC port
    (`--grpc-listen`) for this variant go there."""


class Pin(Section):
    """Requests with header `header` equal to `value` always go to `variant` (QA, demos, debugging)."""

    header: str = Field(pattern=HEADER_NAME)
    """Request header to look at (case-insensitive)."""
    value: str
    """Exact header value that pins the request."""
    variant: str
    """Serving variant the request goes to."""


class Assignment(Section):
    """How requests are assigned to variants: sticky by a unit key, hashed with a salt."""

    unit: str = Field(pattern=UNIT)
    """The stickiness key: `header:NAME`, `claim:NAME` (a JWT claim) or `request` (no stickiness)."""
    salt: str = Field(min_length=1)
    """Mixed into the hash; changing it reshuffles units between variants."""
    pins: tuple[Pin, ...] = ()
    """Requests that always go to one variant, whatever the weights."""


class Guardrail(Section):
    """A metric on which the candidate must not be worse than the stable by more than `margin`."""

    metric: GuardrailMetric
    """Metric name (see the list in the schema)."""
    margin: StrictFloat = Field(gt=0)
    """Candidate/stable ratio tolerated for promotion, e.g. 1.2: promote only when the evidence says the
    candidate is below `margin` × stable."""
    harm_margin: StrictFloat | None = Field(None, gt=0)
    """Candidate/stable ratio that counts as harm: roll back only when the evidence says the candidate is
    above `harmMargin` × stable. Default: 1.0 for error_rate, the `margin` for latency metrics."""
    error_floor: StrictFloat | None = Field(None, ge=0, lt=1)
    """error_rate only: an absolute tolerance added to the promotion margin (candidate ≤ margin × stable +
    errorFloor), so that two arms with no errors can pass. Default 0.001 (0.1 percentage point)."""

    @model_validator(mode="after")
    def _floor_on_errors(self) -> Guardrail:
        if self.error_floor is not None and self.metric != "error_rate":
            raise problem("errorFloor applies to error_rate only", at=("errorFloor",))
        return self


class Goal(Section):
    """A metric the candidate should move in `direction` by at least `minEffect`."""

    metric: GoalMetric
    """Metric name (see the list in the schema)."""
    direction: Literal["increase", "decrease"]
    """Which way is better."""
    min_effect: StrictFloat = Field(0.0, ge=0)
    """Smallest change worth promoting for (relative for latency metrics, absolute for reward_mean)."""
    range: tuple[StrictFloat, StrictFloat] = (0.0, 1.0)
    """reward_mean: the values a reward may take; a feedback post outside it is refused (422)."""

    @field_validator("range")
    @classmethod
    def _ordered(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        if not bounds[0] < bounds[1]:
            raise problem(f"range must be [min, max] with min < max, got [{bounds[0]:g}, {bounds[1]:g}]")
        return bounds


def _unique_metrics(rules: Sequence[Guardrail | Goal]) -> None:
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.metric in seen:
            raise problem(f"metric {rule.metric!r} appears twice", at=(i, "metric"))
        seen.add(rule.metric)


class Slo(Section):
    """Absolute service levels: the active variant is rolled back when the evidence says it breaks one."""

    error_rate: StrictFloat | None = Field(None, gt=0, lt=1)
    """Highest tolerated share of errors, e.g. 0.01."""
    p99_ms: StrictFloat | None = Field(None, gt=0)
    """Highest tolerated 99th percentile of latency, in milliseconds."""


class Analysis(Section):
    """How the controller judges the candidate."""

    interval: Duration = 1.0
    """How often the controller looks at new outcomes."""
    alpha: StrictFloat = Field(0.05, gt=0, le=0.5)
    """Error rate of the sequential tests, in (0, 0.5]."""
    max_requests: StrictInt | None = Field(None, gt=0)
    """Candidate requests after which an undecided experiment is inconclusive; absent means no limit."""
    on_inconclusive: model.OnInconclusive = "rollback"
    """What an inconclusive experiment does: `rollback` or `hold`."""
    guardrails: tuple[Guardrail, ...] = ()
    """Metrics on which the candidate must not be worse."""
    goals: tuple[Goal, ...] = ()
    """Metrics the candidate should improve."""
    max_units: StrictInt | None = Field(None, gt=0)
    """Candidate units (users) after which an undecided experiment is inconclusive; absent means no limit."""
    max_duration: Duration | None = None
    """Time after the experiment started after which an undecided experiment is inconclusive."""
    unit_cap: StrictInt = Field(1000, gt=0)
    """Records of one unit that count in the statistics (later ones are served and stored, not analysed), so a
    few heavy clients cannot decide an experiment."""
    slo: Slo | None = None
    """Absolute limits for the variant taking traffic (blue-green has no concurrent comparison)."""
    feedback_window: Duration = 3600.0
    """How long after its request a reward still counts (`POST /outrider/v1/feedback`); later ones are stored
    as late and not judged."""

    @field_validator("guardrails", "goals")
    @classmethod
    def _no_repeats(cls, rules: Sequence[Guardrail | Goal]) -> Sequence[Guardrail | Goal]:
        _unique_metrics(rules)
        return rules


class Spec(Section):
    """What the experiment does."""

    match: Match
    """The requests this experiment routes (by path prefix and method)."""
    variants: tuple[Variant, ...] = Field(min_length=1)
    """The model versions: one stable, candidates, shadows."""
    assignment: Assignment
    """How requests are assigned to variants."""
    strategy: Strategy
    """How traffic is split: canary, abTest or blueGreen."""
    shadow: Shadow | None = None
    """Mirroring to shadow variants (defaults apply when shadow variants exist and this is absent)."""
    analysis: Analysis | None = None
    """How the candidate is judged; absent means no automatic decisions."""
    timeout: Duration = model.DEFAULT_TIMEOUT_S
    """How long a request to a serving variant may take: the whole answer, or for a streamed answer (an SSE
    token stream, any chunked or unknown-length body over 64 KiB) until its status line and headers."""
    stream_idle_timeout: Duration = model.DEFAULT_STREAM_IDLE_TIMEOUT_S
    """A streamed answer is cut (an `upstream_timeout` error of its record) when no byte of it arrives for
    this long, the wait for the first token included."""
    stream_timeout: Duration | None = None
    """The longest a streamed answer may last from its headers to its end; unset: only the idle limit."""
    max_body_bytes: StrictInt = Field(model.DEFAULT_MAX_BODY_BYTES, gt=0)
    """Largest request body accepted on this route, in bytes."""
    expose_variant: bool = True
    """Send `x-outrider-variant` on responses; `false` hides which arm answered from clients."""
    outcomes: Outcomes | None = None
    """Which requests are recorded; absent: every request but the protocols' health and metadata reads
    (`GET /v2/models/NAME`, `.../ready`, `/v2/health/*`, `/v1/models/NAME`...)."""


class ExperimentFile(Section):
    """An outrider experiment file."""

    api_version: Literal["outrider.dev/v1alpha1"]
    """Version of this file format."""
    kind: Literal["Experiment"]
    """Always `Experiment`."""
    metadata: Metadata
    """Name and labels."""
    spec: Spec
    """Variants, assignment, traffic strategy, shadowing and analysis."""


def json_schema() -> dict[str, Any]:
    """The JSON Schema of experiment files (by alias, for validation), for editors and `outrider schema`."""
    schema = ExperimentFile.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "outrider Experiment (outrider.dev/v1alpha1)",
    }
