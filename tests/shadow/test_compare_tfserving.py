"""TF Serving (and KServe v1) answers compared: `predictions` rows (values, lists, named outputs) and columnar
`outputs`, top class by each row's argmax or labels by value, numbers within a tolerance, ragged or mixed
answers not compared, OIP answers still read as OIP."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shadow.compare.base import comparator
from shadow.compare.oip_numeric import OipNumeric
from shadow.compare.oip_top1 import OipTop1
from shadow.compare.tfserving import is_tf_answer, rectangular, tf_outputs
from tests.shadow.bodies import scores

top1 = OipTop1()


def body(doc: object) -> bytes:
    return orjson.dumps(doc)


def predictions(rows: object) -> bytes:
    return body({"predictions": rows})


def test_score_rows_compare_by_argmax() -> None:
    primary = predictions([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    shadow = predictions([[0.2, 0.8], [0.4, 0.6], [0.3, 0.7]])
    result = top1(primary, shadow)
    assert (result.agree, result.rows, result.rows_agree) == (False, 3, 2)
    assert result.max_abs_diff == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("primary", "shadow", "rows_agree"),
    [
        ([3, 1, 4, 1], [3, 1, 4, 2], 3),  # class ids, one per row
        ([[3], [1], [4], [1]], [[3], [1], [5], [1]], 3),  # [N, 1]
        (["cat", "dog", "cow", "cat"], ["cat", "dog", "cow", "cat"], 4),  # string labels
        ([[1, 0], [0, 1], [1, 1], [0, 0]], [[1, 0], [0, 1], [1, 0], [0, 0]], 3),  # integer rows: labels
        ([{"b64": "YQ=="}, {"b64": "Yg=="}], [{"b64": "YQ=="}, {"b64": "Yw=="}], 1),
    ],
)
def test_label_rows_compare_by_value(primary: object, shadow: object, rows_agree: int) -> None:
    result = top1(predictions(primary), predictions(shadow))
    assert (result.rows, result.rows_agree) == (len(primary), rows_agree)  # type: ignore[arg-type]


def test_named_outputs_per_row() -> None:
    primary = predictions(
        [{"classes": 2, "scores": [0.1, 0.2, 0.7]}, {"classes": 0, "scores": [0.6, 0.3, 0.1]}]
    )
    shadow = predictions(
        [{"classes": 2, "scores": [0.1, 0.1, 0.8]}, {"classes": 1, "scores": [0.3, 0.6, 0.1]}]
    )
    assert top1(primary, shadow).rows_agree == 1  # the first output, `classes`
    assert OipTop1(output="scores")(primary, shadow).rows_agree == 1
    assert OipNumeric(output="scores", atol=0.15, rtol=0)(primary, shadow).rows_agree == 1


def test_a_single_columnar_output() -> None:
    primary, shadow = body({"outputs": [[0.1, 0.9], [0.8, 0.2]]}), body({"outputs": [[0.1, 0.9], [0.3, 0.7]]})
    result = top1(primary, shadow)
    assert (result.rows, result.rows_agree) == (2, 1)
    assert OipNumeric(atol=1e-6)(primary, shadow).exceed is True
    assert OipNumeric(atol=1e-6)(primary, primary).agree is True


def test_named_columnar_outputs() -> None:
    primary = body({"outputs": {"classes": [1, 0], "probabilities": [[0.1, 0.9], [0.8, 0.2]]}})
    shadow = body({"outputs": {"classes": [1, 1], "probabilities": [[0.1, 0.9], [0.3, 0.7]]}})
    assert top1(primary, shadow).rows_agree == 1
    assert OipTop1(output="probabilities")(primary, shadow).rows_agree == 1


def test_numeric_within_tolerance() -> None:
    compare = comparator("oip-numeric", atol=0.01, rtol=0.0)
    result = compare(predictions([[0.5, 0.5], [1.0, 2.0]]), predictions([[0.505, 0.495], [1.0, 2.5]]))
    assert (result.agree, result.rows, result.rows_agree) == (False, 2, 1)
    assert result.max_abs_diff == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("primary", "why"),
    [
        (predictions([[0.1, 0.9], [0.8]]), "is ragged: its lists at depth 1 differ in length"),
        (predictions([[0.1, 0.9], 0.5]), "is ragged: values and lists at depth 1"),
        (predictions([[[1, 2]], [[3], [4]]]), "is ragged"),
        (predictions([]), "predictions is not a non-empty list"),
        (predictions([{"a": 1}, 2]), "mix named outputs and plain values"),
        (predictions([{"a": 1}, {"b": 2}]), "do not all have the same outputs"),
        (body({"outputs": {}}), "answer has no outputs"),
    ],
)
def test_malformed_tf_answers_are_not_compared(primary: bytes, why: str) -> None:
    result = top1(primary, primary)
    assert result.agree is None
    assert why in str(result.detail)


def test_an_oip_answer_and_a_tf_answer_name_their_outputs_differently() -> None:
    result = top1(scores([[0.1, 0.9]]), predictions([[0.1, 0.9]]))
    assert "output 'probabilities' missing from shadow answer" in str(result.detail)


def test_which_answers_are_tf_serving_ones() -> None:
    assert is_tf_answer({"predictions": [1]})
    assert is_tf_answer({"outputs": {"y": [1]}})
    assert is_tf_answer({"outputs": [[0.5]]})
    assert is_tf_answer({"outputs": [{"b64": "YQ=="}]})
    assert not is_tf_answer({"outputs": [{"name": "y", "shape": [1], "data": [1]}]})
    assert not is_tf_answer({"outputs": []})
    assert not is_tf_answer([1])


def test_shapes_and_inferred_datatypes() -> None:
    assert rectangular([[1, 2, 3], [4, 5, 6]], "x") == ([2, 3], [1, 2, 3, 4, 5, 6])
    assert rectangular([[], []], "x") == ([2, 0], [])
    assert rectangular(7, "x") == ([], [7])
    outputs = tf_outputs({"predictions": [{"i": 1, "s": "a", "b": True, "f": 0.5}]}, "primary")
    assert [(o["name"], o["shape"], o["datatype"]) for o in outputs] == [
        ("i", [1], "INT64"),
        ("s", [1], "BYTES"),
        ("b", [1], "BOOL"),
        ("f", [1], None),
    ]


def test_deep_nesting_does_not_recurse() -> None:
    deep: Any = [[[[[[[[[[[[0.5]]]]]]]]]]]]
    for _ in range(20):
        deep = [deep]
    shape, values = rectangular(deep, "x")
    assert (len(shape), values) == (32, [0.5])
