"""The `oip-top1` comparison kind: golden cases."""

from __future__ import annotations

import pytest

from shadow.compare import Comparison
from shadow.compare.oip_top1 import OipTop1
from tests.shadow.bodies import oip, output, scores

top1 = OipTop1()


def test_same_top_classes_agree_and_report_score_differences() -> None:
    result = top1(scores([[0.1, 0.9], [0.8, 0.2]]), scores([[0.2, 0.8], [0.6, 0.4]]))
    assert result.agree is True
    assert (result.rows, result.rows_agree) == (2, 2)
    assert result.max_abs_diff == pytest.approx(0.2)
    assert result.max_rel_diff == pytest.approx(0.5)  # 0.1 against 0.2
    assert result.exceed is None
    assert result.detail is None


def test_one_row_of_a_batch_disagrees() -> None:
    primary = scores([[0.1, 0.9, 0.0], [0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    shadow = scores([[0.1, 0.9, 0.0], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    result = top1(primary, shadow)
    assert result.agree is False
    assert (result.rows, result.rows_agree) == (3, 2)
    assert result.to_json()["agree"] is False


@pytest.mark.parametrize(
    ("primary_row", "shadow_row", "agree"),
    [
        ([0.5, 0.5, 0.0], [0.5, 0.5, 0.0], True),  # the same tie breaks the same way
        ([0.5, 0.5, 0.0], [0.6, 0.4, 0.0], True),  # a tie goes to the lowest index: class 0
        ([0.5, 0.5, 0.0], [0.4, 0.6, 0.0], False),
        ([0.0, 0.5, 0.5], [0.0, 0.5, 0.5001], False),
    ],
)
def test_ties_go_to_the_lowest_index(primary_row: list[float], shadow_row: list[float], agree: bool) -> None:
    assert top1(scores([primary_row]), scores([shadow_row])).agree is agree


def test_nested_and_flat_data_agree() -> None:
    rows = [[0.1, 0.9], [0.8, 0.2]]
    result = top1(scores(rows, nested=True), scores(rows))
    assert (result.agree, result.rows_agree, result.max_abs_diff) == (True, 2, 0.0)


def test_the_chosen_output_is_compared() -> None:
    primary = oip(output("label", [[0.0, 1.0]]), output("probabilities", [[0.9, 0.1]]))
    shadow = oip(output("label", [[0.0, 1.0]]), output("probabilities", [[0.1, 0.9]]))
    assert top1(primary, shadow).agree is True
    assert OipTop1(output="probabilities")(primary, shadow).agree is False


@pytest.mark.parametrize(
    ("primary", "shadow", "detail"),
    [
        (scores([[0.1, 0.9]]), scores([[0.1, 0.9], [0.2, 0.8]]), "output shapes differ: [1,2] vs [2,2]"),
        (scores([[0.1, 0.9]]), b"upstream timed out", "shadow answer is not JSON"),
        (scores([[0.1, 0.9]]), oip(output("logits", [[0.1, 0.9]])), "output 'probabilities' missing"),
        (
            oip({"name": "y", "shape": [1, 2, 2], "data": [0.1, 0.9, 0.2, 0.8]}),
            oip({"name": "y", "shape": [1, 2, 2], "data": [0.1, 0.9, 0.2, 0.8]}),
            "oip-top1 needs",
        ),
        (
            oip({"name": "y", "shape": [0, 3], "data": []}),
            oip({"name": "y", "shape": [0, 3], "data": []}),
            "output has no rows",
        ),
        (
            oip({"name": "y", "shape": [2, 0], "data": []}),
            oip({"name": "y", "shape": [2, 0], "data": []}),
            "output has no rows or no classes",
        ),
    ],
)
def test_not_comparable(primary: bytes, shadow: bytes, detail: str) -> None:
    result = top1(primary, shadow)
    assert result.agree is None
    assert result.detail is not None
    assert result.detail.startswith(detail)
    assert result == Comparison(agree=None, detail=result.detail)
    assert result.to_json() == {"rows": 0, "rows_agree": 0, "compare_error": result.detail}
