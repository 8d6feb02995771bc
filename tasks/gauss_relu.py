"""Gaussian latent, ReLU cost: a kink, where the pathwise estimator uses a subgradient."""

from __future__ import annotations

import math

import torch

from gradbench.gaussian import GaussianTask, gaussian_params
from gradbench.registry import register_task


@register_task
class GaussRelu(GaussianTask):
    """f(x) = Σ_d max(0, x_d − k), x_d ~ N(μ, σ²); θ = (μ, σ) per variable (``wrt`` for others), D = ``dim``.

    h′(x) = 1[x > k]: at the kink x = k the subgradient 0 is used (an event of probability 0 under N(μ, σ²), and
    of probability ~1e-8 per draw in float32 rounding). f is Lipschitz, so the pathwise estimator stays unbiased
    whatever the kink's place (no Dirac term: h′ has a jump but h does not). Closed form (the Bachelier call
    price), with α = (μ − k)/σ, Φ and φ the standard normal CDF and density:
        E h = (μ − k) Φ(α) + σ φ(α),   ∂/∂μ = Φ(α),   ∂/∂σ = φ(α)
    (in ∂/∂σ the terms −α² φ(α) from Φ and +α² φ(α) from φ cancel). Defaults μ = σ = 1 and k = 1: the kink at the
    mean. Mohamed, Rosca, Figurnov & Mnih (2020), JMLR 21, §5.3.2 (pathwise estimators need f differentiable
    almost everywhere and continuous).
    """

    name = "gauss-relu"
    summary = "Gaussian x; f = Σ max(0, x_d − k): a kink (pathwise uses a subgradient)"
    params = gaussian_params(1.0)

    def h(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.config["k"]).clamp_(min=0.0)

    def h_grad(self, x: torch.Tensor) -> torch.Tensor:
        return (x > self.config["k"]).to(x.dtype)

    def moments(self, mu: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        alpha = (mu - self.config["k"]) / sigma
        cdf = torch.special.ndtr(alpha)
        pdf = torch.exp(-0.5 * alpha.square()) / math.sqrt(2 * math.pi)
        return (mu - self.config["k"]) * cdf + sigma * pdf, cdf, pdf
