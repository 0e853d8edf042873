"""Reading Open Inference Protocol (v2) responses for the OIP comparators.

Usage: `a, b = output_pair(primary, shadow, output=None)`: the chosen output of each answer as float64 arrays
of the same shape, or `NotComparable` saying why there are none.

An answer is `{"outputs": [{"name", "shape", "datatype", "data"}, ...], ...}`, with `data` flat (row-major)
or nested. Bodies come from upstreams we do not control, so nothing here trusts them: parsing is orjson
(which refuses nesting deeper than 1024), nested data is flattened without recursion, and the declared shape
is only used once the data is known to fill it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import orjson
from numpy.typing import NDArray

Array = NDArray[np.float64]
MAX_DIMS = 32
"""More dimensions than any model output has; NumPy refuses more than 64."""
_NUMBERS = frozenset({int, float})
"""Types of output values: exactly these, since bool is an int but true/false are labels, not scores."""
EPS = 1e-12
"""Floor of the relative difference's denominator, so that two zeros differ by 0, not NaN."""


class NotComparable(Exception):
    """The two answers cannot be compared; the message says why (it becomes the `compare_error` field)."""


def check_output_name(output: object) -> None:
    """Raise ValueError unless `output` (a comparator option) is None or a non-empty string."""
    if output is not None and (not isinstance(output, str) or not output):
        raise ValueError(f"output must be an output name or None, not {output!r}")


def output_pair(primary: bytes, shadow: bytes, output: str | None) -> tuple[Array, Array]:
    """The output named `output` (default: the primary's first output) of both answers, of equal shapes."""
    primary_outputs = _outputs(primary, "primary")
    shadow_outputs = _outputs(shadow, "shadow")
    name = primary_outputs[0].get("name") if output is None else output
    if not isinstance(name, str):
        raise NotComparable("primary answer is not an OIP response: its first output has no name")
    a = _array(_find(primary_outputs, name, "primary"), "primary")
    b = _array(_find(shadow_outputs, name, "shadow"), "shadow")
    if a.shape != b.shape:
        raise NotComparable(f"output shapes differ: {_shape_text(a.shape)} vs {_shape_text(b.shape)}")
    return a, b


def differences(a: Array, b: Array) -> tuple[Array, Array]:
    """Element-wise |a − b| and |a − b| / max(|a|, |b|, EPS); a difference that overflows is inf."""
    with np.errstate(over="ignore"):  # 1e308 − (−1e308): inf is the honest answer, not a warning
        abs_diff = np.abs(a - b)
    return abs_diff, abs_diff / np.maximum(np.maximum(np.abs(a), np.abs(b)), EPS)


def _outputs(body: bytes, who: str) -> list[dict[str, object]]:
    try:
        doc: object = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise NotComparable(f"{who} answer is not JSON") from None
    outputs: object = doc.get("outputs") if isinstance(doc, dict) else None
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, dict) for o in outputs):
        raise NotComparable(f"{who} answer is not an OIP response: no list of outputs")
    return outputs


def _find(outputs: list[dict[str, object]], name: str, who: str) -> dict[str, object]:
    for out in outputs:
        if out.get("name") == name:
            return out
    raise NotComparable(f"output {name!r} missing from {who} answer")


def _array(out: dict[str, object], who: str) -> Array:
    shape = out.get("shape")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_is_size(d) for d in shape):
        raise NotComparable(f"{who} output has no valid shape")
    values = _flatten(out.get("data"), who)
    if len(values) != math.prod(shape):
        raise NotComparable(f"{who} output has {len(values)} values for shape {_shape_text(shape)}")
    return np.array(values, dtype=np.float64).reshape(shape)


def _flatten(data: object, who: str) -> list[int | float]:
    if not isinstance(data, list):
        raise NotComparable(f"{who} output data is not a list")
    values: list[int | float] = []
    # A stack of iterators instead of recursion: the depth is the body's, and the body is not ours.
    stack: list[Iterator[object]] = [iter((data,))]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list) and _NUMBERS.issuperset(map(type, item)):
                values.extend(item)  # the usual case, a list of numbers, checked and copied at C speed
            elif isinstance(item, list):
                stack.append(iter(item))
                break
            elif isinstance(item, int | float) and not isinstance(item, bool):
                values.append(item)
            else:
                raise NotComparable(f"{who} output data is not numeric")
        else:
            stack.pop()
    return values


def _is_size(dim: object) -> bool:
    return type(dim) is int and dim >= 0


def _shape_text(shape: Sequence[object]) -> str:
    return "[" + ",".join(map(str, shape)) + "]"
