"""CARMS: m mutually antithetic categorical draws (a Dirichlet copula) with an importance-weighted RLOO."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Param, Problem
from gradbench.estimators.reinforce import one_hot
from gradbench.estimators.rloo import draw_many, multi_draw_config
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng

COUPLINGS = ("copula", "independent")
SUPPORT = 1e-10
"""A pair of categories whose joint probability under the coupling is below SUPPORT · p_a p_b gets weight 0: such a
pair is never drawn (to the arithmetic's precision), and an equal pair (a = a) may take any weight (its term has
mean zero), so this only keeps rounding noise out of the weights."""


def orderings(K: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The category orders of the inverse-CDF draws: for every pair a < b, a first, b last, the others between in
    increasing order; S = K(K − 1)/2 orders as S x K (row s lists the categories from position 0 to K − 1)."""
    rows = []
    for a in range(K):
        for b in range(a + 1, K):
            rows.append([a, *[c for c in range(K) if c not in (a, b)], b])
    return torch.tensor(rows, dtype=torch.int64, device=device)


def bivariate_cdf(x: torch.Tensor, y: torch.Tensor, m: int) -> torch.Tensor:
    """P(u_i ≤ x, u_j ≤ y) for two of the m uniforms of the Dirichlet copula: (x^c + y^c − 1)₊^{m−1}, c = 1/(m − 1)."""
    c = 1.0 / (m - 1)
    return (x.pow(c) + y.pow(c) - 1).clamp_(min=0).pow_(m - 1)


def upper_ends(p: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Right ends of the categories' intervals of [0, 1] when they are laid out in each order:
    p D x K, order S x K -> D x S x K (by position; the last end is exactly 1)."""
    cdf = p[:, order].cumsum(-1)  # D x S x K
    return cdf / cdf[..., -1:]


def pair_joint(p: torch.Tensor, m: int) -> torch.Tensor:
    """P(z_i = a, z_j = b) per variable for two of the m coupled draws, averaged over the orders (each equally
    likely): p D x K -> D x K x K, in float64."""
    p = p.to(torch.float64)
    order = orderings(p.shape[-1], p.device)  # S x K
    right = upper_ends(p, order)  # D x S x K by position
    left = torch.cat((torch.zeros_like(right[..., :1]), right[..., :-1]), -1)
    inverse = order.argsort(-1).expand_as(right)  # position of each category in each order
    R, L = right.gather(-1, inverse), left.gather(-1, inverse)  # D x S x K by category
    Ra, La, Rb, Lb = R[..., :, None], L[..., :, None], R[..., None, :], L[..., None, :]
    box = bivariate_cdf(Ra, Rb, m) - bivariate_cdf(La, Rb, m) - bivariate_cdf(Ra, Lb, m) + bivariate_cdf(La, Lb, m)
    return box.mean(1)  # D x K x K


def pair_weights(p: torch.Tensor, m: int) -> torch.Tensor:
    """w(a, b) = p_a p_b / P(z_i = a, z_j = b) per variable (0 where the pair is never drawn): D x K x K, float64."""
    joint = pair_joint(p, m)
    independent = p.to(torch.float64)[:, :, None] * p.to(torch.float64)[:, None, :]  # D x K x K
    drawn = joint > SUPPORT * independent
    return torch.where(drawn, independent / joint.where(drawn, 1.0), 0.0)


def coupled_draws(p: torch.Tensor, m: int, rng: BlockRng) -> torch.Tensor:
    """m mutually antithetic draws per variable and estimate: category indices n x m x D.

    Per variable, one order s (uniform over :func:`orderings`) and the m uniforms u_k = (1 − d_k)^{m−1} of the
    Dirichlet copula, d ~ Dirichlet(1_m) (d = e / Σ e, e_k ~ Exp(1)); draw k is the category whose interval, in
    order s, holds u_k. Each u_k is Uniform(0, 1), so each draw is ~ p; m = 2 gives u₂ = 1 − u₁.
    """
    D, K = p.shape
    order = orderings(K, p.device)  # S x K
    right = upper_ends(p.to(torch.float64), order).to(p.dtype)  # D x S x K
    S = order.shape[0]
    s = (rng.uniform(D, dtype=p.dtype) * S).long().clamp_(max=S - 1)  # n x D
    e = rng.open_uniform(m, D, dtype=p.dtype).log_().neg_()  # n x m x D, Exp(1)
    u = (1 - e / e.sum(1, keepdim=True)).pow_(m - 1)  # n x m x D
    ends = right[torch.arange(D, device=p.device), s]  # n x D x K
    position = (u[..., None] >= ends[:, None]).sum(-1).clamp_(max=K - 1)  # n x m x D
    return order[s[:, None, :].expand_as(position), position]  # n x m x D


def carms_combine(f: torch.Tensor, idx: torch.Tensor, score: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(1/(m(m − 1))) Σ_i Σ_{j≠i} w_d(z_id, z_jd) (f_i − f_j) score_id: f n x m, idx n x m x D, score n x m x D x K,
    weights D x K x K -> n x D x K."""
    n, m, D = idx.shape
    K = weights.shape[-1]
    pair = idx[:, :, None, :] * K + idx[:, None, :, :]  # n x m x m x D: a·K + b for (z_id, z_jd)
    w = weights.reshape(D, K * K).to(f.dtype)[torch.arange(D, device=idx.device), pair]  # n x m x m x D
    diff = f[:, :, None] - f[:, None, :]  # n x m x m: f_i − f_j (0 on the diagonal)
    A = (w * diff[..., None]).sum(2)  # n x m x D
    return torch.einsum("nid,nidk->ndk", A, score) / (m * (m - 1))


@register_estimator
class Carms(Estimator):
    """CARMS (Categorical-Antithetic-REINFORCE Multi-Sample). Per variable, m draws z_1..z_m, each ~ p_θ, coupled to
    be mutually antithetic: one random category order s (for every pair a < b the order a, …, b; uniform over these
    K(K − 1)/2) and the m uniforms of the Dirichlet copula, u_k = (1 − d_k)^{m−1}, d ~ Dirichlet(1_m), each mapped to
    a category by the inverse CDF in order s (:func:`coupled_draws`; variables independent of each other). With the
    pair joint P_d(a, b) = P(z_id = a, z_jd = b) of two of the draws (the same for every pair i ≠ j) and the
    importance weight w_d(a, b) = p_da p_db / P_d(a, b),

        g_d = (1/(m(m − 1))) Σ_i Σ_{j≠i} w_d(z_id, z_jd) (f(z_i) − f(z_j)) (onehot(z_id) − p_d).

    P_d is exact: the two-dimensional margin of the copula is C(x, y) = (x^c + y^c − 1)₊^{m−1}, c = 1/(m − 1), and
    P_d(a, b) is the copula's mass on the product of a's and b's intervals, averaged over the orders. Unbiased: given
    z_id = a, z_jd = b, E[f(z_i) − f(z_j)] = F_d(a) − F_d(b) (F_d(a) = E[f | z_d = a]), so the i, j term has mean
    Σ_{a≠b, P(a,b)>0} p_a p_b (F_d(a) − F_d(b)) (e_a − p_d), which is the exact gradient when every pair a ≠ b can be
    drawn together (the order with a first and b last ensures it); the a = b terms have mean zero. With independent
    draws (``coupling = independent``: RLOO's draws, w ≡ 1) it is RLOO, since Σ_{j≠i} (f_i − f_j)/(m − 1) =
    f_i − mean_{j≠i} f_j. Costs m evaluations of f. Exact weights exist for every m ≥ 2 (only the copula's pair margin
    enters), so m is not capped.
    Dimitriev & Zhou (2021), "CARMS: Categorical-Antithetic-REINFORCE Multi-Sample Gradient Estimator", NeurIPS
    (the inverse-CDF variant with random category orders, CARMS-I; the pair weights without the authors' clipping,
    which would bias it); the copula is that of ARMS (Dimitriev & Zhou 2021, ICML).
    """

    name = "carms"
    summary = "m antithetic categorical draws (Dirichlet copula), RLOO with exact pair importance weights; unbiased"
    family = "antithetic"
    reference = "Dimitriev & Zhou 2021"
    unbiased = True
    params = (
        multi_draw_config(),
        Param("coupling", str, "copula", "copula: antithetic draws; independent: RLOO's draws (w ≡ 1)",
              choices=COUPLINGS),
    )  # fmt: skip
    cost_formula = "m"
    default_sweep = False  # the default sweep must stay under a minute on 2 workers: opt-in, like indecater

    @property
    def draws_per_estimate(self) -> int:
        return self.config["m"]

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        m, p = self.config["m"], problem.probs  # p: D x K
        D, K = p.shape
        if self.config["coupling"] == "independent":
            z, f, score = draw_many(problem, rng, m)  # n x m x D x K, n x m, n x m x D x K
            return carms_combine(f, z.argmax(-1), score, torch.ones((D, K, K), dtype=p.dtype, device=p.device))
        idx = coupled_draws(p, m, rng)  # n x m x D
        z = one_hot(idx, K, p.dtype)  # n x m x D x K
        return carms_combine(problem.task.f(z), idx, z - p, pair_weights(p, m))
