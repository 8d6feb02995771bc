"""Gaussian latent, quadratic cost: the first cost of Mohamed et al. (2020), Figure 2."""

from __future__ import annotations

import torch

from gradbench.gaussian import GaussianTask, gaussian_params
from gradbench.registry import register_task


@register_task
class GaussSquare(GaussianTask):
    """f(x) = Σ_d (x_d − k)², x_d ~ N(μ, σ²); θ = (μ, σ) per variable (``wrt`` for others), D = ``dim``.

    Closed form (E (x − k)² = Var x + (E x − k)²):  E h = (μ − k)² + σ²,  ∂/∂μ = 2(μ − k),  ∂/∂σ = 2σ.
    Defaults μ = σ = 1, k = 1, D = 1. Mohamed, Rosca, Figurnov & Mnih (2020), JMLR 21, §3, eq. (10), Figure 2.
    """

    name = "gauss-square"
    summary = "Gaussian x; f = Σ (x_d − k)² (Mohamed et al. 2020, Fig. 2)"
    params = gaussian_params(1.0)

    def h(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.config["k"]).square()

    def h_grad(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.config["k"]).mul_(2.0)

    def moments(self, mu: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        k = self.config["k"]
        return (mu - k).square() + sigma.square(), 2 * (mu - k), 2 * sigma
