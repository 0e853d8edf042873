"""Building blocks of the experiment file schema: `Section`, the base of every section model, and value types
that carry their own check (durations, upstream URLs, metric names, names).

Each value type is an `Annotated` type for the section models (`experiments.schema_models`,
`experiments.schema_shadow`); a failed check raises `problem(...)`, whose message reaches the user as
written. Usage: `timeout: Duration = 1.0`
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from experiments.durations import DURATION_PATTERN, parse_duration
from experiments.metrics import GOAL_METRICS, GUARDRAIL_METRICS, unknown_metric_message

DNS_LABEL = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
VARIANT_NAME = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
HOST_NAME = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$"
"""A host name or IPv4 address, without a port."""
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
"""A model name or version as it appears in a path segment."""
GRPC_TARGET = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$"
"""HOST:PORT of a gRPC server (IPv6 hosts in brackets)."""
UNIT = r"^(request|header:[A-Za-z0-9!#$%&'*+.^_`|~-]+|claim:[^\s]+)$"
PATH_PREFIX = r"^/[^\s?#]*$"
PATH_SUFFIX = PATH_PREFIX  # the same rule: '/' first, then no spaces, '?' or '#'
HTTP_METHOD = r"^[A-Z][A-Z0-9!#$%&'*+.^_`|~-]*$"
DOTTED_PATH = r"^[^.]+(\.[^.]+)*$"

PATTERN_HINTS = {
    DNS_LABEL: "must be lowercase letters, digits and '-', starting and ending with a letter or digit",
    VARIANT_NAME: "must be letters, digits, '.', '_' and '-', starting and ending with a letter or digit",
    HEADER_NAME: "must be an HTTP header name",
    UNIT: "must be 'header:NAME', 'claim:NAME' or 'request'",
    PATH_PREFIX: "must start with '/' and hold no spaces, '?' or '#'",
    HTTP_METHOD: "must be an HTTP method in upper case, like POST",
    DOTTED_PATH: "must be a dotted path like 'outputs.0.data'",
}
"""Messages for values that do not match a pattern, by pattern."""


class Section(BaseModel):
    """Common settings: camelCase keys as in YAML, unknown keys are errors, values are immutable."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        use_attribute_docstrings=True,
        allow_inf_nan=False,
    )


def problem(message: str, at: tuple[str | int, ...] = (), *, key: bool = False) -> PydanticCustomError:
    """A validation error with a plain message, pointing `at` a place below the validated field.

    `key`: point at the mapping key rather than at its value (the key should not be there at all).
    """
    return PydanticCustomError("outrider", "{message}", {"message": message, "at": at, "key": key})


def _duration(value: object) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise problem(str(exc)) from None


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "exclusiveMinimum": 0},
            ]
        }
    ),
]
"""Seconds, written as `500ms`, `1s`, `2.5s`, `5m`, `1h` or a number of seconds."""

Percent = Annotated[StrictFloat, Field(ge=0, le=100)]
"""0 to 100."""

Share = Annotated[StrictFloat, Field(ge=0, le=1)]
"""0 to 1."""


def _upstream(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise problem(f"upstream is not a valid URL ({exc}): {url!r}") from None
    try:
        port = parts.port
    except ValueError:
        port = 0
    reason = (
        "must be an http:// or https:// URL" if parts.scheme not in ("http", "https")
        else "has no host" if not parts.hostname
        else "must not hold credentials" if "@" in parts.netloc
        else "must not contain spaces" if re.search(r"\s", url)
        else "must not have a query (?...)" if parts.query or url.endswith("?")
        else "must not have a fragment (#...)" if parts.fragment or "#" in url
        else "port must be a number from 1 to 65535" if port == 0
        else None
    )  # fmt: skip
    if reason is not None:
        raise problem(f"upstream {reason}: {url!r}")
    return url.rstrip("/")


Upstream = Annotated[str, AfterValidator(_upstream)]
"""An absolute http(s) base URL with a host, without query or fragment; trailing '/' removed."""


def _known(known: tuple[str, ...]) -> Callable[[str], str]:
    def check(name: str) -> str:
        message = unknown_metric_message(name, known)
        if message is not None:
            raise problem(message)
        return name

    return check


GuardrailMetric = Annotated[
    str, AfterValidator(_known(GUARDRAIL_METRICS)), Field(json_schema_extra={"enum": list(GUARDRAIL_METRICS)})
]
"""A metric a guardrail may bound."""

GoalMetric = Annotated[
    str, AfterValidator(_known(GOAL_METRICS)), Field(json_schema_extra={"enum": list(GOAL_METRICS)})
]
"""A metric a goal may ask to move."""
