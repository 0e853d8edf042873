"""Golden values of docs/statistics.md (confseq 0.0.11, savvi 0.3.1) and the n = 0 conventions."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.mixtures import (
    bernoulli_cs,
    beta_binomial_log_mixture,
    normal_log_mixture,
    normal_mixture_bound,
)
from analysis.srm import srm_log_bf

TOL = 1e-8


@pytest.mark.parametrize(
    ("s", "v", "v_opt", "one_sided", "expected"),
    [
        (50, 1000, 1000, False, 0.0150661219),
        (150, 10000, 5000, False, -0.3545141834),
        (150, 10000, 5000, True, 0.3513500236),
        (-80, 4000, 20000, False, 0.0154950200),
    ],
)
def test_normal_log_mixture_golden(
    s: float, v: float, v_opt: float, one_sided: bool, expected: float
) -> None:
    assert float(normal_log_mixture(s, v, v_opt, 0.05, one_sided)) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize(
    ("v", "v_opt", "expected"), [(1000, 1000, 95.9817358421), (10000, 5000, 306.1477218867)]
)
def test_normal_mixture_bound_golden(v: float, v_opt: float, expected: float) -> None:
    assert float(normal_mixture_bound(v, 0.05, v_opt)) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize(
    ("s", "v", "g", "v_opt", "expected"),
    [
        (5, 9.9, 0.99, 0.0099 * 10000, 0.4347544871),
        (-20, 49.5, 0.99, 0.0099 * 10000, 1.9886312951),
        (30, 500, 0.5, 0.25 * 2000, -0.2976127028),
        (-12, 72, 0.9, 0.09 * 5000, 0.0997459673),
    ],
)
def test_beta_binomial_golden(s: float, v: float, g: float, v_opt: float, expected: float) -> None:
    got = float(beta_binomial_log_mixture(s, v, v_opt, g, 1.0 - g, 0.05))
    assert got == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize(
    ("k", "counts", "expected"),
    [
        (100, [520, 480], -0.4731252337),
        (1000, [5200, 4800], 6.0758176516),
        (10000, [5200, 4800], 3.6538806657),
        (1000, [50500, 49500], 2.6428171695),
    ],
)
def test_srm_golden(k: float, counts: list[int], expected: float) -> None:
    assert float(srm_log_bf(np.array(counts), np.array([0.5, 0.5]), k)) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("one_sided", [False, True])
def test_every_log_e_is_zero_at_n_zero(one_sided: bool) -> None:
    assert float(normal_log_mixture(0.0, 0.0, 500.0, 0.05, one_sided)) == 0.0
    for g in (0.5, 0.9, 0.99, 0.3):
        assert float(beta_binomial_log_mixture(0.0, 0.0, 100.0, g, 1 - g, 0.05, one_sided)) == pytest.approx(
            0.0
        )
    assert float(srm_log_bf(np.array([0, 0]), np.array([0.9, 0.1]))) == 0.0
    assert bernoulli_cs(0, 0, 0.05, 100.0) == (0.0, 1.0)


def test_general_beta_binomial_form_matches_the_simple_one_when_g_plus_h_is_one() -> None:
    from scipy.special import betaln  # type: ignore[import-untyped]

    s, v, g, h, v_opt = 7.0, 40.0, 0.8, 0.2, 400.0
    ell = np.log(20.0)
    r = max(v_opt / (2 * ell + np.log(1 + 2 * ell)) - g * h, 1e-3 * g * h)
    simple = (
        -((v + h * s) / h) * np.log(g)
        - ((v - g * s) / g) * np.log(h)
        + betaln((r + v - g * s) / g, (r + v + h * s) / h)
        - betaln(r / g, r / h)
    )
    assert float(beta_binomial_log_mixture(s, v, v_opt, g, h)) == pytest.approx(simple, abs=1e-10)


def test_one_sided_normal_mixture_rejects_only_one_way() -> None:
    assert float(normal_log_mixture(-300.0, 10000, 5000, one_sided=True)) < 0.0
    assert float(normal_log_mixture(300.0, 10000, 5000, one_sided=True)) > float(np.log(20))


def test_bernoulli_cs_covers_and_shrinks() -> None:
    lo, hi = bernoulli_cs(995, 1000, 0.05, 1000)
    assert lo < 0.995 < hi
    lo2, hi2 = bernoulli_cs(9950, 10000, 0.05, 1000)
    assert lo < lo2 < 0.995 < hi2 < hi
