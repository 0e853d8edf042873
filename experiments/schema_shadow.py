"""The `spec.shadow` section of experiment files: sampling, which requests are mirrored, how answers compare.

Rules that need other sections (the noise floor names a shadow variant, `requireOk` needs an analysis) are
in `experiments.crossref_shadow`. Usage: `Shadow.model_validate(data["spec"]["shadow"])`
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import (
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from experiments import model
from experiments.schema_types import (
    DOTTED_PATH,
    HEADER_NAME,
    HTTP_METHOD,
    PATH_SUFFIX,
    Duration,
    Section,
    Share,
    problem,
)

OPTION_KINDS: dict[str, tuple[model.CompareKind, ...]] = {
    "output": ("oip-top1", "oip-numeric"),
    "atol": ("oip-numeric",),
    "rtol": ("oip-numeric",),
    "ignore_paths": ("json-exact",),
    "ignore_ids": ("json-exact",),
    "label_output": ("oip-top1",),
}
"""The comparison kinds that take each comparator option (by field name, which is the comparator's)."""
NEVER_FORWARDED = frozenset(
    {
        "connection",
        "content-length",
        "host",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
"""Headers no request copy carries as the client sent them (hop-by-hop, framing, `Host`): naming one in
`forwardHeaders` would promise something that cannot happen."""


class Compare(Section):
    """How a shadow's answer is compared with the primary's."""

    kind: model.CompareKind
    """`oip-top1` (same top class), `oip-numeric` (outputs close), `json-exact`, `text` (completion texts:
    exact match, token overlap) or `none`."""
    agreement_min: Share | None = None
    """Share of compared requests that must agree for the shadow to pass."""
    output: str | None = Field(None, min_length=1)
    """oip-top1 and oip-numeric: name of the OIP output compared; default: the primary's first output."""
    atol: StrictFloat | None = Field(None, gt=0)
    """oip-numeric: absolute tolerance, > 0; default 1e-6."""
    rtol: StrictFloat | None = Field(None, ge=0)
    """oip-numeric: tolerance relative to the primary's value, >= 0; default 1e-3."""
    ignore_paths: tuple[Annotated[str, Field(pattern=DOTTED_PATH)], ...] | None = None
    """json-exact: dotted paths removed from both answers before comparing, e.g. `outputs.0.parameters`; they
    add to the top-level `id` and `model_version`, which are ignored unless `ignoreIds` is false."""
    ignore_ids: StrictBool | None = None
    """json-exact: ignore the top-level `id` (per response, often random) and `model_version` (different
    between versions by design); default true, false compares them."""
    label_output: str | None = Field(None, min_length=1)
    """oip-top1: name of an output that holds labels, compared row by row by equality whatever its datatype
    and shape (integer, BYTES and BOOL outputs and outputs of one value per row already are); it is the
    output compared unless `output` names it too."""

    @field_validator("output", "atol", "rtol", "ignore_paths", "ignore_ids", "label_output")
    @classmethod
    def _applies_to_kind(cls, value: object, info: ValidationInfo) -> object:
        # `kind` is validated first; when it is broken, it is reported and nothing is checked against it.
        name = str(info.field_name)
        kinds, kind = OPTION_KINDS[name], info.data.get("kind")
        if value is not None and kind is not None and kind not in kinds:
            key = cls.model_fields[name].alias or name
            raise problem(f"{key} applies to {' and '.join(kinds)} only", key=True)
        return value

    @model_validator(mode="after")
    def _agreement_needs_a_comparison(self) -> Compare:
        if self.kind == "none" and self.agreement_min is not None:
            raise problem("agreementMin needs a comparison: set kind to something other than none")
        return self

    @model_validator(mode="after")
    def _labels_are_compared(self) -> Compare:
        if self.output is not None and self.label_output is not None and self.output != self.label_output:
            raise problem(
                f"labelOutput {self.label_output!r} is not the output compared ({self.output!r}): "
                "leave output out or give both the same name",
                ("labelOutput",),
            )
        return self

    def options(self) -> dict[str, object]:
        """The comparator options that were given, by comparator option name."""
        given = {name: getattr(self, name) for name in OPTION_KINDS}
        return {name: value for name, value in given.items() if value is not None}


def _unique(items: Sequence[str]) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item in seen:
            raise problem(f"{item!r} appears twice", at=(i,))
        seen.add(item)


class Mirror(Section):
    """Which requests are copied to the shadows: those the experiment declares side-effect free."""

    methods: tuple[Annotated[str, Field(pattern=HTTP_METHOD)], ...] = Field(("POST",), min_length=1)
    """HTTP methods mirrored, in upper case; only methods that are safe to send twice belong here."""
    path_suffixes: tuple[Annotated[str, Field(pattern=PATH_SUFFIX)], ...] = ("/infer",)
    """Path endings (under the match prefix) that are mirrored, each starting with '/'; empty: every path."""

    @field_validator("methods", "path_suffixes")
    @classmethod
    def _no_repeats(cls, items: tuple[str, ...]) -> tuple[str, ...]:
        _unique(items)
        return items


class Shadow(Section):
    """Mirroring of requests to the shadow variants."""

    sample: Share = 1.0
    """Share of eligible requests mirrored, 0 to 1."""
    timeout: Duration = 1.0
    """How long a mirrored request may take."""
    mirror: Mirror = Mirror()
    """Which requests are mirrored (default: POST to paths ending in /infer)."""
    compare: Compare = Compare(kind="none")
    """How shadow answers are compared with primary answers."""
    noise_floor: str | None = None
    """A shadow variant running a second copy of the stable model: its disagreement with the primary is the
    model's own noise, and the other shadows are judged against it rather than against a fixed number."""
    require_ok: StrictBool = False
    """Shadow before canary: the candidate gets no traffic until every shadow's verdict is OK (a FAIL rolls
    back). Needs `spec.analysis`, a comparison, and a canary or abTest strategy with a candidate."""
    max_body_bytes: StrictInt = Field(model.DEFAULT_SHADOW_MAX_BODY_BYTES, gt=0)
    """Largest request mirrored and largest answer compared, in bytes (default 1 MiB, at most 64 MiB): a
    request over it is not mirrored (its record says `skipped: too_large`), a shadow answer over it is
    `response_too_large`, and no answer is decompressed past it."""
    forward_headers: tuple[Annotated[str, Field(pattern=HEADER_NAME)], ...] = ()
    """Credential headers the shadows may receive, e.g. [Authorization]. Without them a shadow's copy carries
    no `Authorization`, `Cookie` or other credential header of the client (names with auth, token, key,
    secret, session, ...)."""

    @field_validator("max_body_bytes")
    @classmethod
    def _at_most_the_bound(cls, value: int) -> int:
        if value > model.MAX_SHADOW_BODY_BYTES:
            raise problem(f"must be at most {model.MAX_SHADOW_BODY_BYTES} (64 MiB), got {value}")
        return value

    @field_validator("forward_headers")
    @classmethod
    def _forwardable(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        for i, name in enumerate(names):
            lower = name.lower()
            if lower in seen:
                raise problem(f"{name!r} appears twice", at=(i,))
            if lower in NEVER_FORWARDED or lower.startswith("x-outrider-"):
                raise problem(f"{name!r} never reaches a shadow as the client sent it", at=(i,))
            seen.add(lower)
        return names
