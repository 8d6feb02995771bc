"""Straight-through Gumbel-Softmax."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Problem, temperature_param
from gradbench.fast import grad_f, perturbed_logits, row_sum, shifted_exp_and_hard_
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


@register_estimator
class StraightThroughGumbel(Estimator):
    """ST-Gumbel: forward f at the hard sample z = onehot(argmax(θ + G)), backward through z̃ = softmax((θ+G)/τ):
    g = ∂f/∂z evaluated at z, times ∂z̃/∂θ (what the ``y_hard − y_soft.detach() + y_soft`` form computes):
    g = (z̃ ⊙ (v − ⟨z̃, v⟩))/τ with v = ∂f/∂z at the hard z.

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
        y = perturbed_logits(problem.theta, rng, tau)  # n x D x K, (θ + G)/τ
        e, hard = shifted_exp_and_hard_(y)  # n x D x K each: exp(y − max y) (y overwritten), onehot(argmax(θ + G))
        q = e.div_(row_sum(e, rng.sizes).mul_(tau))  # n x D x K, z̃/τ (z̃ itself is not needed)
        t = grad_f(problem.task, hard).mul_(q)  # n x D x K, z̃ ⊙ v / τ with v = ∂f/∂z at the hard z
        return t.addcmul_(q, row_sum(t, rng.sizes), value=-tau)  # n x D x K, (z̃ ⊙ v − z̃ ⟨z̃, v⟩)/τ
