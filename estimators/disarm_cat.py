"""Categorical DisARM: DisARM on the stick-breaking binary decomposition of each categorical variable."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Problem
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


def stick_breaking(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The stick-breaking logits of each variable, categories taken in decreasing order of probability.

    With σ_d the order (σ_d(0) the most probable category of variable d) and q_dj = p_{d,σ_d(j)}, binary j < K − 1
    of variable d is 1 with probability q_dj / Σ_{i≥j} q_di, i.e. logit α_dj = θ_{d,σ(j)} − logsumexp_{i>j} θ_{d,σ(i)}.
    Returns (order D x K int64, α D x (K−1), W D x (K−1) x K) with W_dji = ∂α_dj/∂θ_{d,σ(i)}: 1 for i = j,
    −q_di / Σ_{i'>j} q_di' for i > j, 0 for i < j.
    """
    order = torch.argsort(theta, dim=-1, descending=True, stable=True)  # D x K
    ordered = theta.gather(-1, order)  # D x K
    tail = ordered.flip(-1).logcumsumexp(-1).flip(-1)  # D x K: logsumexp_{i ≥ j}
    alpha = ordered[:, :-1] - tail[:, 1:]  # D x (K−1)
    K = theta.shape[-1]
    i = torch.arange(K, device=theta.device)
    j = torch.arange(K - 1, device=theta.device)
    after = (i[None, :] > j[:, None]).to(theta.dtype)  # (K−1) x K
    share = (ordered[:, None, :] - tail[:, 1:, None]).exp() * after  # D x (K−1) x K: q_i / Σ_{i'>j} q_i'
    W = (i[None, :] == j[:, None]).to(theta.dtype) - share  # D x (K−1) x K
    return order, alpha, W


def category_of(b: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """The category chosen by stick-breaking binaries b (n x D x (K−1), 0/1): the first j with b_j = 1, else the
    last, mapped back through the order -> one-hot n x D x K in b's dtype."""
    n, D, _ = b.shape
    K = order.shape[-1]
    stops = torch.cat((b, torch.ones_like(b[..., :1])), -1)  # n x D x K
    first = (stops.cumsum(-1) == 1) & (stops == 1)  # n x D x K: one-hot of the first stop, in the order
    z = torch.zeros((n, D, K), dtype=b.dtype, device=b.device)
    return z.scatter_(-1, order.expand(n, D, K), first.to(b.dtype))  # back to the original categories


def disarm_cat_from_binaries(problem: Problem, b: torch.Tensor, b_anti: torch.Tensor) -> torch.Tensor:
    """The estimate for given antithetic binaries b, b̃ (n x D x (K−1), 0/1) -> n x D x K."""
    order, alpha, W = stick_breaking(problem.theta)
    f = problem.task.f(category_of(b, order))  # n
    f_anti = problem.task.f(category_of(b_anti, order))  # n
    sign = (1 - 2 * b_anti) * (b != b_anti).to(b.dtype)  # n x D x (K−1): (−1)^b̃ 1[b ≠ b̃]
    g_alpha = 0.5 * (f - f_anti)[:, None, None] * sign * torch.sigmoid(alpha.abs())  # n x D x (K−1)
    g_ordered = torch.einsum("ndj,dji->ndi", g_alpha, W)  # n x D x K, w.r.t. θ_{d,σ(i)}
    return torch.empty_like(g_ordered).scatter_(-1, order.expand_as(g_ordered), g_ordered)


@register_estimator
class DisArmCategorical(Estimator):
    """Categorical DisARM by stick-breaking. Each categorical variable is written as K − 1 independent binaries
    (categories in decreasing order of probability): b_j ~ Bernoulli(σ(α_j)), α_j = log(q_j / Σ_{i>j} q_i), and
    z = the first j with b_j = 1 (the last category if none). With one uniform u_j per binary, the antithetic pair
    b = 1[u < σ(α)], b̃ = 1[1 − u < σ(α)] gives two configurations z, z̃, and the DisARM estimate on the logits α

        g_α,dj = ½ (f(z) − f(z̃)) (−1)^{b̃_dj} 1[b_dj ≠ b̃_dj] σ(|α_dj|)

    (unbiased for any f of independent binaries), then g_θ = (∂α/∂θ)ᵀ g_α with ∂α_j/∂θ_{σ(j)} = 1 and
    ∂α_j/∂θ_{σ(i)} = −q_i / Σ_{i'>j} q_i' for i > j. Two evaluations of f per estimate; for K = 2 it is DisARM.
    Dong, Mnih & Tucker (2021), "Coupled Gradient Estimators for Discrete Latent Variables", NeurIPS (the
    stick-breaking construction with DisARM on its binaries; the decreasing-probability order is our choice).
    """

    name = "disarm-cat"
    summary = "DisARM on the stick-breaking binaries of each categorical; 2 evaluations; unbiased"
    family = "antithetic"
    reference = "Dong, Mnih & Tucker 2021"
    unbiased = True

    @property
    def draws_per_estimate(self) -> int:
        return 2

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        theta = problem.theta
        D, K = theta.shape
        _, alpha, _ = stick_breaking(theta)
        u = rng.uniform(D, K - 1, dtype=theta.dtype)  # n x D x (K−1)
        b = (u < torch.sigmoid(alpha)).to(theta.dtype)
        b_anti = (u >= torch.sigmoid(-alpha)).to(theta.dtype)  # 1[1 − u ≤ σ(α)], as for binary ARM/DisARM
        return disarm_cat_from_binaries(problem, b, b_anti)
