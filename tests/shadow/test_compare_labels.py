"""`oip-top1` on label outputs: class ids and names are compared by value, row by row, never by an argmax of
a one-value row (which would make any two labels agree)."""

from __future__ import annotations

import numpy as np
import pytest

from shadow.compare import Answer, Comparison, comparator
from shadow.compare.oip_top1 import OipTop1
from tests.shadow.bodies import binary, labels, oip, output, scores

top1 = OipTop1()


def differing(rows: int, differ: set[int], base: int = 0) -> tuple[list[int], list[int]]:
    """Primary and shadow labels of `rows` rows that differ exactly on the rows in `differ`."""
    primary = [(base + i) % 10 for i in range(rows)]
    return primary, [(p + 1) % 10 if i in differ else p for i, p in enumerate(primary)]


def test_int64_labels_of_shape_n_1_count_every_differing_row() -> None:
    rng = np.random.default_rng(3)
    differ = {int(i) for i in rng.choice(400, size=35, replace=False)}
    primary, shadow = differing(400, differ)
    result = top1(oip(labels("predict", primary)), oip(labels("predict", shadow)))
    assert (result.agree, result.rows, result.rows_agree) == (False, 400, 365)
    assert (result.max_abs_diff, result.max_rel_diff, result.detail) == (None, None, None)
    same = top1(oip(labels("predict", primary)), oip(labels("predict", primary)))
    assert (same.agree, same.rows, same.rows_agree) == (True, 400, 400)


def test_the_argmax_of_a_one_value_row_would_have_agreed() -> None:
    """What was wrong: every row of shape [N, 1] has argmax 0, whatever its label."""
    primary, shadow = differing(4, {0, 1, 2, 3})
    assert (
        np.argmax(np.array([primary]).T, axis=1).tolist() == np.argmax(np.array([shadow]).T, axis=1).tolist()
    )
    assert top1(oip(labels("y", primary)), oip(labels("y", shadow))).rows_agree == 0


@pytest.mark.parametrize(
    "datatype", ["INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"]
)
def test_every_integer_datatype_holds_labels_whatever_the_shape(datatype: str) -> None:
    # Shape [2, 3]: three integer labels per row (multi-label); a row agrees when all three do.
    primary = oip({"name": "y", "shape": [2, 3], "datatype": datatype, "data": [1, 2, 3, 4, 5, 6]})
    shadow = oip({"name": "y", "shape": [2, 3], "datatype": datatype, "data": [1, 2, 3, 4, 6, 5]})
    result = top1(primary, shadow)
    assert (result.agree, result.rows, result.rows_agree) == (False, 2, 1)
    assert top1(primary, primary) == Comparison(agree=True, rows=2, rows_agree=2)


def test_bytes_labels_are_compared_as_text() -> None:
    primary = ["cat", "dog", "bird", "cat", "fish"]
    shadow = ["cat", "dog", "cat", "cat", "fish "]
    result = top1(oip(labels("label", primary, "BYTES")), oip(labels("label", shadow, "BYTES")))
    assert (result.agree, result.rows, result.rows_agree) == (False, 5, 3)
    assert top1(oip(labels("label", primary, "BYTES")), oip(labels("label", primary, "BYTES"))).agree is True


def test_bytes_and_numbers_are_not_comparable() -> None:
    result = top1(oip(labels("y", ["3"], "BYTES")), oip(labels("y", [3])))
    assert result == Comparison(agree=None, detail="output datatypes differ: BYTES vs INT64")


def test_labels_are_exact_beyond_float_precision() -> None:
    big = 2**60
    result = top1(oip(labels("y", [big, big])), oip(labels("y", [big, big + 1])))
    assert (result.rows, result.rows_agree) == (2, 1)


def test_integer_and_float_labels_of_the_same_value_agree_but_text_does_not() -> None:
    assert top1(oip(labels("y", [3, 4])), oip(labels("y", [3.0, 4.0], "FP32"))).rows_agree == 2
    result = top1(oip(labels("y", [3, 4], "BYTES")), oip(labels("y", ["3", "4"], "BYTES")))
    assert (result.agree, result.rows, result.rows_agree) == (False, 2, 0)


def test_bool_labels_are_not_numbers() -> None:
    primary = oip(labels("y", [True, False, True], "BOOL"))
    assert top1(primary, oip(labels("y", [True, True, True], "BOOL"))).rows_agree == 2
    assert top1(primary, oip(labels("y", [1, 0, 1]))).rows_agree == 0


def test_one_value_per_row_is_a_label_whatever_the_datatype() -> None:
    # FP32 of shape [N, 1] or [N]: one number per row, compared by equality (oip-numeric has tolerances).
    result = top1(oip(labels("y", [0.5, 0.25], "FP32")), oip(labels("y", [0.5, 0.2500001], "FP32")))
    assert (result.rows, result.rows_agree) == (2, 1)
    flat: dict[str, object] = {"name": "y", "shape": [3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}
    one_per_row = top1(oip(flat), oip(flat | {"data": [1.0, 2.0, 4.0]}))
    assert (one_per_row.rows, one_per_row.rows_agree) == (3, 2)


def test_a_declared_label_output_is_compared_by_value() -> None:
    # Two float columns of class ids per row: argmax would compare positions, labels compare values.
    primary = oip(output("classes", [[3.0, 7.0], [1.0, 2.0]]), output("scores", [[0.1, 0.9], [0.6, 0.4]]))
    shadow = oip(output("classes", [[3.0, 8.0], [1.0, 2.0]]), output("scores", [[0.2, 0.8], [0.4, 0.6]]))
    assert top1(primary, shadow).rows_agree == 2  # the first output, classes, as scores: argmax 1 and 1
    declared = OipTop1(label_output="classes")
    assert declared(primary, shadow) == Comparison(agree=False, rows=2, rows_agree=1)
    assert OipTop1(output="classes", label_output="classes")(primary, shadow).rows_agree == 1
    assert comparator("oip-top1", label_output="classes")(primary, shadow).rows_agree == 1


def test_a_label_output_that_is_not_the_one_compared_is_refused() -> None:
    with pytest.raises(ValueError, match="label_output 'classes' is not the output compared"):
        OipTop1(output="scores", label_output="classes")
    with pytest.raises(ValueError, match="label_output must be"):
        OipTop1(label_output="")


def test_score_outputs_still_compare_their_argmax() -> None:
    # FP32 [rows, classes]: different scores, same top class in the first row only.
    result = top1(scores([[0.1, 0.7, 0.2], [0.5, 0.4, 0.1]]), scores([[0.2, 0.6, 0.2], [0.3, 0.6, 0.1]]))
    assert (result.agree, result.rows, result.rows_agree) == (False, 2, 1)
    assert result.max_abs_diff == pytest.approx(0.2)


def test_binary_labels_agree_with_json_labels() -> None:
    primary, shadow = differing(400, {5, 17, 399})
    json_primary = oip(labels("predict", primary))
    binary_shadow = binary(labels("predict", shadow))
    pairs: list[tuple[Answer | bytes, Answer | bytes]] = [
        (json_primary, binary_shadow),
        (binary_shadow, json_primary),
    ]
    for a, b in pairs:
        assert top1(a, b) == Comparison(agree=False, rows=400, rows_agree=397)
    both = top1(binary(labels("predict", primary)), binary(labels("predict", primary)))
    assert both == Comparison(agree=True, rows=400, rows_agree=400)


def test_binary_bytes_labels_read_as_text() -> None:
    names = ["cat", "dög", "", "bird"]
    json_answer = oip(labels("label", names, "BYTES"))
    binary_answer = binary(labels("label", ["cat", "dög", "", "fish"], "BYTES"))
    assert top1(json_answer, binary_answer) == Comparison(agree=False, rows=4, rows_agree=3)
    not_text = binary(labels("label", [b"\xff\xfe", b"ok"], "BYTES"))
    assert top1(not_text, not_text) == Comparison(agree=True, rows=2, rows_agree=2)


def test_label_outputs_without_rows_are_not_comparable() -> None:
    empty = oip({"name": "y", "shape": [0, 1], "datatype": "INT64", "data": []})
    result = top1(empty, empty)
    assert result.agree is None
    assert result.detail == "label output has no rows or no values: [0, 1]"
