"""The ground truth as an estimator: every estimate is the exact gradient."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Problem
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


@register_estimator
class Exact(Estimator):
    """g_i = ∇_θ E_{p_θ}[f] exactly (closed form or enumeration over K^D configurations), for every i.

    Zero variance and zero bias up to the rounding of the cell's dtype: the reference line of every plot, and a
    check of the metric pipeline itself.
    """

    name = "exact"
    summary = "the exact gradient (enumeration or closed form); zero variance"
    family = "reference"
    reference = "exact enumeration"
    unbiased = True
    families = ("categorical", "gaussian")
    uses_exact_gradient = True  # training computes g* at every step only for estimators that read it

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        grad = problem.exact_grad.to(problem.theta.dtype)  # D x K
        return grad.expand(rng.n, *grad.shape).clone()  # n x D x K
