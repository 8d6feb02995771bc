"""Gapped Straight-Through (GST): straight-through with a deterministic, gapped perturbation instead of noise."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Param, Problem, temperature_param
from gradbench.estimators.reinforce import one_hot
from gradbench.estimators.st import grad_at, softmax_vjp
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


def gapped_logits(theta: torch.Tensor, z: torch.Tensor, gap: float) -> torch.Tensor:
    """θ + m₁ − m₂ for the hard sample z (one-hot, n x D x K), θ D x K -> n x D x K (no gradient through m).

    m₁ = (max_k θ_k − θ) ⊙ z lifts the sampled logit to the maximum; m₂ = max(0, θ − max_k θ_k + κ) ⊙ (1 − z) pushes
    every other logit to at most max_k θ_k − κ. So the sampled category is the argmax, ahead of the rest by at
    least the gap κ, and logits already further down are left alone.
    """
    top = theta.max(-1, keepdim=True).values  # D x 1
    return torch.where(z.bool(), top, torch.minimum(theta, top - gap))  # n x D x K


@register_estimator
class GappedStraightThrough(Estimator):
    """Gapped Straight-Through: forward f at the hard sample D ~ p_θ, backward through
    y = softmax((θ + m)/τ) with the deterministic perturbation m = m₁ − m₂ of :func:`gapped_logits` (held fixed):
    g = J_yᵀ v = y ⊙ (v − ⟨y, v⟩)/τ, v = ∂f/∂z at D.

    m mimics what ST-Gumbel's noise does given D (the sampled category wins, by a strict gap κ) without drawing it,
    so GST has ST-Gumbel's "consistency" and "strict gap" properties with no noise in the backward pass. Biased.
    Default gap κ = 1.0 (the paper's GST-1.0). Fan, Chi, Rudnicky & Ramadge (2022), "Training Discrete Deep
    Generative Models via Gapped Straight-Through Estimator", ICML.
    """

    name = "gapped-st"
    summary = "Gapped ST: hard z ~ p, backward through softmax of deterministically gapped logits; biased"
    family = "relaxation"
    reference = "Fan et al. 2022"
    unbiased = False
    needs_relaxation = True
    params = (
        temperature_param(),
        Param("gap", float, 1.0, "gap κ between the sampled logit and the others", low=0.0),
    )

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        tau = self.config["tau"]
        p = problem.probs  # D x K
        z = one_hot(rng.categorical(p), p.shape[-1], p.dtype)  # n x D x K
        v = grad_at(problem.task, z)  # n x D x K
        y = (gapped_logits(problem.theta, z, self.config["gap"]) / tau).softmax(-1)  # n x D x K
        return softmax_vjp(y, v, tau)  # n x D x K
