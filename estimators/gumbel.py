"""Gumbel-Softmax (the Concrete relaxation)."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Problem, temperature_param
from gradbench.fast import grad_f, gumbel_softmax_sample, softmax_vjp_
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


def relaxed_sample(theta: torch.Tensor, gumbel: torch.Tensor, tau: float) -> torch.Tensor:
    """z̃ = softmax((θ + G)/τ) over the last axis; θ n x D x K (or D x K), G n x D x K."""
    return ((theta + gumbel) / tau).softmax(-1)


@register_estimator
class GumbelSoftmax(Estimator):
    """Gumbel-Softmax: g = ∇_θ f(z̃), z̃ = softmax((θ + G)/τ), G_dk i.i.d. Gumbel(0, 1).

    Per draw g = (z̃ ⊙ (v − ⟨z̃, v⟩))/τ with v = ∂f/∂z at z̃ (the softmax Jacobian in closed form).
    The reparameterised gradient of the relaxed objective E[f(z̃)], hence biased against the true gradient for
    τ > 0 (bias shrinks, variance grows as τ → 0). Needs f on the simplex.
    Jang, Gu & Poole (2017), "Categorical Reparameterization with Gumbel-Softmax"; Maddison, Mnih & Teh (2017),
    "The Concrete Distribution".
    """

    name = "gumbel"
    summary = "Gumbel-Softmax: ∇θ f(softmax((θ+G)/τ)); biased, needs relaxation"
    family = "relaxation"
    reference = "Jang et al. 2017; Maddison et al. 2017"
    unbiased = False
    needs_relaxation = True
    params = (temperature_param(),)

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        # Per draw, ∂f(z̃)/∂θ = (z̃ ⊙ (v − ⟨z̃, v⟩))/τ with v = ∂f/∂z at z̃: the softmax's Jacobian in closed form,
        # so autograd (if any) only runs through f.
        tau = self.config["tau"]
        soft = gumbel_softmax_sample(problem.theta, rng, tau)  # n x D x K, z̃
        return softmax_vjp_(soft, grad_f(problem.task, soft), tau, rng.sizes)  # n x D x K
