"""Measure-valued derivatives (weak derivatives) of the Gaussian, with and without coupling."""

from __future__ import annotations

import math

import torch

from gradbench.core import Estimator, Param, Problem
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


def replace_each(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """x (n x D) with coordinate d replaced by values[:, d], for every d: n x D (copies) x D."""
    out = x[:, None, :].expand(-1, x.shape[1], -1).clone()  # n x D x D
    torch.diagonal(out, dim1=1, dim2=2).copy_(values)
    return out


@register_estimator
class MeasureValued(Estimator):
    """Measure-valued derivative of N(μ, σ²) (Mohamed et al. 2020, §6, eq. (44), Table 1): ∂/∂θ N = c (p⁺ − p⁻)
    with p⁺, p⁻ probability densities, so per variable d (x the base draw, the other coordinates kept):

        ∂/∂μ_d:  g = (f(x | x_d = μ + σ w) − f(x | x_d = μ − σ w′)) / (√(2π) σ),   w, w′ ~ Weibull(√2, 2)
        ∂/∂σ_d:  g = (f(x | x_d = μ + σ m) − f(x | x_d = μ + σ ε)) / σ,           m ~ double-sided Maxwell, ε ~ N(0, 1)

    Weibull(√2, 2) has density w e^{−w²/2} (w > 0): w = √(−2 log U). The standard double-sided Maxwell has density
    m² e^{−m²/2}/√(2π): |m| = √(−2 log U + e²) (a χ with 3 degrees of freedom), with a random sign.
    ``coupling=yes`` (the paper's variance reduction, §7.2): w′ = w, and ε = m·u with u ~ U[0, 1] (m·u is N(0, 1)
    when m is double-sided Maxwell); ``no``: w′ and ε drawn independently. Unbiased either way. Cost: 4 evaluations
    of f per variable (4·D per estimate; ``draws_per_estimate`` counts them for D = 1), the other coordinates
    from one base draw x = μ + σε. Gaussian latents only. Pflug (1989); Heidergott & Vázquez-Abad (2000);
    Mohamed, Rosca, Figurnov & Mnih (2020), JMLR 21, §6.
    """

    name = "measure-valued"
    summary = "weak derivatives: Weibull (μ), double-sided Maxwell − Gaussian (σ); coupling optional; unbiased"
    family = "measure-valued"
    reference = "Mohamed et al. 2020"
    unbiased = True
    families = ("gaussian",)
    params = (
        Param(
            "coupling", str, "yes", "couple the positive and negative draws (yes) or not (no)", choices=("yes", "no")
        ),
    )

    @property
    def draws_per_estimate(self) -> int:
        return 4

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        family, task = problem.family, problem.task
        mu, sigma = family.mu_sigma(problem.theta)  # D, D
        D, dtype = problem.theta.shape[0], problem.theta.dtype
        coupled = self.config["coupling"] == "yes"
        x, _ = family.draw(problem, rng)  # n x D, the base draw
        w = rng.open_uniform(D, dtype=dtype).log_().mul_(-2.0).sqrt_()  # n x D, Weibull(√2, 2)
        w_neg = w if coupled else rng.open_uniform(D, dtype=dtype).log_().mul_(-2.0).sqrt_()
        chi2 = rng.open_uniform(D, dtype=dtype).log_().mul_(-2.0).add_(rng.normal(D, dtype=dtype).square_())
        sign = rng.uniform(D, dtype=dtype).lt_(0.5).mul_(2.0).sub_(1.0)  # n x D, ±1
        m = chi2.sqrt_().mul_(sign)  # n x D, double-sided Maxwell
        eps = m * rng.uniform(D, dtype=dtype) if coupled else rng.normal(D, dtype=dtype)  # n x D, N(0, 1)
        points = torch.stack(
            [
                replace_each(x, mu + sigma * w),
                replace_each(x, mu - sigma * w_neg),
                replace_each(x, mu + sigma * m),
                replace_each(x, mu + sigma * eps),
            ],
            1,
        )  # n x 4 x D x D
        f = task.f(points)  # n x 4 x D
        g_mu = (f[:, 0] - f[:, 1]) / (math.sqrt(2 * math.pi) * sigma)  # n x D
        g_sigma = (f[:, 2] - f[:, 3]) / sigma  # n x D
        return family.project(g_mu, g_sigma, sigma)  # n x D x P
