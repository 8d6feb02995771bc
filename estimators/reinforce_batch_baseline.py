"""REINFORCE with the batch mean as baseline (the draw itself included): the common, biased shortcut."""

from __future__ import annotations

import torch

from gradbench.estimators.rloo import Rloo
from gradbench.registry import register_estimator


@register_estimator
class ReinforceBatchBaseline(Rloo):
    """REINFORCE over m independent draws, baselined by the mean of all m values, the draw's own included:

        g = (1/m) Σ_j (f(z_j) − f̄) (onehot(z_j) − p),   f̄ = (1/m) Σ_i f(z_i).

    Biased: f̄ contains f(z_j)/m, which is correlated with the score of z_j. Since E[f(z_j)(onehot(z_j) − p)] = g*
    and E[f(z_i)(onehot(z_j) − p)] = 0 for i ≠ j, E[g] = (1 − 1/m) g* exactly: the gradient shrunk by the factor
    (m − 1)/m (a half at m = 2). Multiplying by m/(m − 1) gives the unbiased leave-one-out estimator ``rloo``.
    Measured and declared biased here; see ``reinforce-baseline`` for the unbiased running-mean baseline.
    Williams (1992), §6 (reinforcement baselines).
    """

    name = "reinforce-batch-baseline"
    summary = "REINFORCE minus the batch mean of m draws (self included); biased by the factor 1 − 1/m"
    family = "score-function"
    reference = "Williams 1992"
    unbiased = False
    # m, draws_per_estimate and the drawing are RLOO's; only the combination of the m draws differs.

    @staticmethod
    def combine(f: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        return batch_baseline_combine(f, score)


def batch_baseline_combine(f: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """(1/m) Σ_j (f_j − f̄) score_j: f n x m, score n x m x D x K -> n x D x K."""
    advantage = f - f.mean(1, keepdim=True)  # n x m
    return (advantage[:, :, None, None] * score).mean(1)  # n x D x K
