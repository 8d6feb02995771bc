"""MuProp: REINFORCE with a first-order Taylor expansion of f around the mean as control variate."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Problem
from gradbench.fast import categorical_one_hot, grad_f
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


@register_estimator
class MuProp(Estimator):
    """MuProp: with μ = E[z] = p (the mean-field point) and the first-order Taylor expansion
    f̂(z) = f(μ) + ∇f(μ)ᵀ(z − μ) of the relaxed f as control variate,

        g = [f(z) − f̂(z)] (onehot(z) − p) + J_μᵀ ∇f(μ),   J_μᵀ v = p ⊙ (v − ⟨p, v⟩)   (μ = softmax θ),

    z ~ p_θ. Unbiased: E[f̂(z)(onehot(z) − p)] = ∇_θ E[f̂(z)] = J_μᵀ ∇f(μ), the term added back analytically. Exact
    (zero variance) when f is linear in z. f(μ) and ∇f(μ) depend on θ only, so they are computed once per call; an
    estimate costs one evaluation of f (at z), plus one evaluation and gradient at μ per θ (amortised here, where
    θ is fixed; in training it is one more pass per step). Needs f on the simplex (at μ).
    Gu, Levine, Sutskever & Mnih (2016), "MuProp: Unbiased Backpropagation for Stochastic Neural Networks", ICLR
    (the single-layer case, without the learned scaling of the control variate).
    """

    name = "muprop"
    summary = "REINFORCE with a first-order Taylor control variate at the mean, added back analytically; unbiased"
    family = "control-variate"
    reference = "Gu et al. 2016"
    unbiased = True
    needs_relaxation = True
    cost_formula = "1 + (f, ∇f at μ once per θ)"

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        task, p = problem.task, problem.probs  # p: D x K
        mu = p[None]  # 1 x D x K
        f_mu = task.f(mu)  # 1
        v = grad_f(task, mu)[0]  # D x K, ∇f(μ)
        z = categorical_one_hot(p, rng)  # n x D x K
        taylor = f_mu + ((z - p) * v).sum((1, 2))  # n, f̂(z)
        residual = task.f(z) - taylor  # n
        analytic = p * (v - (p * v).sum(-1, keepdim=True))  # D x K, J_μᵀ ∇f(μ)
        return z.sub_(p).mul_(residual[:, None, None]).add_(analytic)  # n x D x K
