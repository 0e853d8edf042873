"""Open Inference Protocol response bodies for the comparator tests (built here, not with modelserver)."""

from __future__ import annotations

import orjson
from hypothesis import strategies as st

Rows = list[list[float]]


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
