"""Duration strings and numbers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("1s", 1.0),
        ("2.5s", 2.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        (".5s", 0.5),
        (3, 3.0),
        (0.25, 0.25),
    ],
)
def test_parses(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "bad duration 'soon'"),
        ("5", "bad duration '5'"),
        ("1 s", "bad duration '1 s'"),
        ("", "bad duration ''"),
        ("-1s", "bad duration '-1s'"),
        ("0s", "must be greater than zero, got '0s'"),
        (0, "must be greater than zero, got 0"),
        (float("inf"), "must be finite"),
        (10**400, "must be finite"),
        (True, "expected a duration, got true"),
        (None, "expected a duration, got null"),
        ([1], "expected a duration, got a list"),
    ],
)
def test_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_duration(value)


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["ms", "s", "m", "h"]))
def test_units_scale(n: int, unit: str) -> None:
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    assert parse_duration(f"{n}{unit}") == pytest.approx(n * scale)
