"""Plain straight-through (ST) for categorical variables, and the helpers the straight-through family shares."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Problem, Task, temperature_param
from gradbench.estimators.reinforce import one_hot
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


def grad_at(task: Task, z: torch.Tensor) -> torch.Tensor:
    """∂f/∂z evaluated at z (n x D x K, e.g. the hard one-hot samples), one autograd call -> n x D x K."""
    leaf = z.detach().clone().requires_grad_(True)  # n x D x K
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(task.f(leaf).sum(), leaf)
    return grad


def softmax_vjp(y: torch.Tensor, v: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Jᵀv for y = softmax(x/τ) over the last axis: ∂⟨v, y⟩/∂x = y ⊙ (v − ⟨y, v⟩)/τ (y, v broadcastable)."""
    return y * (v - (y * v).sum(-1, keepdim=True)) / tau


@register_estimator
class StraightThrough(Estimator):
    """Straight-through: forward f at the hard sample z ~ p_θ, backward through y = softmax(θ/τ):
    g = J_yᵀ ∂f/∂z|_z = y ⊙ (v − ⟨y, v⟩)/τ with v = ∂f/∂z at z (the ``y_hard − y.detach() + y`` form, no noise in
    the backward pass).

    Biased: E[g] = J_yᵀ E[∂f/∂z(z)], the true gradient only by coincidence. Two exact special cases (tested): for f
    linear in z and τ = 1, g equals the exact gradient p ⊙ (h − ⟨p, h⟩) for every draw (zero variance); on the
    Bernoulli toy at θ = 0, g₁ = 2(b − t)/(4τ), so E[g] = g* exactly at τ = 1 and E[g] = g*/τ otherwise.
    Bengio, Léonard & Courville (2013), "Estimating or Propagating Gradients Through Stochastic Neurons for
    Conditional Computation"; the temperature-scaled softmax backward as in Liu et al. (2023), §2.
    """

    name = "st"
    summary = "straight-through: hard z ~ p forward, softmax(θ/τ) backward; biased"
    family = "relaxation"
    reference = "Bengio et al. 2013"
    unbiased = False
    needs_relaxation = True
    params = (temperature_param(),)

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        tau = self.config["tau"]
        p = problem.probs  # D x K
        z = one_hot(rng.categorical(p), p.shape[-1], p.dtype)  # n x D x K
        v = grad_at(problem.task, z)  # n x D x K
        y = (problem.theta / tau).softmax(-1)  # D x K
        return softmax_vjp(y, v, tau)  # n x D x K
