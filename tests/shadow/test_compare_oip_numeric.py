"""The `oip-numeric` comparison kind: golden cases and tolerance boundaries."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from shadow.compare.oip_numeric import OipNumeric
from tests.shadow.bodies import oip, scores

numeric = OipNumeric()


def test_equal_outputs_agree_with_no_difference() -> None:
    body = scores([[0.1, 0.9], [0.8, 0.2]])
    result = numeric(body, body)
    assert (result.agree, result.exceed, result.rows, result.rows_agree) == (True, False, 2, 2)
    assert (result.max_abs_diff, result.max_rel_diff) == (0.0, 0.0)


def test_one_value_off_fails_its_row_only() -> None:
    result = numeric(scores([[1.0, 2.0], [3.0, 4.0]]), scores([[1.0, 2.0], [3.0, 4.5]]))
    assert (result.agree, result.exceed, result.rows, result.rows_agree) == (False, True, 2, 1)
    assert result.max_abs_diff == 0.5
    assert result.max_rel_diff == 0.5 / 4.5
    assert result.to_json() == {
        "agree": False,
        "rows": 2,
        "rows_agree": 1,
        "max_abs_diff": 0.5,
        "max_rel_diff": 0.5 / 4.5,
        "exceed": True,
    }


@pytest.mark.parametrize(
    ("shadow_value", "exceed"),
    [
        (3.0, False),  # |2 − 3| = 1 = atol + rtol·|2|: on the boundary is inside, as in numpy.isclose
        (1.0, False),
        (math.nextafter(3.0, math.inf), True),
        (1.0 - 2**-50, True),
    ],
)
def test_exact_tolerance_boundary(shadow_value: float, exceed: bool) -> None:
    # 0.5, 0.25 and 2 are exact in binary, so the boundary is exactly |p − s| = 1.
    result = OipNumeric(atol=0.5, rtol=0.25)(scores([[2.0]]), scores([[shadow_value]]))
    assert result.exceed is exceed
    assert result.agree is not exceed
    assert bool(np.isclose(shadow_value, 2.0, rtol=0.25, atol=0.5)) is not exceed


@pytest.mark.parametrize(
    ("primary", "shadow", "exceed"),
    [
        (1.0, 1.0 + 0.9e-3, False),  # default tolerance at 1.0 is 1e-6 + 1e-3
        (1.0, 1.0 + 1.1e-3, True),
        (0.0, 0.9e-6, False),  # at zero only atol is left
        (0.0, 1.1e-6, True),
        (1000.0, 1001.0, False),  # the tolerance is relative to the primary's value
        (1.0, 0.0, True),
    ],
)
def test_default_tolerances_just_inside_and_just_outside(primary: float, shadow: float, exceed: bool) -> None:
    assert numeric(scores([[primary]]), scores([[shadow]])).exceed is exceed


def test_tolerance_is_relative_to_the_primary() -> None:
    tolerant = OipNumeric(atol=0.0, rtol=0.5)
    assert tolerant(scores([[2.0]]), scores([[1.0]])).exceed is False  # |1| ≤ 0.5·2
    assert tolerant(scores([[1.0]]), scores([[2.0]])).exceed is True  # |1| > 0.5·1


def test_any_shape_is_compared_and_rows_are_the_first_axis() -> None:
    one: dict[str, object] = {"name": "y", "shape": [2, 2, 2], "data": [0.0] * 8}
    other = one | {"data": [0.0] * 7 + [1.0]}
    result = numeric(oip(one), oip(other))
    assert (result.rows, result.rows_agree, result.agree, result.max_abs_diff) == (2, 1, False, 1.0)


def test_overflowing_difference_is_inf_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = numeric(scores([[1e308]]), scores([[-1e308]]))
    assert (result.exceed, result.max_abs_diff, result.max_rel_diff) == (True, math.inf, math.inf)


def test_empty_output_is_not_comparable() -> None:
    empty = oip({"name": "y", "shape": [0, 4], "data": []})
    result = numeric(empty, empty)
    assert (result.agree, result.detail) == (None, "output has no values: shape [0, 4]")


def test_not_comparable_answers() -> None:
    result = numeric(scores([[1.0, 2.0]]), scores([[1.0], [2.0]]))
    assert (result.agree, result.exceed, result.detail) == (
        None,
        None,
        "output shapes differ: [1,2] vs [2,1]",
    )
    assert numeric(scores([[1.0]]), b"\x00\x01").detail == "shadow answer is not JSON"
