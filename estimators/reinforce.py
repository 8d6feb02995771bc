"""REINFORCE, the score-function estimator."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Problem
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


def one_hot(indices: torch.Tensor, K: int, dtype: torch.dtype) -> torch.Tensor:
    """indices n x D (int64) -> one-hot n x D x K."""
    out = torch.zeros((*indices.shape, K), dtype=dtype, device=indices.device)
    return out.scatter_(-1, indices.unsqueeze(-1), 1.0)


@register_estimator
class Reinforce(Estimator):
    """Score function: g = f(z) ∇_θ log p_θ(z), z ~ p_θ, on any family (:mod:`gradbench.families`).

    Categorical: the score of a softmax-parametrised categorical is onehot(z) − p, so g = f(z) (onehot(z) − p).
    Gaussian x = μ + σε: the score is (ε/σ, (ε² − 1)/σ) for (μ, σ). The family object draws and scores; this code
    is the same for both. Unbiased for any f. Williams (1992), "Simple statistical gradient-following algorithms
    for connectionist reinforcement learning", Machine Learning 8; Mohamed et al. (2020), JMLR 21, §4, eq. (13).
    """

    name = "reinforce"
    summary = "score function f(z)·(onehot(z) − p); unbiased, high variance"
    family = "score-function"
    reference = "Williams 1992"
    unbiased = True
    families = ("categorical", "gaussian")

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        family = problem.family
        z = family.sample(
            problem, rng
        )  # categorical: one-hot n x D x K (the draws of rng.categorical); gaussian: n x D
        f = problem.task.f(z)  # n
        return family.score(problem, z).mul_(f[:, None, None])  # n x D x P, f(z) ∇_θ log p_θ(z)
