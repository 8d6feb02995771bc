"""Rao-Blackwellised REINFORCE ("sum and sample"): the most probable configurations summed exactly, one sampled."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Param, Problem, Task
from gradbench.estimators.reinforce import one_hot
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


def top_configurations(logp: torch.Tensor, k: int) -> torch.Tensor:
    """The k most probable joint configurations of D independent categoricals: logp D x K -> k x D (int64).

    Beam search keeping the k best prefixes is exact here: log p is a sum over variables and every prefix has the
    same best completion, so each prefix of a top-k configuration is among the top-k prefixes of its length.
    Needs k ≤ K^D.
    """
    D, K = logp.shape
    score = torch.zeros(1, dtype=logp.dtype, device=logp.device)  # beam: log p(prefix)
    prefixes = torch.zeros((1, 0), dtype=torch.int64, device=logp.device)  # beam x d
    for d in range(D):
        child = (score[:, None] + logp[d]).reshape(-1)  # beam·K
        best = child.topk(min(k, child.numel()))
        parent, category = best.indices // K, best.indices % K
        prefixes = torch.cat((prefixes[parent], category[:, None]), 1)
        score = best.values
    return prefixes


def sample_outside(probs: torch.Tensor, summed: torch.Tensor, rng: BlockRng) -> torch.Tensor:
    """z ~ p_θ conditioned on z ∉ C, C the configurations ``summed`` (k x D), one variable at a time.

    P(z_d = b | prefix, z ∉ C) ∝ p(prefix, b) − p(C ∩ {prefix, b}), with p(prefix, b) the prefix's probability and
    the second term the mass of the members of C that extend it; a prefix all of whose K^(D−d−1) completions lie in
    C gets weight 0 exactly (counted, not subtracted). One uniform per variable, inverse CDF, float64.
    probs D x K float64 -> indices n x D (int64).
    """
    D, K = probs.shape
    k = summed.shape[0]
    members = one_hot(summed, K, torch.float64)  # k x D x K
    p_members = probs[torch.arange(D, device=probs.device), summed].prod(-1)  # k: p(c), same product order as below
    u = rng.uniform(D, dtype=torch.float64)  # n x D
    n = u.shape[0]
    prefix = torch.ones((n, 1), dtype=torch.float64, device=probs.device)  # n x 1: p(prefix)
    alive = torch.ones((n, k), dtype=torch.float64, device=probs.device)  # n x k: members extending the prefix
    out = torch.empty((n, D), dtype=torch.int64, device=probs.device)
    for d in range(D):
        covered = alive @ members[:, d]  # n x K: members extending (prefix, b)
        weight = (prefix * probs[d] - (alive * p_members) @ members[:, d]).clamp_(min=0.0)  # n x K
        completions = K ** (D - d - 1)  # a Python int: can exceed int64 for many variables
        if completions <= k:  # only then can all of a prefix's completions be members
            weight[covered == completions] = 0.0
        cdf = weight.cumsum(-1)  # n x K
        b = (u[:, d : d + 1] * cdf[:, -1:] >= cdf).sum(-1).clamp_(max=K - 1)  # n
        out[:, d] = b
        prefix = prefix * probs[d, b][:, None]
        alive = alive * (summed[:, d] == b[:, None])
    return out


@register_estimator
class RaoBlackwellReinforce(Estimator):
    """Rao-Blackwellised score function ("sum and sample"): with C the ``summed`` most probable joint
    configurations of the D variables and z̃ ~ p_θ(· | z ∉ C),

        g = Σ_{c∈C} p(c) f(c) (onehot(c) − p) + (1 − p(C)) f(z̃) (onehot(z̃) − p),

    i.e. REINFORCE's expectation split over C (summed exactly) and its complement (one draw). Unbiased for any f,
    and never more variance than one REINFORCE draw (it conditions on the event z ∈ C). ``summed = 0`` is REINFORCE;
    with ``summed = K^D − 1`` the sampled term is deterministic and every estimate is the exact gradient (so on the
    one-variable Bernoulli toy the default ``summed = 1`` is exact). Costs summed + 1 evaluations of f per
    estimate. Applied to the joint distribution of the D variables (the paper's z is any discrete variable; C is
    found by an exact beam search, and z̃ is drawn variable by variable with C's mass removed).
    Liu, Regier, Tripuraneni, Jordan & McAuliffe (2019), "Rao-Blackwellized Stochastic Gradients for Discrete
    Distributions", ICML.
    """

    name = "rb-reinforce"
    summary = "REINFORCE with the top configurations summed exactly and the rest sampled once; unbiased"
    family = "score-function"
    reference = "Liu et al. 2019"
    unbiased = True
    cost_formula = "summed + 1"
    params = (Param("summed", int, 1, "most probable joint configurations summed exactly (< K^D)", low=0),)

    @property
    def draws_per_estimate(self) -> int:
        return self.config["summed"] + 1

    def incompatibility(self, task: Task) -> str | None:
        reason = super().incompatibility(task)
        if reason is None and self.config["summed"] >= task.n_configurations:
            return (
                f"estimator {self.name!r} sums summed = {self.config['summed']} configurations exactly and samples the "
                f"rest, and task {task.name!r} has only K^D = {task.n_configurations} (use --est-opt summed=N, N < K^D)"
            )
        return reason

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        theta = problem.theta
        D, K = theta.shape
        probs = theta.to(torch.float64).softmax(-1)  # D x K
        summed = top_configurations(probs.log(), self.config["summed"])  # k x D
        z_c = one_hot(summed, K, theta.dtype)  # k x D x K
        p_c = probs[torch.arange(D, device=theta.device), summed].prod(-1)  # k
        score_c = z_c - problem.probs  # k x D x K
        exact_part = ((p_c * problem.task.f(z_c).to(torch.float64))[:, None, None] * score_c).sum(0)  # D x K
        z = one_hot(sample_outside(probs, summed, rng), K, theta.dtype)  # n x D x K
        rest = (1.0 - p_c.sum()).to(theta.dtype)
        sampled = (problem.task.f(z) * rest)[:, None, None] * (z - problem.probs)  # n x D x K
        return sampled.add_(exact_part.to(theta.dtype))
