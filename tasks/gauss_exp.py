"""Gaussian latent, Gaussian-bump cost: the second cost of Mohamed et al. (2020), Figure 3 (top)."""

from __future__ import annotations

import torch

from gradbench.gaussian import GaussianTask, gaussian_params
from gradbench.registry import register_task


@register_task
class GaussExp(GaussianTask):
    """f(x) = Σ_d exp(−k x_d²), x_d ~ N(μ, σ²), k ≥ 0; θ = (μ, σ) per variable (``wrt`` for others).

    Closed form (a Gaussian integral of a Gaussian): with a = 1 + 2kσ²,
        E h = a^{−1/2} exp(−kμ²/a),   ∂/∂μ = −(2kμ/a) E h,   ∂/∂σ = 4kσ (kμ²/a² − 1/(2a)) E h
    (∂a/∂σ = 4kσ and ∂/∂a of a^{−1/2} exp(−kμ²/a) is (kμ²/a² − 1/(2a)) times itself).
    Defaults μ = σ = 1, k = 1, D = 1. Mohamed, Rosca, Figurnov & Mnih (2020), JMLR 21, §3, Figure 3.
    """

    name = "gauss-exp"
    summary = "Gaussian x; f = Σ exp(−k x_d²) (Mohamed et al. 2020, Fig. 3)"
    params = gaussian_params(1.0, k_low=0.0)

    def h(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.config["k"] * x.square())

    def h_grad(self, x: torch.Tensor) -> torch.Tensor:
        k = self.config["k"]
        return torch.exp(-k * x.square()).mul_(x).mul_(-2.0 * k)

    def moments(self, mu: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        k = self.config["k"]
        a = 1 + 2 * k * sigma.square()
        mean = a.rsqrt() * torch.exp(-k * mu.square() / a)
        return mean, -2 * k * mu / a * mean, 4 * k * sigma * (k * mu.square() / a.square() - 0.5 / a) * mean
