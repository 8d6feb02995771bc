"""REINFORCE leave-one-out (RLOO): m independent draws per estimate, each baselined by the mean of the others."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Param, Problem
from gradbench.estimators.reinforce import one_hot
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


def draw_many(problem: Problem, rng: BlockRng, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """m independent draws z_1..z_m ~ p_θ per estimate, their f values and their scores onehot(z_j) − p.

    Returns (z n x m x D x K, f n x m, score n x m x D x K), all in the problem's dtype. The m·D variables of one
    estimate are drawn in one call (one uniform each), so nothing loops over draws.
    """
    p = problem.probs  # D x K
    D, K = p.shape
    idx = rng.categorical(p.repeat(m, 1)).view(-1, m, D)  # n x m x D ; row j·D + d of the repeat is variable d
    z = one_hot(idx, K, p.dtype)  # n x m x D x K
    return z, problem.task.f(z), z - p  # f: n x m


def multi_draw_config(m_default: int = 4) -> Param:
    """The shared declaration of m, the number of draws one estimate averages over."""
    return Param("m", int, m_default, "draws per estimate", low=2)


@register_estimator
class Rloo(Estimator):
    """REINFORCE with the leave-one-out baseline over m independent draws z_1..z_m ~ p_θ:

        g = (1/m) Σ_j (f(z_j) − b_j) (onehot(z_j) − p),   b_j = (1/(m − 1)) Σ_{i≠j} f(z_i)
          = (1/(m − 1)) Σ_j (f(z_j) − f̄) (onehot(z_j) − p),  f̄ = (1/m) Σ_i f(z_i).

    Exactly unbiased: b_j depends only on the other draws, which are independent of z_j, and E[onehot(z) − p] = 0.
    One estimate costs m evaluations of f (``draws_per_estimate = m``). Kool, van Hoof & Welling (2019),
    "Buy 4 REINFORCE Samples, Get a Baseline for Free!", ICLR workshop DeepRLStructPred; Mnih & Rezende (2016).
    """

    name = "rloo"
    summary = "REINFORCE leave-one-out over m draws; unbiased"
    family = "score-function"
    reference = "Kool et al. 2019"
    unbiased = True
    params = (multi_draw_config(),)
    cost_formula = "m"

    @property
    def draws_per_estimate(self) -> int:
        return self.config["m"]

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        _, f, score = draw_many(problem, rng, self.config["m"])
        return self.combine(f, score)

    @staticmethod
    def combine(f: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """How the m draws' values f (n x m) and scores (n x m x D x K) become one estimate (n x D x K)."""
        return rloo_combine(f, score)


def rloo_combine(f: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """(1/(m − 1)) Σ_j (f_j − f̄) score_j: f n x m, score n x m x D x K -> n x D x K."""
    advantage = (f - f.mean(1, keepdim=True)) / (f.shape[1] - 1)  # n x m
    return (advantage[:, :, None, None] * score).sum(1)  # n x D x K
