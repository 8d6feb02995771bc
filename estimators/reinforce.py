"""REINFORCE, the score-function estimator."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Problem
from gradbench.fast import categorical_one_hot
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


def one_hot(indices: torch.Tensor, K: int, dtype: torch.dtype) -> torch.Tensor:
    """indices n x D (int64) -> one-hot n x D x K."""
    out = torch.zeros((*indices.shape, K), dtype=dtype, device=indices.device)
    return out.scatter_(-1, indices.unsqueeze(-1), 1.0)


@register_estimator
class Reinforce(Estimator):
    """Score function: g = f(z) ∇_θ log p_θ(z) = f(z) (onehot(z) − p), z ~ p_θ.

    The score of a softmax-parametrised categorical is onehot(z) − p in closed form, so no autograd is needed.
    Unbiased for any f. Williams (1992), "Simple statistical gradient-following algorithms for connectionist
    reinforcement learning", Machine Learning 8.
    """

    name = "reinforce"
    summary = "score function f(z)·(onehot(z) − p); unbiased, high variance"
    family = "score-function"
    reference = "Williams 1992"
    unbiased = True

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        p = problem.probs  # D x K
        z = categorical_one_hot(p, rng)  # n x D x K, the draws of rng.categorical(p) as one-hot rows
        f = problem.task.f(z)  # n
        return z.sub_(p).mul_(f[:, None, None])  # n x D x K, f(z) (onehot(z) − p)
