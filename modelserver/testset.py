"""The held-out test set file (`models/test_set.json`) and the OIP infer bodies made from its rows.

Kept free of numpy and scikit-learn so load generators and tests can read it cheaply.

Usage: ts = read_test_set(Path("models/test_set.json")); body = infer_body(ts.x[:32], request_id="r1")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

INPUT_NAME = "input"
FEATURES = 64
CLASSES = 10


@dataclass(frozen=True, slots=True)
class TestSet:
    """Held-out rows: `x[i]` holds 64 pixel values 0..16 (8×8 image, row-major), `y[i]` the digit."""

    __test__ = False  # not a pytest test class, despite the name

    x: list[list[int]]
    y: list[int]


def write_test_set(path: Path, test_set: TestSet, split: dict[str, Any]) -> None:
    """Write `test_set` as JSON with a note on where it came from (`split`: how it was drawn)."""
    doc = {
        "description": "held-out rows of sklearn.datasets.load_digits; x: 64 pixel values 0..16, y: digit",
        "split": split,
        "input": {"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, FEATURES]},
        "x": test_set.x,
        "y": test_set.y,
    }
    path.write_bytes(orjson.dumps(doc))


def read_test_set(path: Path) -> TestSet:
    """Read a file written by `write_test_set`."""
    doc = orjson.loads(path.read_bytes())
    return TestSet(x=[[int(v) for v in row] for row in doc["x"]], y=[int(v) for v in doc["y"]])


def infer_body(rows: Sequence[Sequence[float]], request_id: str | None = None) -> dict[str, Any]:
    """An OIP v2 infer request for `rows` (64 features each): FP32 [len(rows), 64] with flat data."""
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": INPUT_NAME,
                "shape": [len(rows), FEATURES],
                "datatype": "FP32",
                "data": [v for row in rows for v in row],
            }
        ]
    }
    if request_id is not None:
        body["id"] = request_id
    return body
