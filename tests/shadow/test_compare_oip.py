"""Reading OIP responses: what counts as comparable, and why not when not."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from shadow.compare.oip import MAX_DIMS, NotComparable, differences, output_pair
from tests.shadow.bodies import oip, output, scores

ROWS = [[0.1, 0.7, 0.2], [0.5, 0.4, 0.1]]


def test_nested_and_flat_data_read_the_same() -> None:
    a, b = output_pair(scores(ROWS, nested=True), scores(ROWS), None)
    assert a.shape == (2, 3)
    assert np.array_equal(a, b)
    assert np.array_equal(a, np.array(ROWS))


def test_first_output_of_the_primary_is_matched_by_name_in_the_shadow() -> None:
    primary = oip(output("label", [[1.0]]), output("probabilities", ROWS))
    shadow = oip(output("probabilities", ROWS), output("label", [[1.0]]))
    a, b = output_pair(primary, shadow, None)
    assert a.tolist() == b.tolist() == [[1.0]]
    a, b = output_pair(primary, shadow, "probabilities")
    assert a.tolist() == b.tolist() == ROWS


def test_integers_are_values() -> None:
    a, _ = output_pair(scores([[1, 2]]), scores([[1, 2]]), None)
    assert a.dtype == np.float64
    assert a.tolist() == [[1.0, 2.0]]


def _with(**fields: object) -> bytes:
    out = {"name": "y", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 0.5]} | fields
    return orjson.dumps({"outputs": [out]})


@pytest.mark.parametrize(
    ("primary", "shadow", "why"),
    [
        (scores(ROWS), b"<html>502</html>", "shadow answer is not JSON"),
        (b"", scores(ROWS), "primary answer is not JSON"),
        (scores(ROWS), b"[1, 2]", "shadow answer is not an OIP response: no list of outputs"),
        (b'{"outputs": []}', scores(ROWS), "primary answer is not an OIP response"),
        (b'{"outputs": [3]}', scores(ROWS), "output 'outputs' missing from shadow answer"),  # TF columnar
        (b'{"outputs": [{"shape": [1]}]}', scores(ROWS), "its first output has no name"),
        (scores(ROWS), oip(output("logits", ROWS)), "output 'probabilities' missing from shadow answer"),
        (scores(ROWS), scores(ROWS[:1]), "output shapes differ: [2,3] vs [1,3]"),
        (_with(data=[0.5]), _with(), "primary output has 1 values for shape [1,2]"),
        (_with(), _with(data=[0.5, "0.5"]), "shadow output data is not numeric"),
        (_with(), _with(data=[0.5, True]), "shadow output data is not numeric"),
        (_with(), _with(data=[[0.5], [None]]), "shadow output data is not numeric"),
        (_with(), _with(data={"a": 1}), "shadow output data is not a list"),
        (_with(shape=[1, -2]), _with(), "primary output has no valid shape"),
        (_with(shape=[1, 2.0]), _with(), "primary output has no valid shape"),
        (_with(shape="1x2"), _with(), "primary output has no valid shape"),
        (_with(shape=[1] * (MAX_DIMS + 1)), _with(), "primary output has no valid shape"),
    ],
)
def test_not_comparable_says_why(primary: bytes, shadow: bytes, why: str) -> None:
    with pytest.raises(NotComparable) as caught:
        output_pair(primary, shadow, None)
    assert why in str(caught.value)


def test_deeply_nested_data_does_not_recurse() -> None:
    deep = b"[" * 1000 + b"0.5" + b"]" * 1000
    body = b'{"outputs": [{"name": "y", "shape": [1], "data": ' + deep + b"}]}"
    a, _ = output_pair(body, body, None)
    assert a.tolist() == [0.5]


def test_a_huge_declared_shape_allocates_nothing() -> None:
    with pytest.raises(NotComparable, match="has 2 values for shape"):
        output_pair(_with(shape=[10**12, 10**12]), _with(), None)


def test_differences_are_absolute_and_relative_with_a_floor() -> None:
    abs_diff, rel_diff = differences(np.array([0.0, 2.0, -1.0, 1e308]), np.array([0.0, 1.0, 1.0, -1e308]))
    assert abs_diff.tolist() == [0.0, 1.0, 2.0, float("inf")]
    assert rel_diff.tolist() == [0.0, 0.5, 2.0, float("inf")]
