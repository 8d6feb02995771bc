"""The unordered set estimator: m distinct joint configurations sampled without replacement, with the built-in
baseline (Kool, van Hoof & Welling 2020)."""

from __future__ import annotations

import math

import torch

from gradbench.core import Estimator, Param, Problem, Task
from gradbench.estimators.reinforce import one_hot
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng

MAX_M = 10
"""Largest set size: the set probabilities take a dynamic programme over the 2^m subsets of the sample."""
_DP_ENTRIES = 1 << 20
"""Rows of the dynamic programme processed at once are chosen so that rows · 2^m stays near this."""


def stochastic_beam_search(logp: torch.Tensor, gumbel: torch.Tensor, m: int) -> torch.Tensor:
    """m distinct configurations of D independent categoricals, sampled without replacement from the joint.

    Gumbel-top-k over the K^D joint configurations, done top-down one variable at a time (stochastic beam search,
    Kool, van Hoof & Welling 2019, "Stochastic Beams and Where to Find Them", ICML): a prefix's perturbed value is
    the maximum of its completions' perturbed log-probabilities; children get Gumbel(log p) values conditioned on
    their maximum being the parent's, and the m largest prefixes survive each level. The root is fixed at 0, which
    does not change the distribution of the set (the order of Gumbel-perturbed values is independent of their
    maximum). Cost O(D·m·K) per set, whatever K^D.

    logp: D x K float64 log-probabilities; gumbel: n x D x m x K standard Gumbel noise (float64). Needs K^D ≥ m.
    Returns the configurations as category indices, n x m x D (int64).
    """
    n, D, _, K = gumbel.shape
    phi = torch.full((n, m), -math.inf, dtype=torch.float64, device=gumbel.device)  # n x m: log p(prefix)
    phi[:, 0] = 0.0  # one live prefix (the root); −inf marks an empty slot while fewer than m prefixes exist
    top = phi.clone()  # n x m: perturbed value of each prefix (root fixed at 0)
    parents, categories = [], []
    for d in range(D):
        full = K**d >= m  # every slot holds a live prefix from here on (decided by sizes, not by the data)
        child_phi = phi[..., None] + logp[d]  # n x m x K
        g = child_phi + gumbel[:, d]  # n x m x K: Gumbel(log p(child))
        parent = top[..., None]  # n x m x 1
        if not full:  # empty slots would give −inf − (−inf): compute them as 0 and discard below
            alive = torch.isfinite(parent)
            g, parent = torch.where(alive, g, 0.0), torch.where(alive, parent, 0.0)
        z = g.amax(-1, keepdim=True)  # n x m x 1
        # Gumbel(φ) given its maximum is T: −log(e^−T − e^−Z + e^−G) = T − softplus(T − G + log(1 − e^(G−Z)))
        child = parent - torch.nn.functional.softplus(parent - g + torch.log(-torch.expm1(g - z)))  # n x m x K
        if not full:
            child = torch.where(alive, child, -math.inf)
        best = child.reshape(n, m * K).topk(m, -1)  # the m largest prefixes of length d + 1
        parents.append(best.indices // K)  # n x m
        categories.append(best.indices % K)  # n x m
        top = best.values
        phi = child_phi.reshape(n, m * K).gather(1, best.indices)
        if not full:
            phi = torch.where(torch.isfinite(top), phi, -math.inf)
    configs = torch.empty((n, m, D), dtype=torch.int64, device=gumbel.device)  # n x m x D
    slot = torch.arange(m, device=gumbel.device).expand(n, m)  # n x m: follow each final prefix back to the root
    for d in range(D - 1, -1, -1):
        configs[:, :, d] = categories[d].gather(1, slot)
        slot = parents[d].gather(1, slot)
    return configs


class _SubsetTables:
    """Index tables for the dynamic programme over the subsets U ⊆ {0, …, m−1} (bit masks)."""

    def __init__(self, m: int, device: torch.device):
        masks = torch.arange(1 << m, device=device)  # 2^m
        bits = 1 << torch.arange(m, device=device)  # m
        self.member = ((masks[:, None] & bits) != 0).to(torch.float64)  # 2^m x m: t ∈ U
        self.add = masks[:, None] | bits  # 2^m x m: U ∪ {t}
        popcount = self.member.sum(1).long()
        self.levels = [masks[popcount == size] for size in range(m - 1, -1, -1)]  # largest subsets first
        self.singles = bits  # m: {s}
        self.pairs = bits[:, None] | bits[None, :]  # m x m: {s, s'} ({s} on the diagonal)


def set_weights(log_p: torch.Tensor, tables: _SubsetTables) -> tuple[torch.Tensor, torch.Tensor]:
    """Leave-one-out quantities of an unordered sample S = {s_1..s_m} drawn without replacement.

    With q(U) = P(the remaining draws give S \\ U | the first |U| draws were U) = p^{D\\U}(S \\ U), computed for
    every U ⊆ S by q(S) = 1, q(U) = Σ_{t ∈ S\\U} p(t)/(1 − p(U)) · q(U ∪ {t}) (p(U) = Σ_{u∈U} p(u)):
    p(S) = q(∅), R(S, s) = q({s})/q(∅), R^{D\\{s}}(S, s') = q({s, s'})/q({s}) (= 1 for s' = s).

    log_p: n x m float64, the log-probabilities of the m configurations. Returns (w n x m, r n x m x m) with
    w_s = p(s) R(S, s) = P(s was drawn first | S) and r_{s,s'} = p(s') R^{D\\{s}}(S, s').

    Scaled so that nothing underflows: q(U) is a sum of products of m − |U| factors p(t)/(1 − p(·)), so with
    c = max_s p(s) per row the recursion runs on q̃(U) = q(U)/c^{m−|U|} with p̃ = p/c ≤ 1 in the numerators (the
    masses 1 − p(U) stay unscaled), and w = p̃ q̃({s})/q̃(∅), r_{s,s'} = p̃(s') q̃({s,s'})/q̃({s}) for s' ≠ s, p(s) on
    the diagonal. Without the scaling, q(∅) ≈ p^m underflows to 0 on large models (m = 4 configurations of the 128
    latent variables of vae-digits: p ≈ 10⁻¹¹⁶, p^m ≈ 10⁻⁴⁶⁴) and w = 0/0.
    """
    n, m = log_p.shape
    p = log_p.exp()  # n x m (may underflow to 0: it only enters the masses 1 − p(U))
    p_scaled = (log_p - log_p.max(-1, keepdim=True).values).exp()  # n x m, p/c ≤ 1
    q = torch.zeros((n, 1 << m), dtype=torch.float64, device=log_p.device)  # n x 2^m: q̃
    q[:, -1] = 1.0
    mass = (p[:, None, :] * tables.member).sum(-1)  # n x 2^m: p(U)
    for masks in tables.levels:  # sizes m − 1 … 0
        outside = tables.member[masks] == 0  # c x m: t ∉ U
        step = p_scaled[:, None, :] / (1.0 - mass[:, masks])[..., None]  # n x c x m
        nxt = q[:, tables.add[masks]]  # n x c x m: q̃(U ∪ {t})
        q[:, masks] = torch.where(outside, step * nxt, 0.0).sum(-1)
    q_single = q[:, tables.singles]  # n x m
    w = p_scaled * q_single / q[:, :1]  # n x m
    r = p_scaled[:, None, :] * q[:, tables.pairs] / q_single[..., None]  # n x m x m
    diagonal = torch.eye(m, dtype=torch.bool, device=log_p.device)
    r = torch.where(diagonal, p[:, None, :], r)  # r_{s,s} = p(s) R^{D\\{s}}(S, s) = p(s)
    return w, r


@register_estimator
class UnorderedSet(Estimator):
    """The unordered set estimator with its built-in baseline (Kool, van Hoof & Welling 2020).

    S is a set of m distinct configurations of all D variables, sampled without replacement from the joint p_θ
    (stochastic beam search, see :func:`stochastic_beam_search`). With the leave-one-out ratios
    R(S, s) = p^{D\\{s}}(S\\{s}) / p(S) and R^{D\\{s}}(S, s') = p^{D\\{s,s'}}(S\\{s,s'}) / p^{D\\{s}}(S\\{s})
    (1 for s' = s), p^{D\\A} the distribution with the elements of A removed:

        g = Σ_{s∈S} p(s) R(S, s) ∇_θ log p(s) · (f(s) − Σ_{s'∈S} p(s') R^{D\\{s}}(S, s') f(s')),

    ∇_θ log p(s) = onehot(s) − p. p(s)R(S, s) is the probability that s was drawn first given the set, so this is
    REINFORCE on the first draw with a baseline built from the other m − 1 (an unbiased estimate of E f whose
    conditional mean given the first draw is E f), Rao-Blackwellised over the order of the draws. Exactly
    unbiased for m ≥ 2; with m = K^D the set is the whole space and every estimate is the exact gradient.

    Limits: m ≤ 10 (the set probabilities take a dynamic programme over the 2^m subsets of S, O(2^m m) per
    estimate, in float64), and m ≤ K^D (a task with fewer configurations is refused). Any K^D otherwise.
    One estimate costs m evaluations of f (``draws_per_estimate = m``).
    """

    name = "unordered-set"
    summary = "m distinct joint samples without replacement, leave-one-out built-in baseline; unbiased"
    family = "score-function"
    reference = "Kool et al. 2020"
    unbiased = True
    params = (Param("m", int, 4, "distinct configurations per estimate", low=2, high=MAX_M),)
    cost_formula = "m"

    @property
    def draws_per_estimate(self) -> int:
        return self.config["m"]

    def incompatibility(self, task: Task) -> str | None:
        reason = super().incompatibility(task)
        if reason is None and task.n_configurations < self.config["m"]:
            return (
                f"estimator {self.name!r} samples m = {self.config['m']} distinct configurations without replacement, "
                f"and task {task.name!r} has only K^D = {task.n_configurations} (use --est-opt m=N with 2 ≤ N ≤ K^D)"
            )
        return reason

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        m = self.config["m"]
        theta = problem.theta
        D, K = theta.shape
        logp = theta.to(torch.float64).log_softmax(-1)  # D x K
        gumbel = rng.gumbel(D, m, K, dtype=torch.float64)  # n x D x m x K
        tables = _SubsetTables(m, theta.device)
        out = torch.empty((rng.n, D, K), dtype=theta.dtype, device=theta.device)  # n x D x K
        rows = max(1, _DP_ENTRIES >> m)
        for start in range(0, rng.n, rows):  # bounded memory: rows x 2^m at a time, vectorized within
            stop = min(start + rows, rng.n)
            idx = stochastic_beam_search(logp, gumbel[start:stop], m)  # r x m x D
            out[start:stop] = set_estimate(problem, idx, tables)
        return out


def set_estimate(problem: Problem, idx: torch.Tensor, tables: _SubsetTables | None = None) -> torch.Tensor:
    """The estimate for given sets of m distinct configurations: idx r x m x D (category indices) -> r x D x K."""
    theta = problem.theta
    D, K = theta.shape
    m = idx.shape[1]
    tables = tables or _SubsetTables(m, theta.device)
    logp = theta.to(torch.float64).log_softmax(-1)  # D x K
    z = one_hot(idx, K, theta.dtype)  # r x m x D x K
    f = problem.task.f(z).to(torch.float64)  # r x m
    log_prob = logp[torch.arange(D, device=theta.device), idx].sum(-1)  # r x m: log p(s)
    w, r = set_weights(log_prob, tables)  # r x m, r x m x m
    advantage = w * (f - (r * f[:, None, :]).sum(-1))  # r x m: P(s first | S) (f(s) − baseline_s)
    score = z.to(torch.float64) - logp.exp()  # r x m x D x K: ∇θ log p(s)
    return (advantage[:, :, None, None] * score).sum(1).to(theta.dtype)  # r x D x K
