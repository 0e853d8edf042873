"""The unit-level tests' one-sided half-normal mixture: golden values, edge cases, normal-mixture identity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.mixtures import normal_log_mixture
from analysis.unit_mix import mix1, mix1_array, rejects

GOLDEN = [
    ((3.0, 100.0, 0.5), -1.3776474383),
    ((25.0, 400.0, 0.1), 0.3721224164),
    ((-2.0, 50.0, 0.18), -0.6504442941),
    ((0.0, 0.0, 0.5), 0.0),
]


@pytest.mark.parametrize(("args", "expected"), GOLDEN)
def test_golden_values(args: tuple[float, float, float], expected: float) -> None:
    assert mix1(*args) == pytest.approx(expected, abs=1e-8)
    assert float(mix1_array(args[0], args[1], args[2])) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize(
    ("s", "info"),
    [(3.0, 0.0), (3.0, -1.0), (3.0, math.inf), (3.0, math.nan), (math.inf, 10.0), (math.nan, 1.0)],
)
def test_no_usable_information_gives_exactly_zero(s: float, info: float) -> None:
    assert mix1(s, info, 0.5) == 0.0
    assert float(mix1_array(s, info, 0.5)) == 0.0


def test_equals_the_one_sided_normal_mixture_at_v_equal_info() -> None:
    for s, info, tau in [(3.0, 100.0, 0.5), (25.0, 400.0, 0.1), (-2.0, 50.0, 0.18), (40.0, 900.0, 0.05)]:
        expected = float(normal_log_mixture(s, info, 6.3288596053 / tau**2, one_sided=True))
        assert mix1(s, info, tau) == pytest.approx(expected, abs=1e-8)


def test_vectorised_form_matches_the_scalar_one() -> None:
    rng = np.random.default_rng(3)
    s, info = rng.normal(0, 20, 200), rng.uniform(-10, 1000, 200)
    got = mix1_array(s, info, 0.3)
    assert np.allclose(got, [mix1(a, b, 0.3) for a, b in zip(s, info, strict=True)], rtol=0, atol=1e-12)


def test_rejects_at_one_over_level() -> None:
    assert rejects(math.log(20.0), 0.05)
    assert not rejects(math.log(20.0) - 1e-9, 0.05)
    assert not rejects(100.0, 0.0)


def test_positive_tau_required() -> None:
    with pytest.raises(ValueError, match="tau"):
        mix1(1.0, 1.0, 0.0)
