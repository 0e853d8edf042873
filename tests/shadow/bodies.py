"""Open Inference Protocol response bodies for the comparator tests (built here, not with modelserver)."""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Sequence

import numpy as np
import orjson
from hypothesis import strategies as st

from shadow.compare.answer import Answer

Rows = list[list[float]]
WIDTH = {"INT8": "<i1", "INT32": "<i4", "INT64": "<i8", "UINT8": "<u1", "FP16": "<f2", "FP32": "<f4",
         "FP64": "<f8", "BOOL": "<u1"}  # fmt: skip


def output(name: str, rows: Rows, *, nested: bool = False, datatype: str = "FP32") -> dict[str, object]:
    """One OIP output of shape [len(rows), len(rows[0])], its data nested per row or flat (row-major)."""
    data: list[object] = list(rows) if nested else [value for row in rows for value in row]
    return {
        "name": name,
        "shape": [len(rows), len(rows[0]) if rows else 0],
        "datatype": datatype,
        "data": data,
    }


def oip(*outputs: dict[str, object], model: str = "iris") -> bytes:
    """An OIP v2 inference response holding `outputs`."""
    return orjson.dumps({"model_name": model, "id": "req-1", "outputs": list(outputs)})


def scores(rows: Rows, *, nested: bool = False) -> bytes:
    """A response with one output, `probabilities`, holding `rows`."""
    return oip(output("probabilities", rows, nested=nested))


finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def score_rows(draw: st.DrawFn, max_rows: int = 6, max_classes: int = 6) -> Rows:
    """A batch of score rows, all of one width."""
    classes = draw(st.integers(1, max_classes))
    row = st.lists(finite, min_size=classes, max_size=classes)
    return draw(st.lists(row, min_size=1, max_size=max_rows))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | finite | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)
"""Any JSON value orjson can write."""


def labels(name: str, values: Sequence[object], datatype: str = "INT64") -> dict[str, object]:
    """A label output of shape [len(values), 1], one label per row (a common default answer)."""
    return {"name": name, "shape": [len(values), 1], "datatype": datatype, "data": list(values)}


def raw_data(values: Sequence[object], datatype: str) -> bytes:
    """`values` as the binary tensor extension writes them: little-endian, BYTES length-prefixed."""
    if datatype == "BYTES":
        out = b""
        for value in values:
            item = value.encode() if isinstance(value, str) else value
            assert isinstance(item, bytes)
            out += struct.pack("<I", len(item)) + item
        return out
    return np.asarray(values, dtype=WIDTH[datatype]).tobytes()


def binary(*outputs: dict[str, object], binary_names: Sequence[str] | None = None, **extra: object) -> Answer:
    """An OIP answer whose outputs (all, or those named in `binary_names`) carry their data in the binary
    tensor extension, in order after the JSON part."""
    head: list[dict[str, object]] = []
    tail = b""
    for out in outputs:
        if binary_names is not None and out["name"] not in binary_names:
            head.append(out)
            continue
        flat = np.asarray(out["data"], dtype=object).reshape(-1).tolist()
        raw = raw_data(flat, str(out["datatype"]))
        head.append(
            {k: v for k, v in out.items() if k != "data"} | {"parameters": {"binary_data_size": len(raw)}}
        )
        tail += raw
    json_part = orjson.dumps({"model_name": "m", "id": "b-1", "outputs": head} | extra)
    return Answer(json_part + tail, {"Inference-Header-Content-Length": str(len(json_part))})


def gzipped(answer: Answer | bytes, coding: str = "gzip") -> Answer:
    """The same answer with its body gzip- (or zlib-, `deflate`) encoded and Content-Encoding set."""
    plain = answer if isinstance(answer, Answer) else Answer(answer)
    body = gzip.compress(plain.body) if coding == "gzip" else zlib.compress(plain.body)
    return Answer(body, {**plain.headers, "Content-Encoding": coding}, plain.max_bytes)
