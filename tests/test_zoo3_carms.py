"""Known answers for carms: the pair joint against the m-variate copula, the sampler against the enumerated joint,
exact mean and variance over every coupled tuple of draws of a small task, the reduction to RLOO with independent
draws, and a broken variant (no importance weights) that these checks catch."""

from __future__ import annotations

import itertools

import pytest
import torch
from scipy import stats

import gradbench.estimators.carms as carms
from gradbench.estimators.carms import carms_combine, coupled_draws, orderings, pair_joint, pair_weights
from gradbench.estimators.rloo import draw_many, rloo_combine
from gradbench.rng import BlockRng
from tests.helpers import run
from tests.test_zoo_score_function import SMALL, assert_variance_matches, exact_moments, problem_for


def tuple_joint(p: torch.Tensor, m: int) -> torch.Tensor:
    """P(z_1 = a_1, …, z_m = a_m) of one variable's m coupled draws, by inclusion-exclusion over the 2^m corners of
    each box with the m-variate copula C(q) = (Σ_k q_k^c − (m − 1))₊^{m−1}, c = 1/(m − 1) (Dirichlet(1_m) spacings),
    averaged over the orders: p K (float64) -> K^m, tuples in itertools.product order."""
    K = p.shape[0]
    c = 1.0 / (m - 1)
    tuples = torch.tensor(list(itertools.product(range(K), repeat=m)))  # T x m
    corners = torch.tensor(list(itertools.product((0, 1), repeat=m)))  # 2^m x m: 1 = right end
    sign = (-1.0) ** (m - corners.sum(-1)).to(torch.float64)  # 2^m
    total = torch.zeros(tuples.shape[0], dtype=torch.float64)
    order = orderings(K)
    for row in order:  # S orders
        right = torch.zeros(K, dtype=torch.float64)
        right[row] = p[row].cumsum(0) / p.sum()
        left = right - p / p.sum()
        ends = torch.where(corners[None].bool(), right[tuples][:, None], left[tuples][:, None])  # T x 2^m x m
        C = (ends.clamp(min=0).pow(c).sum(-1) - (m - 1)).clamp(min=0).pow(m - 1)  # T x 2^m
        total += (sign * C).sum(-1)
    return total / order.shape[0]


@pytest.mark.parametrize("m", [2, 3, 4])
def test_the_pair_joint_is_the_margin_of_the_m_variate_copula(m):
    gen = torch.Generator().manual_seed(m)
    p = torch.softmax(2 * torch.randn(3, 4, generator=gen, dtype=torch.float64), -1)  # D x K
    for d in range(3):
        joint = tuple_joint(p[d], m).view((4,) * m)
        assert abs(float(joint.sum()) - 1) < 1e-12 and float(joint.min()) > -1e-12
        margin = joint.sum(tuple(range(2, m))) if m > 2 else joint  # K x K: draws 1 and 2
        torch.testing.assert_close(margin, pair_joint(p, m)[d], rtol=0, atol=1e-12)
        torch.testing.assert_close(margin.sum(1), p[d], rtol=0, atol=1e-12)  # each draw is ~ p
    off = pair_joint(p, m) + torch.eye(4, dtype=torch.float64)
    assert float(off.min()) > 0  # every pair a ≠ b can be drawn together: the condition for unbiasedness


def test_the_coupled_draws_follow_the_enumerated_joint():
    m, n = 3, 100_000
    problem = problem_for("sum-target", SMALL, "carms", m=m)
    p = problem.probs  # 2 x 3, float64
    idx = coupled_draws(p, m, BlockRng(11, 0, [n]))  # n x m x D
    for d in range(2):
        code = (idx[:, :, d] * torch.tensor([9, 3, 1])).sum(-1)  # tuple index in product order
        observed = torch.bincount(code, minlength=27).double()
        expected = tuple_joint(p[d], m) * n
        assert float(observed[expected == 0].sum()) == 0
        keep = expected > 0
        chi2 = float(((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum())
        assert stats.chi2.sf(chi2, int(keep.sum()) - 1) > 1e-4, chi2
        same = torch.tensor([0, 13, 26])  # (a, a, a)
        assert float(tuple_joint(p[d], m)[same].sum()) < float(
            p[d].pow(3).sum()
        )  # antithetic: rarer than if independent


def every_coupled_tuple(m: int, weights=None):
    """Estimates and probabilities of every joint outcome of the m coupled draws of SMALL sum-target."""
    problem = problem_for("sum-target", SMALL, "carms", m=m)
    p = problem.probs
    per_variable = [tuple_joint(p[d], m) for d in range(2)]  # K^m each
    T = torch.tensor(list(itertools.product(range(3), repeat=m)))  # K^m x m
    pairs = torch.tensor(list(itertools.product(range(T.shape[0]), repeat=2)))  # outcomes: (tuple of d=0, of d=1)
    idx = torch.stack((T[pairs[:, 0]], T[pairs[:, 1]]), -1)  # N x m x D
    prob = per_variable[0][pairs[:, 0]] * per_variable[1][pairs[:, 1]]  # N
    z = torch.nn.functional.one_hot(idx, 3).to(torch.float64)  # N x m x D x K
    w = pair_weights(p, m) if weights is None else weights
    return problem, carms_combine(problem.task.f(z), idx, z - p, w), prob


@pytest.mark.parametrize("m", [2, 3])
def test_carms_is_exactly_unbiased_over_every_coupled_tuple_and_its_variance_matches(m):
    problem, estimates, prob = every_coupled_tuple(m)
    assert abs(float(prob.sum()) - 1) < 1e-12
    mean, variance = exact_moments(estimates, prob)
    torch.testing.assert_close(mean, problem.exact_grad, rtol=0, atol=1e-13)
    row = run("sum-target", "carms", n=40_000, seed=3, task_params=SMALL, estimator_params={"m": m})
    assert_variance_matches(row, variance)
    assert row["bias_pvalue"] > 1e-3


def test_carms_with_independent_draws_is_rloo():
    problem = problem_for("sum-target", SMALL, "carms")
    z, f, score = draw_many(problem, BlockRng(5, 0, [1000]), 3)
    ones = torch.ones((2, 3, 3), dtype=torch.float64)
    torch.testing.assert_close(carms_combine(f, z.argmax(-1), score, ones), rloo_combine(f, score), rtol=0, atol=1e-15)
    a = run("sum-target", "carms", n=20_000, seed=5, estimator_params={"coupling": "independent"}, dtype="float64")
    b = run("sum-target", "rloo", n=20_000, seed=5, estimator_params={"m": 4}, dtype="float64")
    for column in ("bias", "variance", "mse", "cosine"):
        assert a[column] == pytest.approx(b[column], rel=1e-9, abs=1e-15), column


def test_carms_without_the_importance_weights_is_caught(monkeypatch):
    # Broken on purpose: RLOO's combination (w ≡ 1) on the antithetic draws, which are not independent.
    ones = torch.ones((2, 3, 3), dtype=torch.float64)
    problem, estimates, prob = every_coupled_tuple(3, weights=ones)
    mean, _ = exact_moments(estimates, prob)
    assert (mean - problem.exact_grad).abs().max() > 1e-3
    monkeypatch.setattr(carms, "pair_weights", lambda p, m: torch.ones(p.shape + p.shape[-1:], dtype=p.dtype))
    assert run("sum-target", "carms", n=40_000, seed=3, task_params=SMALL)["bias_pvalue"] < 1e-6
