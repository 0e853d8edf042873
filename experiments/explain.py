"""Pydantic validation errors as findings: a document path and a message written for people.

Usage: `findings = explain(exc.errors(), data)`, `exc` raised by `ExperimentFile.model_validate(data)`
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from experiments.schema_models import ExperimentFile
from experiments.schema_types import PATTERN_HINTS
from experiments.yamlmarks import Finding, Path, describe


def explain(
    errors: Sequence[ErrorDetails], data: object, root: type[BaseModel] = ExperimentFile
) -> list[Finding]:
    """One finding per pydantic error, with the path as written in the document (`root`: the model that
    validated `data`, for the list of allowed keys)."""
    findings = []
    for error in errors:
        ctx = error.get("ctx") or {}
        if _short_after_item_errors(error, ctx):
            continue
        path = data_path(error["loc"], data)
        key = error["type"] == "extra_forbidden"
        if error["type"] == "outrider":
            path = (*path, *ctx.get("at", ()))
            key = bool(ctx.get("key"))
        message = (
            _unknown_key(path, root) if error["type"] == "extra_forbidden" else _message(error, path, ctx)
        )
        findings.append(Finding(path, message, key=key))
    return findings


def _short_after_item_errors(error: ErrorDetails, ctx: dict[str, Any]) -> bool:
    """A list long enough as written, "too short" only because broken items (each reported) were dropped."""
    value = error["input"]
    return error["type"] == "too_short" and isinstance(value, list) and len(value) >= ctx.get("min_length", 0)


def data_path(loc: tuple[int | str, ...], data: object) -> Path:
    """`loc` without the tags pydantic inserts (union members, validator names): only keys and indexes."""
    path: list[str | int] = []
    current = data
    for i, item in enumerate(loc):
        if isinstance(current, dict) and isinstance(item, str):
            if item in current:
                path.append(item)
                current = current[item]
            elif i == len(loc) - 1 and "[" not in item:  # a missing key
                path.append(item)
        elif isinstance(current, list) and isinstance(item, int) and 0 <= item < len(current):
            path.append(item)
            current = current[item]
    return tuple(path)


def allowed_keys(path: Path, root: type[BaseModel] = ExperimentFile) -> list[str]:
    """The keys the model at `path` accepts (empty if `path` does not lead to a model)."""
    tp: object = root
    for item in path:
        tp = _step(_unwrap(tp), item)
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [info.alias or name for name, info in tp.model_fields.items()]
    return []


def _unwrap(tp: object) -> object:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            tp = next(arg for arg in get_args(tp) if arg is not type(None))
        else:
            return tp


def _step(tp: object, item: str | int) -> object:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        fields = {info.alias or name: info.annotation for name, info in tp.model_fields.items()}
        return fields.get(str(item))
    origin, args = get_origin(tp), get_args(tp)
    if origin in (tuple, list) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def _message(error: ErrorDetails, path: Path, ctx: dict[str, Any]) -> str:
    kind, value = error["type"], error["input"]
    got = f", got {describe(value)}"
    if kind in _EXPECTED:
        hint = _text_number_hint(value) if kind in ("float_type", "float_parsing") else ""
        return f"expected {_EXPECTED[kind]}{got}{hint}"
    render = _RENDER.get(kind)
    if render is not None:
        return render(path, ctx, value)
    return f"{error['msg']}{got}"


def _text_number_hint(value: object) -> str:
    # YAML 1.1 (PyYAML) reads `1e-6` as text: a float with an exponent needs a '.' in its mantissa.
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value):
        return " (YAML reads a number without a '.' as text: write it like 1.0e-6)"
    return ""


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _last(path: Path) -> str:
    return str(path[-1]) if path else "(document)"


def _unknown_key(path: Path, root: type[BaseModel]) -> str:
    allowed = allowed_keys(path[:-1], root)
    return f"unknown key {_last(path)!r} (allowed: {', '.join(allowed)})"


def _length(noun: str) -> Callable[[Path, dict[str, Any], object], str]:
    def render(path: Path, ctx: dict[str, Any], value: object) -> str:
        if "min_length" in ctx:
            least = ctx["min_length"]
            return "must not be empty" if least == 1 else f"needs at least {least} {noun}"
        return f"must have at most {ctx['max_length']} {noun}, got {len(value)}"  # type: ignore[arg-type]

    return render


def _bound(sign: str, key: str) -> Callable[[Path, dict[str, Any], object], str]:
    def render(path: Path, ctx: dict[str, Any], value: object) -> str:
        return f"must be {sign} {ctx[key]:g}, got {describe(value)}"

    return render


_RENDER: dict[str, Callable[[Path, dict[str, Any], object], str]] = {
    "outrider": lambda path, ctx, value: str(ctx["message"]),
    "missing": lambda path, ctx, value: f"missing required key {_last(path)!r}",
    "literal_error": lambda path, ctx, value: f"unknown value {describe(value)} (allowed: {ctx['expected']})",
    "string_pattern_mismatch": lambda path, ctx, value: (
        f"{describe(value)} {PATTERN_HINTS.get(ctx['pattern'], 'must match ' + ctx['pattern'])}"
    ),
    "string_too_short": _length("characters"),
    "string_too_long": _length("characters"),
    "too_short": _length("items"),
    "too_long": _length("items"),
    "greater_than": _bound(">", "gt"),
    "greater_than_equal": _bound(">=", "ge"),
    "less_than": _bound("<", "lt"),
    "less_than_equal": _bound("<=", "le"),
}
