"""Small, dependency-free significance tools for ``gradbench check``: normal and Student-t tails and quantiles,
the regularized incomplete beta function, Holm's step-down adjustment, and Clopper–Pearson intervals.

Pure Python (``math`` and ``statistics`` only): the check must not need scipy.

- Normal tails use ``math.erfc``; normal quantiles ``statistics.NormalDist.inv_cdf`` (Wichura's AS 241).
- Student's t with ν degrees of freedom (ν need not be an integer, as for Welch–Satterthwaite):
  P(|T| ≥ t) = I_{ν/(ν + t²)}(ν/2, ½), with I the regularized incomplete beta function, evaluated by its continued
  fraction (modified Lentz; Press et al., *Numerical Recipes*, 3rd ed., §6.4).
- Quantiles of t and of the beta distribution by bisection on the (monotone) distribution functions.
- Holm (1979), "A simple sequentially rejective multiple test procedure", Scand. J. Statist. 6: adjusted p-values
  p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j)); rejecting p̃ ≤ α keeps the family-wise error rate ≤ α under any
  dependence between the tests.
- Clopper & Pearson (1934): exact binomial confidence interval from beta quantiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist

_STD_NORMAL = NormalDist()


def normal_sf2(z: float) -> float:
    """Two-sided normal tail P(|N(0, 1)| ≥ |z|)."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def normal_quantile(p: float) -> float:
    """Φ⁻¹(p) for 0 < p < 1."""
    return _STD_NORMAL.inv_cdf(p)


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) for a, b > 0 and 0 ≤ x ≤ 1."""
    if not (a > 0 and b > 0):
        raise ValueError(f"betainc needs a, b > 0, got a={a}, b={b}")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):  # the continued fraction converges fast on this side
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def t_sf2(t: float, df: float) -> float:
    """Two-sided Student-t tail P(|T_ν| ≥ |t|); ν = ∞ gives the normal tail."""
    if math.isinf(df):
        return normal_sf2(t)
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def _bisect(decreasing: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """x in [lo, hi] with decreasing(x) = target, for a decreasing function (64 halvings)."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if decreasing(mid) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, abs(mid)):
            break
    return 0.5 * (lo + hi)


def t_quantile2(p: float, df: float) -> float:
    """The t ≥ 0 with P(|T_ν| ≥ t) = p (two-sided critical value), 0 < p ≤ 1."""
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p}")
    if math.isinf(df):
        return normal_quantile(1.0 - p / 2.0) if p < 1.0 else 0.0
    hi = 1.0
    while t_sf2(hi, df) > p:
        hi *= 2.0
    return _bisect(lambda t: t_sf2(t, df), p, 0.0, hi)


def beta_quantile(q: float, a: float, b: float) -> float:
    """The x with I_x(a, b) = q."""
    if q <= 0.0:
        return 0.0
    if q >= 1.0:
        return 1.0
    return _bisect(lambda x: -betainc(a, b, x), -q, 0.0, 1.0)


def clopper_pearson(failures: int, runs: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided confidence interval for a binomial proportion, failures out of runs."""
    if runs <= 0 or not 0 <= failures <= runs:
        raise ValueError(f"need 0 ≤ failures ≤ runs and runs > 0, got {failures}/{runs}")
    tail = (1.0 - confidence) / 2.0
    lower = 0.0 if failures == 0 else beta_quantile(tail, failures, runs - failures + 1)
    upper = 1.0 if failures == runs else beta_quantile(1.0 - tail, failures + 1, runs - failures)
    return lower, upper


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order (reject test i at family-wise level α when p̃_i ≤ α)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def welch_df(a: float, df_a: float, b: float, df_b: float) -> float:
    """Welch–Satterthwaite degrees of freedom of a + b, two independent variance estimates with df_a and df_b."""
    denominator = (a * a / df_a if a else 0.0) + (b * b / df_b if b else 0.0)
    return (a + b) ** 2 / denominator if denominator > 0 else math.inf
