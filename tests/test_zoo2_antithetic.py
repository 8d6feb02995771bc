"""Known answers for the categorical antithetic estimators disarm-cat and arsm.

disarm-cat: exact mean and variance by enumerating the joint states of the antithetic binary pairs (b_j, b̃_j),
whose probabilities are known in closed form. arsm: exact mean and variance for K = 2 by integrating the Dirichlet
noise exactly (Gauss-Legendre on each piece where the pseudo actions are constant); for K = 3, a replay against the
textbook double loop and a variance cross-check by midpoint quadrature over the simplex.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from gradbench.estimators.arsm import Arsm, arsm_from_pi
from gradbench.estimators.disarm_cat import disarm_cat_from_binaries, stick_breaking
from gradbench.runner import CellSpec, prepare
from tests.helpers import run
from tests.test_zoo_binary import OFF_CENTRE, quadrature
from tests.test_zoo_score_function import SMALL, assert_variance_matches, exact_moments, problem_for

PAIR_STATES = ((1, 1), (1, 0), (0, 1), (0, 0))


def pair_probabilities(s: torch.Tensor) -> torch.Tensor:
    """P(b, b̃) for b = 1[u < s], b̃ = 1[u ≥ 1 − s], u ~ U(0, 1), in the order of PAIR_STATES: s (...) -> ... x 4."""
    low = torch.minimum(s, 1 - s)
    return torch.stack(((2 * s - 1).clamp(min=0), low, low, (1 - 2 * s).clamp(min=0)), -1)


def disarm_cat_moments(problem, estimate=disarm_cat_from_binaries):
    """Exact (mean, trace of covariance) of disarm-cat: every joint state of the D(K−1) antithetic pairs."""
    D, K = problem.theta.shape
    _, alpha, _ = stick_breaking(problem.theta)
    probs = pair_probabilities(torch.sigmoid(alpha)).reshape(-1, 4)  # D(K−1) x 4
    states = torch.tensor(list(itertools.product(range(4), repeat=D * (K - 1))))  # 4^{D(K−1)} x D(K−1)
    pairs = torch.tensor(PAIR_STATES, dtype=torch.float64)[states]  # N x D(K−1) x 2
    weight = probs.gather(1, states.T).T.prod(-1)  # N
    b = pairs[..., 0].reshape(-1, D, K - 1)
    b_anti = pairs[..., 1].reshape(-1, D, K - 1)
    assert weight.sum().item() == pytest.approx(1.0, abs=1e-12)
    return exact_moments(estimate(problem, b, b_anti), weight)


@pytest.mark.parametrize("task_params", [SMALL, {**SMALL, "target": 0.9}, {"dim": 1, "categories": 5}])
def test_disarm_cat_is_exactly_unbiased_over_every_antithetic_state(task_params):
    problem = problem_for("sum-target", task_params)
    mean, variance = disarm_cat_moments(problem)
    torch.testing.assert_close(mean, problem.exact_grad, rtol=0, atol=1e-15)
    row = run("sum-target", "disarm-cat", n=40_000, seed=3, task_params=task_params)
    assert_variance_matches(row, variance)
    assert row["draws_per_estimate"] == 2


def test_disarm_cat_without_the_stick_breaking_chain_rule_is_caught(monkeypatch):
    # Broken on purpose: g_θ(σ(j)) = g_α(j) only, dropping ∂α_j/∂θ_σ(i) = −q_i / Σ_{i'>j} q_i' for i > j.
    import gradbench.estimators.disarm_cat as module

    original = module.stick_breaking

    def broken(theta):
        order, alpha, W = original(theta)
        return order, alpha, W.clamp(min=0)

    problem = problem_for("sum-target", SMALL)
    monkeypatch.setattr(module, "stick_breaking", broken)
    mean, _ = disarm_cat_moments(problem)
    assert (mean - problem.exact_grad).abs().max() > 1e-3
    assert run("sum-target", "disarm-cat", n=40_000, seed=3, task_params=SMALL)["bias_pvalue"] < 1e-6


@pytest.mark.parametrize("task_params", OFF_CENTRE)
def test_disarm_cat_on_binary_variables_is_disarm(task_params):
    a = run("bernoulli", "disarm-cat", n=20_000, seed=4, task_params=task_params)
    b = run("bernoulli", "disarm", n=20_000, seed=4, task_params=task_params)
    assert a["variance"] == b["variance"] and a["bias"] == b["bias"]


# --- arsm --------------------------------------------------------------------------------------------------------


def arsm_textbook(problem, pi: torch.Tensor) -> torch.Tensor:
    """ARSM by the paper's double loop over (c, j), one estimate at a time (pi n x D x K)."""
    theta = problem.theta
    n, D, K = pi.shape
    out = torch.zeros(n, D, K, dtype=pi.dtype)
    for i in range(n):

        def action(c, j, i=i):
            swapped = pi[i].clone()
            swapped[:, [c, j]] = swapped[:, [j, c]]
            z = (swapped.log() - theta).argmin(-1)  # D
            return problem.task.f(torch.nn.functional.one_hot(z, K).to(pi.dtype))

        F = torch.tensor([[float(action(c, j)) for j in range(K)] for c in range(K)], dtype=pi.dtype)
        for d in range(D):
            for c in range(K):
                out[i, d, c] = sum((F[c, j] - F[:, j].mean()) * (1 / K - pi[i, d, j]) for j in range(K))
    return out


def test_arsm_replays_the_textbook_double_loop():
    problem = problem_for("sum-target", SMALL)
    e = -torch.rand(16, 2, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64).log()
    pi = e / e.sum(-1, keepdim=True)
    torch.testing.assert_close(arsm_from_pi(problem, pi), arsm_textbook(problem, pi))


def arsm_binary_moments(task_params: dict, estimate=arsm_from_pi):
    """Exact moments of ARSM on the Bernoulli toy (K = 2): π_d0 ~ U(0, 1) integrated piecewise exactly."""
    problem = problem_for("bernoulli", task_params)
    theta = problem.theta
    u, w = quadrature(torch.sigmoid(theta[:, 1] - theta[:, 0]))  # the pieces' ends: σ(α) and 1 − σ(α)
    pi = torch.stack((u, 1 - u), -1)  # N x D x 2
    g = estimate(problem, pi)
    mean = (w[:, None, None] * g).sum(0)
    return mean, float((w[:, None, None] * g.square()).sum(0).sub(mean.square()).sum()), problem.exact_grad


@pytest.mark.parametrize("task_params", OFF_CENTRE)
def test_arsm_is_exactly_unbiased_on_binary_variables(task_params):
    mean, variance, exact = arsm_binary_moments(task_params)
    torch.testing.assert_close(mean, exact, rtol=1e-12, atol=1e-15)
    row = run("bernoulli", "arsm", n=100_000, seed=4, task_params=task_params)
    assert abs(row["variance"] - variance) < 4 * row["variance_se"] + 1e-15, (row["variance"], variance)
    assert row["draws_per_estimate"] == 2


def test_arsm_with_a_uniform_instead_of_a_dirichlet_is_caught(monkeypatch):
    # Broken on purpose: π = U / Σ U (normalised uniforms) instead of Dirichlet(1) = E / Σ E.
    def estimate(self, problem, rng):
        u = rng.open_uniform(*problem.theta.shape, dtype=problem.theta.dtype)
        return arsm_from_pi(problem, u / u.sum(-1, keepdim=True))

    monkeypatch.setattr(Arsm, "estimate", estimate)
    assert run("sum-target", "arsm", n=100_000, seed=4)["bias_pvalue"] < 1e-6


def test_arsm_variance_matches_quadrature_over_the_simplex():
    # K = 3, D = 1: π uniform on the 2-simplex; midpoint rule on a fine triangular grid (an independent check of
    # the variance; the mean is pinned by the unbiasedness test of the contract suite).
    params = {"dim": 1, "categories": 3, "target": 0.2}
    problem = problem_for("sum-target", params)
    m = 600
    a, b = torch.meshgrid(torch.arange(m, dtype=torch.float64), torch.arange(m, dtype=torch.float64), indexing="ij")
    keep = a + b < m - 1  # lower-left cells, centroid at (a + 1/3, b + 1/3)/m; upper-right cells (a + 2/3, b + 2/3)/m
    lower = torch.stack(((a[keep] + 1 / 3) / m, (b[keep] + 1 / 3) / m), -1)
    upper = torch.stack(((a[keep] + 2 / 3) / m, (b[keep] + 2 / 3) / m), -1)
    diag = a + b == m - 1
    edge = torch.stack(((a[diag] + 1 / 3) / m, (b[diag] + 1 / 3) / m), -1)
    xy = torch.cat((lower, upper, edge))  # one point per cell of the triangulation, equal areas
    pi = torch.cat((xy, 1 - xy.sum(-1, keepdim=True)), -1)[:, None, :]  # N x 1 x 3
    g = arsm_from_pi(problem, pi)
    mean = g.mean(0)
    variance = float(g.square().mean(0).sub(mean.square()).sum())
    torch.testing.assert_close(mean, problem.exact_grad, rtol=0, atol=2e-3 * float(problem.exact_grad.abs().max()))
    row = run("sum-target", "arsm", n=100_000, seed=4, task_params=params)
    assert abs(row["variance"] - variance) < 4 * row["variance_se"] + 1e-3 * variance, (row["variance"], variance)


def test_arsm_declares_its_distinct_pseudo_actions():
    cell = prepare(CellSpec(task="sum-target", estimator="arsm"))
    assert cell.estimator.evals_on(cell.task) == 4 * 3 // 2 + 1
