"""One way to write figures on every screen (analysis.wording)."""

from __future__ import annotations

import math

import pytest

from analysis.wording import evalue, figure, step_of


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (62.17, "62.2"),
        (0.4027, "0.403"),
        (1.04e5, "1.04e+05"),
        (20.0, "20"),
        (1.0, "1"),
        (2.969e6, "2.97e+06"),
        (1e-5, "1e-05"),
    ],
)
def test_evalues_have_three_significant_digits(value: float, text: str) -> None:
    assert evalue(math.log(value)) == text


def test_astronomical_evalues_are_written_the_same_way_not_as_inf() -> None:
    assert evalue(950.0) == "3.8e+412"  # e^950 = 10^412.5796
    assert evalue(-950.0) == "2.63e-413"
    assert evalue(math.log(10) * 1000) == "1e+1000"
    assert (evalue(math.inf), evalue(-math.inf), evalue(None), evalue(math.nan)) == ("∞", "0", "—", "—")


def test_figures_have_four_significant_digits() -> None:
    assert [figure(v) for v in (0.98094, 221.66, 3, None, math.nan, math.inf, True)] == [
        "0.9809",
        "221.7",
        "3",
        "—",
        "—",
        "—",
        "—",
    ]


def test_steps_count_from_one_of_the_plan() -> None:
    assert step_of(0, [5, 10, 25, 50]) == "1/4"
    assert step_of(3, [5, 10, 25, 50]) == "4/4"
    assert step_of(0, None) == "—"
    assert step_of(0, []) == "—"
