"""Variances of the Gaussian gradient estimators by numerical integration: the curves of Mohamed et al. (2020),
Figures 2–3, computed independently of gradbench's sampling code.

For x ~ N(μ, σ²), one variable (D = 1), a cost h(x; k) and each estimator's per-draw gradient g, Var g = E g² − (E g)²
with every expectation an adaptive quadrature (``scipy.integrate.quad`` over [μ − 12σ, μ + 12σ] for the Gaussian;
[0, 12] for the Weibull; the coupled double-sided-Maxwell/Gaussian pair as a double integral over (m, u), as in the
paper's own notebook, variance_numerical_integration.ipynb in google-deepmind/mc_gradients):

- score function:    g = (h(x) − b) s(x), s = ((x − μ)/σ², ((x − μ)²/σ² − 1)/σ); b = 0 (none), E h (mean),
                     E[h s²]/E[s²] (optimal, per parameter);
- pathwise:          g = h′(x) (1, (x − μ)/σ);
- measure-valued:    μ: (h(μ + σw) − h(μ − σw′))/(√(2π)σ), w, w′ ~ Weibull(√2, 2), w′ = w when coupled;
                     σ: (h(μ + σm) − h(μ + σε))/σ, m ~ double-sided Maxwell, ε = m·u (coupled) or ε ~ N(0, 1).

Usage:  python benchmarks/gaussian_integration.py [--task gauss-cos] [--k 0.5,2,5] [--mu 1] [--sigma 1]
Prints one line per (k, estimator): the variances of the ∂/∂μ and ∂/∂σ components and their sum.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import integrate

LIMIT = 12.0
SQRT2PI = math.sqrt(2 * math.pi)

COSTS = {
    "gauss-square": (lambda x, k: (x - k) ** 2, lambda x, k: 2 * (x - k)),
    "gauss-exp": (lambda x, k: np.exp(-k * x**2), lambda x, k: -2 * k * x * np.exp(-k * x**2)),
    "gauss-cos": (lambda x, k: np.cos(k * x), lambda x, k: -k * np.sin(k * x)),
    "gauss-relu": (lambda x, k: max(0.0, x - k), lambda x, k: float(x > k)),
}


def normal_expect(g, mu: float, sigma: float) -> float:
    density = lambda x: math.exp(-0.5 * ((x - mu) / sigma) ** 2) / (SQRT2PI * sigma)  # noqa: E731
    return integrate.quad(lambda x: density(x) * g(x), mu - LIMIT * sigma, mu + LIMIT * sigma, limit=400)[0]


def weibull_expect(g) -> float:
    return integrate.quad(lambda w: w * math.exp(-0.5 * w * w) * g(w), 0.0, LIMIT, limit=400)[0]


def maxwell_expect(g) -> float:
    return integrate.quad(lambda m: m * m * math.exp(-0.5 * m * m) / SQRT2PI * g(m), -LIMIT, LIMIT, limit=400)[0]


def variances(task: str, k: float, mu: float, sigma: float) -> dict[str, tuple[float, float]]:
    """{estimator: (Var ∂/∂μ, Var ∂/∂σ)} for one cost and k."""
    h0, dh0 = COSTS[task]
    h, dh = (lambda x: h0(x, k)), (lambda x: dh0(x, k))
    scores = (lambda x: (x - mu) / sigma**2, lambda x: ((x - mu) ** 2 / sigma**2 - 1) / sigma)

    def var(g) -> float:
        m1 = normal_expect(g, mu, sigma)
        return normal_expect(lambda x: g(x) ** 2, mu, sigma) - m1**2

    out = {}
    mean_h = normal_expect(h, mu, sigma)
    optimal = [
        normal_expect(lambda x, s=s: h(x) * s(x) ** 2, mu, sigma) / normal_expect(lambda x, s=s: s(x) ** 2, mu, sigma)
        for s in scores
    ]
    out["score-function baseline=none"] = tuple(var(lambda x, s=s: h(x) * s(x)) for s in scores)
    out["score-function baseline=mean"] = tuple(var(lambda x, s=s: (h(x) - mean_h) * s(x)) for s in scores)
    out["score-function baseline=optimal"] = tuple(
        var(lambda x, s=s, b=b: (h(x) - b) * s(x)) for s, b in zip(scores, optimal, strict=True)
    )
    out["pathwise"] = (var(dh), var(lambda x: dh(x) * (x - mu) / sigma))
    c = SQRT2PI * sigma
    # μ, coupled: one Weibull w for both sides
    g_mu = lambda w: (h(mu + sigma * w) - h(mu - sigma * w)) / c  # noqa: E731
    mu_coupled = weibull_expect(lambda w: g_mu(w) ** 2) - weibull_expect(g_mu) ** 2
    # μ, independent sides: Var A + Var B
    plus = [weibull_expect(lambda w, p=p: (h(mu + sigma * w) / c) ** p) for p in (1, 2)]
    minus = [weibull_expect(lambda w, p=p: (h(mu - sigma * w) / c) ** p) for p in (1, 2)]
    mu_indep = plus[1] - plus[0] ** 2 + minus[1] - minus[0] ** 2
    # σ, coupled: ε = m·u, a double integral over m (double-sided Maxwell) and u ~ U[0, 1]
    g_s = lambda m, u: (h(mu + sigma * m) - h(mu + sigma * m * u)) / sigma  # noqa: E731
    density = lambda m: m * m * math.exp(-0.5 * m * m) / SQRT2PI  # noqa: E731
    first = integrate.dblquad(lambda u, m: density(m) * g_s(m, u), -LIMIT, LIMIT, 0.0, 1.0)[0]
    second = integrate.dblquad(lambda u, m: density(m) * g_s(m, u) ** 2, -LIMIT, LIMIT, 0.0, 1.0)[0]
    s_coupled = second - first**2
    pos = [maxwell_expect(lambda m, p=p: (h(mu + sigma * m) / sigma) ** p) for p in (1, 2)]
    neg = [normal_expect(lambda x, p=p: (h(x) / sigma) ** p, mu, sigma) for p in (1, 2)]
    s_indep = pos[1] - pos[0] ** 2 + neg[1] - neg[0] ** 2
    out["measure-valued coupling=yes"] = (mu_coupled, s_coupled)
    out["measure-valued coupling=no"] = (mu_indep, s_indep)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="gauss-cos", choices=sorted(COSTS))
    parser.add_argument("--k", default="0.5,2,5", help="comma list of k")
    parser.add_argument("--mu", type=float, default=1.0)
    parser.add_argument("--sigma", type=float, default=1.0)
    args = parser.parse_args()
    print(f"{args.task}, μ = {args.mu:g}, σ = {args.sigma:g}: variance of one estimate (∂/∂μ, ∂/∂σ, sum)")
    for k in (float(v) for v in args.k.split(",")):
        for name, (v_mu, v_sigma) in variances(args.task, k, args.mu, args.sigma).items():
            print(f"k = {k:<6g} {name:<34} {v_mu:12.6g} {v_sigma:12.6g} {v_mu + v_sigma:12.6g}")


if __name__ == "__main__":
    main()
