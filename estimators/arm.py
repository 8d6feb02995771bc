"""ARM: Augment-REINFORCE-Merge, an antithetic estimator for binary variables."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Problem
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


def logit_difference(theta: torch.Tensor) -> torch.Tensor:
    """α = θ₁ − θ₀ of binary variables (θ D x 2 -> α D), so that p(b = 1) = σ(α) with b = z[..., 1]."""
    return theta[:, 1] - theta[:, 0]


def to_theta_gradient(g_alpha: torch.Tensor) -> torch.Tensor:
    """Chain rule from α = θ₁ − θ₀: ∂/∂θ₁ = g_α, ∂/∂θ₀ = −g_α (n x D -> n x D x 2)."""
    return torch.stack((-g_alpha, g_alpha), -1)


def antithetic_pair(problem: Problem, rng: BlockRng) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """u ~ U[0, 1)^D per estimate and the antithetic pair b = 1[u < σ(α)], b̃ = 1[u ≥ σ(−α)] (= 1[1 − u ≤ σ(α)]).

    Both are Bernoulli(σ(α)) marginally (exactly so on the 2⁻²⁴ grid of float32 uniforms: the same number of grid
    points lies below σ(α) as at or above 1 − σ(α), up to one), and at α = 0 they always differ. Returns
    (u n x D, b n x D, b̃ n x D), b and b̃ as 0/1 in θ's dtype.
    """
    theta = problem.theta
    alpha = logit_difference(theta)  # D
    u = rng.uniform(theta.shape[0], dtype=theta.dtype)  # n x D
    b = (u < torch.sigmoid(alpha)).to(theta.dtype)  # n x D
    b_anti = (u >= torch.sigmoid(-alpha)).to(theta.dtype)  # n x D
    return u, b, b_anti


def f_binary(problem: Problem, b: torch.Tensor) -> torch.Tensor:
    """f at the binary configurations b (n x D, 0/1) -> n."""
    return problem.task.f(torch.stack((1 - b, b), -1))


@register_estimator
class Arm(Estimator):
    """ARM (Augment-REINFORCE-Merge) on the logit difference α = θ₁ − θ₀ of each binary variable:

        g_α = (f(b̃) − f(b)) (u − ½),   u ~ U(0, 1)^D,  b = 1[u < σ(α)],  b̃ = 1[u > σ(−α)],

    with f evaluated at the whole vectors b and b̃ (two evaluations of f per estimate, ``draws_per_estimate = 2``)
    and g_α a vector over the D variables; then ∂/∂θ₁ = g_α, ∂/∂θ₀ = −g_α. Unbiased.
    Known answer: one variable at α = 0 gives g_α = Δ·|u − ½| with Δ = f(1) − f(0), so the mean is Δ/4 and the
    variance Δ²/48 per α component (Δ²/24 summed over θ₀ and θ₁).
    Yin & Zhou (2019), "ARM: Augment-REINFORCE-Merge Gradient for Stochastic Binary Networks", ICLR.
    """

    name = "arm"
    summary = "Augment-REINFORCE-Merge: antithetic pair on θ₁ − θ₀; unbiased, binary only"
    family = "binary"
    reference = "Yin & Zhou 2019"
    unbiased = True
    binary_only = True

    @property
    def draws_per_estimate(self) -> int:
        return 2

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        u, b, b_anti = antithetic_pair(problem, rng)  # n x D each
        diff = f_binary(problem, b_anti) - f_binary(problem, b)  # n
        return to_theta_gradient(diff[:, None] * (u - 0.5))  # n x D x 2
