"""Reading Open Inference Protocol (v2) responses for the OIP comparators.

Usage:
    a, b = output_pair(primary, shadow, output=None)  # the chosen output of each answer as float64 arrays
    ta, tb = tensor_pair(primary, shadow, output)     # the same output as `Tensor`s, values not read yet
    ta.numbers(), ta.labels()                          # its values as float64, or as exact labels
Either raises `NotComparable` saying why there is nothing to compare.

An answer is `{"outputs": [{"name", "shape", "datatype", "data"}, ...], ...}`, with `data` flat (row-major)
or nested, or — with the binary tensor extension — the JSON part (its length in the header
`Inference-Header-Content-Length`) followed by the raw little-endian data of every output that has
`parameters.binary_data_size`, in the order of `outputs` (BYTES elements: a 4-byte little-endian length, then
the bytes). TF Serving's `predictions` and columnar `outputs` are read too (shadow.compare.tfserving).
A Content-Encoding (gzip, deflate) is undone first (`shadow.compare.answer`). Bodies come from
upstreams we do not control, so nothing here trusts them: parsing is orjson (which refuses nesting deeper
than 1024), nested data is flattened without recursion, binary framing must account for every byte, and the
declared shape is only used once the data is known to fill it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from shadow.compare.answer import Answer, NotComparable, as_answer, decoded, split_binary
from shadow.compare.tfserving import is_tf_answer, tf_outputs

__all__ = ["NotComparable", "Tensor", "check_output_name", "differences", "output_pair", "tensor_pair"]

Array = NDArray[np.float64]
Labels = NDArray[Any]
"""An array of Python values (int, float, bool, str, bytes): compared exactly, element by element."""
MAX_DIMS = 32
"""More dimensions than any model output has; NumPy refuses more than 64."""
_NUMBERS = frozenset({int, float})
"""Types of score values: exactly these, since bool is an int but true/false are labels, not scores."""
_LABEL_VALUES = frozenset({int, float, bool, str})
"""Types of label values in JSON data (BYTES data is strings)."""
EPS = 1e-12
"""Floor of the relative difference's denominator, so that two zeros differ by 0, not NaN."""
FIXED_WIDTH = {
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BOOL": "<u1",
}
"""NumPy types of the OIP datatypes in binary data (BOOL: one byte, nonzero is true)."""
BYTES_PREFIX = 4
"""Binary BYTES elements: a 4-byte little-endian length before each element's bytes."""


def check_output_name(output: object, option: str = "output") -> None:
    """Raise ValueError unless `output` (a comparator option) is None or a non-empty string."""
    if output is not None and (not isinstance(output, str) or not output):
        raise ValueError(f"{option} must be an output name or None, not {output!r}")


@dataclass(frozen=True, slots=True)
class Tensor:
    """One output of one answer: its name, declared datatype and shape, and its data (JSON or binary)."""

    who: str
    """`primary` or `shadow` (for messages)."""
    name: str
    datatype: str | None
    """The declared datatype in upper case (None if the output declares none)."""
    shape: tuple[int, ...]
    data: object
    """The JSON `data` field (when `raw` is None)."""
    raw: memoryview | None
    """The output's bytes in the binary data, when it has `parameters.binary_data_size`."""

    @property
    def size(self) -> int:
        """Number of values the shape declares."""
        return math.prod(self.shape)

    def numbers(self) -> Array:
        """The values as float64, in the declared shape; NotComparable if they are not numbers."""
        if self.raw is None:
            values = _flatten(self.data, self.who, _NUMBERS, "numeric")
            self._check_count(len(values))
            return np.array(values, dtype=np.float64).reshape(self.shape)
        if self.datatype in (None, "BYTES", "BOOL"):
            raise NotComparable(f"{self.who} output data is not numeric: {self.datatype} binary data")
        return self._fixed_width().astype(np.float64).reshape(self.shape)

    def labels(self) -> Labels:
        """The values as exact Python values (BYTES as text when it is UTF-8), in the declared shape."""
        values: list[Any]
        if self.raw is None:
            values = _flatten(self.data, self.who, _LABEL_VALUES, "numbers or text")
            self._check_count(len(values))
        elif self.datatype == "BYTES":
            values = _byte_strings(self.raw, self.size, self.who)
        elif self.datatype == "BOOL":
            values = (self._fixed_width() != 0).tolist()
        else:
            values = self._fixed_width().tolist()
        out = np.empty(len(values), dtype=object)
        out[:] = values  # element by element: a list of strings must not become a character array
        return out.reshape(self.shape)

    def _fixed_width(self) -> NDArray[Any]:
        assert self.raw is not None
        dtype = FIXED_WIDTH.get(self.datatype or "")
        if dtype is None:
            raise NotComparable(f"{self.who} output has binary data of unknown datatype {self.datatype!r}")
        width = np.dtype(dtype).itemsize
        if len(self.raw) != self.size * width:
            raise NotComparable(
                f"{self.who} output has {len(self.raw)} bytes of binary data for shape "
                f"{_shape_text(self.shape)} of {self.datatype} ({self.size * width} expected)"
            )
        return np.frombuffer(self.raw, dtype=dtype)

    def _check_count(self, count: int) -> None:
        if count != self.size:
            raise NotComparable(f"{self.who} output has {count} values for shape {_shape_text(self.shape)}")


def output_pair(primary: Answer | bytes, shadow: Answer | bytes, output: str | None) -> tuple[Array, Array]:
    """The output named `output` (default: the primary's first output) of both answers as float64 arrays of
    equal shapes."""
    a, b = tensor_pair(primary, shadow, output, same_shape=False)
    numbers_a, numbers_b = a.numbers(), b.numbers()  # each checked against its own shape first
    _check_same_shape(a, b)
    return numbers_a, numbers_b


def tensor_pair(
    primary: Answer | bytes, shadow: Answer | bytes, output: str | None, *, same_shape: bool = True
) -> tuple[Tensor, Tensor]:
    """The output named `output` (default: the primary's first output) of both answers, of equal shapes
    (`same_shape=False`: the caller checks)."""
    primary_outputs = _outputs(as_answer(primary), "primary")
    shadow_outputs = _outputs(as_answer(shadow), "shadow")
    name = primary_outputs[0][0].get("name") if output is None else output
    if not isinstance(name, str):
        raise NotComparable("primary answer is not an OIP response: its first output has no name")
    a = _tensor(_find(primary_outputs, name, "primary"), name, "primary")
    b = _tensor(_find(shadow_outputs, name, "shadow"), name, "shadow")
    if same_shape:
        _check_same_shape(a, b)
    return a, b


def _check_same_shape(a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise NotComparable(f"output shapes differ: {_shape_text(a.shape)} vs {_shape_text(b.shape)}")


def differences(a: Array, b: Array) -> tuple[Array, Array]:
    """Element-wise |a − b| and |a − b| / max(|a|, |b|, EPS); a difference that overflows is inf."""
    with np.errstate(over="ignore"):  # 1e308 − (−1e308): inf is the honest answer, not a warning
        abs_diff = np.abs(a - b)
    return abs_diff, abs_diff / np.maximum(np.maximum(np.abs(a), np.abs(b)), EPS)


Output = tuple[dict[str, object], memoryview | None]
"""An output's JSON object and its binary data (None: its data is in the JSON)."""


def _outputs(answer: Answer, who: str) -> list[Output]:
    json_part, binary = split_binary(answer, decoded(answer, who), who)
    try:
        doc: object = orjson.loads(json_part)
    except orjson.JSONDecodeError:
        raise NotComparable(f"{who} answer is not JSON") from None
    if binary is None and isinstance(doc, dict) and is_tf_answer(doc):  # `predictions`, or columnar `outputs`
        return [(output, None) for output in tf_outputs(doc, who)]
    outputs: object = doc.get("outputs") if isinstance(doc, dict) else None
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, dict) for o in outputs):
        raise NotComparable(f"{who} answer is not an OIP response: no list of outputs")
    return _with_binary(outputs, binary, who)


def _with_binary(outputs: list[dict[str, object]], binary: memoryview | None, who: str) -> list[Output]:
    """Each output with its slice of the binary data; every byte of the data must belong to one output."""
    out: list[Output] = []
    offset = 0
    for i, o in enumerate(outputs):
        params = o.get("parameters")
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is None:
            out.append((o, None))
            continue
        where = f"{who} output {o.get('name', i)!r}"
        if type(size) is not int or size < 0:
            raise NotComparable(f"{where} has an invalid binary_data_size: {str(size)[:40]}")
        if binary is None:
            raise NotComparable(
                f"{where} has binary data but the answer has no Inference-Header-Content-Length"
            )
        if offset + size > len(binary):
            raise NotComparable(
                f"{where}: binary_data_size {size} runs past the end of the binary data "
                f"({len(binary) - offset} bytes left)"
            )
        out.append((o, binary[offset : offset + size]))
        offset += size
    if binary is not None and offset != len(binary):
        raise NotComparable(
            f"{who} answer has {len(binary) - offset} bytes of binary data that no output's binary_data_size "
            "accounts for"
        )
    return out


def _find(outputs: list[Output], name: str, who: str) -> Output:
    for out in outputs:
        if out[0].get("name") == name:
            return out
    raise NotComparable(f"output {name!r} missing from {who} answer")


def _tensor(output: Output, name: str, who: str) -> Tensor:
    out, raw = output
    shape = out.get("shape")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_is_size(d) for d in shape):
        raise NotComparable(f"{who} output has no valid shape")
    datatype = out.get("datatype")
    declared = datatype.upper() if isinstance(datatype, str) else None
    if raw is None and "data" not in out:
        raise NotComparable(f"{who} output {name!r} has neither data nor binary_data_size")
    return Tensor(who, name, declared, tuple(shape), out.get("data"), raw)


def _flatten(data: object, who: str, kinds: frozenset[type], what: str) -> list[Any]:
    if not isinstance(data, list):
        raise NotComparable(f"{who} output data is not a list")
    values: list[Any] = []
    # A stack of iterators instead of recursion: the depth is the body's, and the body is not ours.
    stack: list[Iterator[object]] = [iter((data,))]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list) and kinds.issuperset(map(type, item)):
                values.extend(item)  # the usual case, a list of values, checked and copied at C speed
            elif isinstance(item, list):
                stack.append(iter(item))
                break
            elif type(item) in kinds:
                values.append(item)
            else:
                raise NotComparable(f"{who} output data is not {what}")
        else:
            stack.pop()
    return values


def _byte_strings(raw: memoryview, count: int, who: str) -> list[Any]:
    """The `count` elements of binary BYTES data: text when it is UTF-8, bytes otherwise."""
    values: list[Any] = []
    offset = 0
    while len(values) < count and offset + BYTES_PREFIX <= len(raw):
        length = int.from_bytes(raw[offset : offset + BYTES_PREFIX], "little")
        offset += BYTES_PREFIX
        if offset + length > len(raw):
            break
        element = bytes(raw[offset : offset + length])
        offset += length
        try:
            values.append(element.decode("utf-8"))
        except UnicodeDecodeError:
            values.append(element)
    if len(values) != count or offset != len(raw):
        raise NotComparable(
            f"{who} output's BYTES binary data does not hold exactly {count} length-prefixed elements"
        )
    return values


def _is_size(dim: object) -> bool:
    return type(dim) is int and dim >= 0


def _shape_text(shape: Sequence[object]) -> str:
    return "[" + ",".join(map(str, shape)) + "]"
