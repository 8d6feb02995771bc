"""The pure-Python distribution functions behind `gradbench check`, against closed forms."""

from __future__ import annotations

import math

import pytest

from gradbench.significance import (
    beta_quantile,
    betainc,
    clopper_pearson,
    holm,
    normal_quantile,
    normal_sf2,
    t_quantile2,
    t_sf2,
    welch_df,
)


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.5, 7.0, 40.0])
def test_t_tails_match_closed_forms(t):
    assert t_sf2(t, 1.0) == pytest.approx(1 - 2 * math.atan(t) / math.pi, rel=1e-10, abs=1e-15)  # Cauchy
    assert t_sf2(t, 2.0) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10, abs=1e-15)
    assert t_sf2(t, math.inf) == normal_sf2(t)
    assert t_sf2(t, 1e7) == pytest.approx(normal_sf2(t), rel=1e-4, abs=1e-300)


@pytest.mark.parametrize("df", [1.0, 2.0, 4.5, 15.0, 30.0])
@pytest.mark.parametrize("p", [0.5, 0.05, 1e-3, 1e-6])
def test_t_quantile_inverts_the_tail(df, p):
    t = t_quantile2(p, df)
    assert t_sf2(t, df) == pytest.approx(p, rel=1e-8)


def test_t_is_heavier_than_normal_and_quantiles_are_known():
    assert t_quantile2(0.05, math.inf) == pytest.approx(1.959964, abs=1e-6)
    assert t_quantile2(0.05, 1.0) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-9)
    assert t_sf2(4.0, 15.0) > normal_sf2(4.0) * 10
    assert normal_quantile(0.8) == pytest.approx(0.841621, abs=1e-6)


@pytest.mark.parametrize("x", [0.0, 0.01, 0.3, 0.77, 1.0])
@pytest.mark.parametrize("a", [0.5, 1.0, 3.0, 40.0])
def test_incomplete_beta_matches_closed_forms(x, a):
    assert betainc(a, 1.0, x) == pytest.approx(x**a, rel=1e-10, abs=1e-300)
    assert betainc(1.0, a, x) == pytest.approx(1 - (1 - x) ** a, rel=1e-10, abs=1e-300)
    assert betainc(a, a, 0.5) == pytest.approx(0.5, rel=1e-10)  # symmetry


def test_beta_quantile_and_clopper_pearson():
    assert beta_quantile(0.3, 2.0, 1.0) == pytest.approx(math.sqrt(0.3), rel=1e-10)
    n = 500
    lo, hi = clopper_pearson(0, n)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / n), rel=1e-9)  # closed form for 0 failures
    lo, hi = clopper_pearson(n, n)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / n), rel=1e-9)
    lo, hi = clopper_pearson(5, 500)
    assert lo < 0.01 < hi and betainc(5, 496, lo) == pytest.approx(0.025, rel=1e-8)
    with pytest.raises(ValueError):
        clopper_pearson(3, 2)


def test_holm_adjustment():
    assert holm([]) == []
    assert holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])  # monotone step-down
    assert holm([0.5, 0.5]) == [1.0, 1.0]
    assert max(holm([0.3, 0.6])) <= 1.0


def test_welch_df():
    assert welch_df(1.0, 15.0, 1.0, 15.0) == pytest.approx(30.0)
    assert welch_df(1.0, 15.0, 0.0, 15.0) == pytest.approx(15.0)
    assert welch_df(0.0, 15.0, 0.0, 15.0) == math.inf
