"""Straight-through Gumbel-Softmax."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Problem, per_draw_autograd, temperature_param
from gradbench.estimators.gumbel import relaxed_sample
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


@register_estimator
class StraightThroughGumbel(Estimator):
    """ST-Gumbel: forward f at the hard sample z = onehot(argmax(θ + G)), backward through z̃ = softmax((θ+G)/τ):
    g = ∂f/∂z evaluated at z, times ∂z̃/∂θ (the ``y_hard − y_soft.detach() + y_soft`` form).

    The forward sample is exact (Gumbel-max), but the backward pass is a surrogate, so the estimate is biased at
    every τ, and stays biased as τ → 0. Needs f defined (differentiable) on the simplex.
    Jang, Gu & Poole (2017), "Categorical Reparameterization with Gumbel-Softmax", §2.2; Bengio et al. (2013).
    """

    name = "st-gumbel"
    summary = "straight-through Gumbel: hard forward, soft backward; biased"
    family = "relaxation"
    reference = "Jang et al. 2017"
    unbiased = False
    needs_relaxation = True
    params = (temperature_param(),)

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        tau = self.config["tau"]
        gumbel = rng.gumbel(*problem.theta.shape, dtype=problem.theta.dtype)  # n x D x K
        K = problem.theta.shape[-1]
        hard = torch.nn.functional.one_hot((problem.theta + gumbel).argmax(-1), K).to(gumbel)  # n x D x K

        def objective(theta: torch.Tensor) -> torch.Tensor:
            soft = relaxed_sample(theta, gumbel, tau)
            return problem.task.f(hard - soft.detach() + soft)

        return per_draw_autograd(problem.theta, rng.n, objective)
