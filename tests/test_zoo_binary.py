"""Known answers for ARM and DisARM: closed forms on the Bernoulli toy at θ = (0, 0), and exact mean and variance
at other θ by integrating the augmenting uniform exactly (Gauss-Legendre on each piece where (b, b̃) is constant)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from gradbench.core import Estimator
from gradbench.errors import GradbenchError
from gradbench.estimators.arm import antithetic_pair, f_binary, to_theta_gradient
from gradbench.registry import ESTIMATORS as REGISTRY
from gradbench.runner import CellSpec, prepare
from tests.helpers import run

TARGET = 0.499
DELTA = (1 - TARGET) ** 2 - TARGET**2  # f(1) − f(0) on the Bernoulli toy, D = 1


class FixedUniform:
    """Stands in for a BlockRng: hands the estimator chosen uniforms u (n x D)."""

    def __init__(self, u: torch.Tensor):
        self.u, self.n, self.sizes, self.first_block = u, u.shape[0], [u.shape[0]], 0

    def uniform(self, *shape, dtype=torch.float32):
        assert shape == tuple(self.u.shape[1:])
        return self.u.to(dtype)


def quadrature(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Points u (N x D) and weights (N) that integrate exactly, over u ~ U(0,1)^D, any function that is a
    polynomial of degree ≤ 3 in each u_d on each piece [0, a), [a, b), [b, 1) (a, b = sorted σ, 1 − σ), the
    pieces on which (b_d, b̃_d) is constant."""
    per_dim = []
    for s in sigma.tolist():
        cuts = [0.0, min(s, 1 - s), max(s, 1 - s), 1.0]
        nodes = []
        for lo, hi in itertools.pairwise(cuts):
            half, mid = (hi - lo) / 2, (hi + lo) / 2
            for sign in (-1, 1):  # two-point Gauss-Legendre
                nodes.append((mid + sign * half / math.sqrt(3), half))
        per_dim.append(nodes)
    points, weights = [], []
    for combo in itertools.product(*per_dim):
        points.append([u for u, _ in combo])
        weights.append(math.prod(w for _, w in combo))
    return torch.tensor(points, dtype=torch.float64), torch.tensor(weights, dtype=torch.float64)


def exact_moments(estimator: str, task_params: dict) -> tuple[torch.Tensor, float, torch.Tensor]:
    """(E g, trace Cov g, g*) of an antithetic estimator, by exact integration over u (float64)."""
    cell = prepare(CellSpec(task="bernoulli", estimator=estimator, task_params=task_params, dtype="float64"))
    theta = cell.problem.theta
    u, w = quadrature(torch.sigmoid(theta[:, 1] - theta[:, 0]))
    g = cell.estimator.estimate(cell.problem, FixedUniform(u))  # N x D x 2
    mean = (w[:, None, None] * g).sum(0)
    second = (w[:, None, None] * g.square()).sum(0)
    return mean, float((second - mean.square()).sum()), cell.problem.exact_grad


OFF_CENTRE = [
    {"dim": 1, "logit": 0.0, "target": TARGET},
    {"dim": 2, "logit": 0.7, "target": 0.3},  # σ > ½
    {"dim": 3, "logit": -1.2, "target": 0.8},  # σ < ½
]


@pytest.mark.parametrize("task_params", OFF_CENTRE)
@pytest.mark.parametrize("estimator", ["arm", "disarm"])
def test_exactly_unbiased_by_integrating_out_u(estimator, task_params):
    mean, variance, exact = exact_moments(estimator, task_params)
    torch.testing.assert_close(mean, exact, rtol=1e-12, atol=1e-15)
    row = run("bernoulli", estimator, n=100_000, seed=4, task_params=task_params)
    assert abs(row["variance"] - variance) < 4 * row["variance_se"] + 1e-15, (row["variance"], variance)
    assert row["draws_per_estimate"] == 2


@pytest.mark.parametrize("task_params", OFF_CENTRE[1:])
def test_disarm_has_less_variance_than_arm(task_params):
    assert exact_moments("disarm", task_params)[1] < exact_moments("arm", task_params)[1]


def test_disarm_has_exactly_zero_variance_on_the_bernoulli_toy_at_theta_zero():
    # D = 1, α = 0: b and b̃ always differ, and every estimate is ±(Δ/4) on (θ₁, θ₀) = the exact gradient.
    row = run("bernoulli", "disarm", n=200_000, seed=1)
    assert row["variance"] == 0.0
    assert row["bias_pvalue"] == 1.0
    cell = prepare(CellSpec(task="bernoulli", estimator="disarm", dtype="float64", n_samples=64))
    from gradbench.rng import BlockRng

    est = cell.estimator.estimate(cell.problem, BlockRng(0, 0, [64]))
    torch.testing.assert_close(est[:, 0, 1], torch.full((64,), DELTA / 4, dtype=torch.float64), rtol=1e-12, atol=0)
    torch.testing.assert_close(est[:, 0, 0], -est[:, 0, 1])


def test_arm_variance_is_delta_squared_over_48_per_logit_difference():
    # D = 1, α = 0: g_α = Δ·|u − ½|, |u − ½| ~ U(0, ½): variance Δ²/48; θ₀ and θ₁ each carry ±g_α, so the trace
    # of the covariance over θ is 2·Δ²/48 = Δ²/24.
    row = run("bernoulli", "arm", n=200_000, seed=1)
    assert row["variance"] == pytest.approx(DELTA**2 / 24, rel=0.02)
    assert abs(row["variance"] - DELTA**2 / 24) < 4 * row["variance_se"]
    assert row["bias_pvalue"] > 1e-3


class ArmWrongThreshold(Estimator):
    """Broken on purpose: ARM with b̃ = 1[u < σ(−α)] (marginally Bernoulli(1 − σ(α))) in place of 1[u > σ(−α)].

    Two plausible slips that are NOT bugs, found while choosing this one: u in place of u − ½ (½(f(b̃) − f(b)) has
    mean zero, b and b̃ having the same marginal), and b̃ = 1[u > σ(α)] = 1 − b (for one variable its mean is
    Δ σ(1 − σ) too)."""

    name = "broken-arm-threshold"
    summary = family = "test"
    unbiased = True
    binary_only = True

    def estimate(self, problem, rng):
        u, b, _ = antithetic_pair(problem, rng)
        alpha = problem.theta[:, 1] - problem.theta[:, 0]
        b_wrong = (u < torch.sigmoid(-alpha)).to(u.dtype)
        return to_theta_gradient((f_binary(problem, b_wrong) - f_binary(problem, b))[:, None] * (u - 0.5))


class DisarmWithoutSigmaAbs(Estimator):
    """Broken on purpose: DisARM with weight ½ in place of σ(|α|)."""

    name = "broken-disarm-half"
    summary = family = "test"
    unbiased = True
    binary_only = True

    def estimate(self, problem, rng):
        _, b, b_anti = antithetic_pair(problem, rng)
        diff = f_binary(problem, b) - f_binary(problem, b_anti)
        return to_theta_gradient(0.25 * diff[:, None] * (1 - 2 * b_anti) * (b != b_anti).to(b.dtype))


@pytest.mark.parametrize("broken", [ArmWrongThreshold, DisarmWithoutSigmaAbs])
def test_unbiasedness_test_rejects_broken_antithetic_estimators(broken, monkeypatch):
    monkeypatch.setitem(REGISTRY, broken.name, broken)
    row = run("bernoulli", broken.name, n=100_000, seed=4, task_params=OFF_CENTRE[1])
    assert row["bias_pvalue"] < 1e-6


@pytest.mark.parametrize("estimator", ["arm", "disarm"])
def test_binary_estimators_refuse_categorical_tasks(estimator):
    assert REGISTRY[estimator].binary_only
    with pytest.raises(GradbenchError, match="binary variables only"):
        prepare(CellSpec(task="sum-target", estimator=estimator))


def test_exact_match_tolerance_covers_the_rounding_of_f_but_not_more():
    # Why compute_metrics takes |E f|: on the toy, g* = ±5·10⁻⁴ is a difference of f values ≈ 0.25, so g* and any
    # estimate built from f differences carry errors ≈ eps·0.25 (float64 here: 10⁻¹⁷, above 16·eps·|g*|).
    from gradbench.stats import GroupedMoments, compute_metrics

    exact = torch.tensor([-5e-4, 5e-4], dtype=torch.float64)
    eps = torch.finfo(torch.float64).eps

    def pvalue(offset: float, value_scale: float) -> float:
        moments = GroupedMoments(2)
        moments.update(torch.full((64, 2), offset, dtype=torch.float64), 0)  # deviations from g*, zero variance
        return compute_metrics(moments, exact, eps, value_scale).bias_pvalue

    assert pvalue(1e-17, 0.0) == 0.0  # the old rule: "certain bias"
    assert pvalue(1e-17, 0.25) == 1.0  # within 16·eps·|E f| = 8.9·10⁻¹⁶
    assert pvalue(1e-14, 0.25) == 0.0  # a real (if tiny) bias is still certain bias
    row = run("bernoulli", "disarm", n=1_000, seed=0, dtype="float64")
    assert row["variance"] == 0.0 and row["bias_pvalue"] == 1.0
