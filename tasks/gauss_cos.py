"""Gaussian latent, cosine cost: the third cost of Mohamed et al. (2020), Figure 3 (bottom)."""

from __future__ import annotations

import torch

from gradbench.gaussian import GaussianTask, gaussian_params
from gradbench.registry import register_task


@register_task
class GaussCos(GaussianTask):
    """f(x) = Σ_d cos(k x_d), x_d ~ N(μ, σ²); θ = (μ, σ) per variable (``wrt`` for others), D = ``dim``.

    Closed form (the real part of the characteristic function E e^{ikx} = e^{ikμ − k²σ²/2}):
        E h = cos(kμ) e^{−k²σ²/2},   ∂/∂μ = −k sin(kμ) e^{−k²σ²/2},   ∂/∂σ = −k²σ cos(kμ) e^{−k²σ²/2}.
    Defaults μ = σ = 1, k = 1, D = 1. Mohamed, Rosca, Figurnov & Mnih (2020), JMLR 21, §3, Figure 3.
    """

    name = "gauss-cos"
    summary = "Gaussian x; f = Σ cos(k x_d) (Mohamed et al. 2020, Fig. 3)"
    params = gaussian_params(1.0)

    def h(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cos(self.config["k"] * x)

    def h_grad(self, x: torch.Tensor) -> torch.Tensor:
        k = self.config["k"]
        return torch.sin(k * x).mul_(-k)

    def moments(self, mu: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        k = self.config["k"]
        damp = torch.exp(-0.5 * k**2 * sigma.square())
        return torch.cos(k * mu) * damp, -k * torch.sin(k * mu) * damp, -(k**2) * sigma * torch.cos(k * mu) * damp
