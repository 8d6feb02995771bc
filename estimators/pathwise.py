"""The pathwise (reparameterisation) estimator for Gaussian latents."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Problem
from gradbench.fast import grad_f
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


@register_estimator
class Pathwise(Estimator):
    """Reparameterisation x = μ + σε, ε ~ N(0, 1), differentiated through the sampling path:

        ∂/∂μ_d:  g = ∂f/∂x_d (x),        ∂/∂σ_d:  g = ∂f/∂x_d (x) · ε_d        (∂/∂log σ_d: times σ_d)

    (∂x/∂μ = 1, ∂x/∂σ = ε). Unbiased when f is continuous and differentiable almost everywhere (a kink such as
    ReLU's is fine: h′ is then a subgradient on a null set); f′ comes from the task's closed form ``f_grad``, else
    autograd. Kingma & Welling (2014), "Auto-encoding variational Bayes", ICLR; Rezende, Mohamed & Wierstra (2014),
    ICML; Mohamed, Rosca, Figurnov & Mnih (2020), JMLR 21, §5, eq. (35)–(37).
    """

    name = "pathwise"
    summary = "reparameterisation x = μ + σε; g = f′(x)·(1, ε); unbiased for continuous a.e.-differentiable f"
    family = "pathwise"
    reference = "Kingma & Welling 2014"
    unbiased = True
    families = ("gaussian",)

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        family = problem.family
        _, sigma = family.mu_sigma(problem.theta)  # D
        x, eps = family.draw(problem, rng)  # n x D, n x D
        slope = grad_f(problem.task, x)  # n x D, ∂f/∂x_d at the draw
        return family.project(slope, slope * eps, sigma)  # n x D x P
