"""Decoupled straight-through Gumbel: separate temperatures for the forward sample and the backward surrogate."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Param, Problem, temperature_param
from gradbench.fast import grad_f, perturbed_logits, row_sum, shifted_exp_and_hard_
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


@register_estimator
class DecoupledStraightThrough(Estimator):
    """Decoupled ST-Gumbel: forward temperature τ_f (``tau``) and backward temperature τ_b (``tau_b``).

    Forward: the hard sample z = onehot(argmax(θ/τ_f + G)), a draw from softmax(θ/τ_f) (τ_f sets the exploration;
    τ_f = 1 samples p_θ itself). Backward: through z̃ = softmax((θ/τ_f + G)/τ_b), so

        g = ∂⟨v, z̃⟩/∂θ = z̃ ⊙ (v − ⟨z̃, v⟩) / (τ_f τ_b),   v = ∂f/∂z at the hard z.

    With τ_f = 1 it is ST-Gumbel at τ = τ_b, number for number (tested). Biased at every (τ_f, τ_b). Needs f on the
    simplex. Our reading of the forward temperature: a hard argmax of (θ + G)/τ_f would not depend on τ_f, so τ_f
    scales the logits of the sample. Shah, Yan, Mozer & Liu (2024), "Improving Discrete Optimisation Via Decoupled
    Straight-Through Gumbel-Softmax", arXiv:2410.13331.
    """

    name = "decoupled-st"
    summary = "ST-Gumbel with a forward temperature τ (sampling) and a backward one τ_b (surrogate); biased"
    family = "relaxation"
    reference = "Shah et al. 2024"
    unbiased = False
    needs_relaxation = True
    params = (
        temperature_param(),
        Param("tau_b", float, 1.0, "backward temperature τ_b of the surrogate softmax", low=0.0, low_open=True),
    )

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        tau_f, tau_b = self.config["tau"], self.config["tau_b"]
        logits = problem.theta if tau_f == 1.0 else problem.theta / tau_f  # D x K
        y = perturbed_logits(logits, rng, tau_b)  # n x D x K, (θ/τ_f + G)/τ_b
        e, hard = shifted_exp_and_hard_(y)  # n x D x K each: exp(y − max y), onehot(argmax(θ/τ_f + G))
        q = e.div_(row_sum(e, rng.sizes).mul_(tau_b))  # n x D x K, z̃/τ_b
        t = grad_f(problem.task, hard).mul_(q)  # n x D x K, z̃ ⊙ v / τ_b
        g = t.addcmul_(q, row_sum(t, rng.sizes), value=-tau_b)  # n x D x K, (z̃ ⊙ v − z̃ ⟨z̃, v⟩)/τ_b
        return g if tau_f == 1.0 else g.div_(tau_f)
