"""Known answers for double-cv: exact mean and variance over every tuple of draws of a small task, the fitted α
against the exact variance-minimising α, exactness for linear f, and a broken variant that these checks catch."""

from __future__ import annotations

import itertools

import pytest
import torch

import gradbench.estimators.double_cv as double_cv
from gradbench.estimators.double_cv import DoubleCv, covariance_product, double_cv_parts
from gradbench.estimators.rloo import rloo_combine
from gradbench.fast import grad_f
from gradbench.runner import CellSpec, prepare
from tests.helpers import run
from tests.test_zoo_score_function import (
    SMALL,
    assert_variance_matches,
    configurations,
    exact_moments,
    joint_probs,
    problem_for,
)


def every_tuple(m: int):
    """Every m-tuple of configurations of SMALL sum-target: (problem, f 9^m x m, score and ∇f 9^m x m x D x K,
    probability 9^m)."""
    problem = problem_for("sum-target", SMALL, "double-cv")
    configs = configurations(2, 3)  # 9 x D
    tuples = torch.tensor(list(itertools.product(range(9), repeat=m)))  # 9^m x m
    z = torch.nn.functional.one_hot(configs[tuples], 3).to(torch.float64)  # 9^m x m x D x K
    grads = grad_f(problem.task, z.view(-1, 2, 3)).view(z.shape)
    return problem, problem.task.f(z), z - problem.probs, grads, joint_probs(problem, configs)[tuples].prod(-1)


def exact_variance_curve(m: int) -> tuple[torch.Tensor, torch.Tensor, float, float, float]:
    """Exact means of g₀ and g₁ and the trace-variance coefficients (V₀, C, V₁) of g₀ + α g₁."""
    problem, f, score, grads, prob = every_tuple(m)
    g0, g1 = double_cv_parts(f, score, grads, problem.probs)
    mean0, v0 = exact_moments(g0, prob)
    mean1, v1 = exact_moments(g1, prob)
    c = float((prob[:, None, None] * (g0 - mean0) * (g1 - mean1)).sum())
    return mean0, mean1, v0, c, v1


@pytest.mark.parametrize("m", [2, 3])
def test_double_cv_is_exactly_unbiased_for_every_alpha_and_its_variance_matches(m):
    exact = problem_for("sum-target", SMALL, "double-cv").exact_grad
    mean0, mean1, v0, c, v1 = exact_variance_curve(m)
    torch.testing.assert_close(mean0, exact, rtol=0, atol=1e-15)  # g₀ is RLOO
    torch.testing.assert_close(mean1, torch.zeros_like(mean1), rtol=0, atol=1e-15)  # so g₀ + α g₁ for every α
    assert v1 > 0 and c != 0  # the control variate is correlated with RLOO's noise here
    for alpha in (-1.0, 0.7):
        row = run("sum-target", "double-cv", n=40_000, seed=3, task_params=SMALL,
                  estimator_params={"m": m, "pilot": 0, "alpha": alpha})  # fmt: skip
        assert_variance_matches(row, v0 + 2 * alpha * c + alpha**2 * v1)
        assert row["bias_pvalue"] > 1e-3


def test_the_pilot_fits_the_variance_minimising_alpha():
    _, _, v0, c, v1 = exact_variance_curve(3)
    best = -c / v1
    cell = prepare(CellSpec(task="sum-target", estimator="double-cv", task_params=SMALL,
                            estimator_params={"m": 3, "pilot": 50_000}, dtype="float64"))  # fmt: skip
    cell.estimator.setup(cell.problem, seed=123)
    fitted = cell.estimator.alpha
    assert abs(fitted - best) < 0.05 * abs(best), (fitted, best)
    assert v0 + 2 * fitted * c + fitted**2 * v1 < min(v0, v0 - 2 * c + v1)  # below RLOO (α = 0) and α = −1
    row = run("sum-target", "double-cv", n=40_000, seed=3, task_params=SMALL,
              estimator_params={"m": 3, "pilot": 50_000}, dtype="float64")  # fmt: skip
    assert_variance_matches(row, v0 + 2 * fitted * c + fitted**2 * v1)


def test_double_cv_with_alpha_zero_is_rloo_and_alpha_minus_one_is_exact_for_linear_f():
    gen = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(5, 4, generator=gen, dtype=torch.float64), -1)  # D x K
    z = torch.nn.functional.one_hot(torch.randint(0, 4, (64, 3, 5), generator=gen), 4).to(torch.float64)
    v = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    f = (z * v).sum((2, 3)) + 0.3  # linear f: ∇f = v everywhere
    g0, g1 = double_cv_parts(f, z - p, v.expand_as(z), p)
    torch.testing.assert_close(g0, rloo_combine(f, z - p), rtol=0, atol=0)
    torch.testing.assert_close(g0 - g1, covariance_product(p, v).expand_as(g0), rtol=0, atol=1e-14)  # = ∇ E f


def test_double_cv_with_its_own_gradient_in_the_taylor_term_is_caught(monkeypatch):
    # Broken on purpose: ḡ over all m draws, z_k's own gradient included, so c_k s_k no longer has the mean the
    # analytic term subtracts.
    def broken(f, score, grads, p):
        all_grad = grads.mean(1, keepdim=True)  # n x 1 x D x K: ḡ, not ḡ_{−k}
        taylor = (all_grad * score).sum((2, 3))  # n x m
        return rloo_combine(f, score), rloo_combine(taylor, score) - covariance_product(p, grads.mean(1))

    problem, f, score, grads, prob = every_tuple(2)
    _, g1 = broken(f, score, grads, problem.probs)
    mean1, _ = exact_moments(g1, prob)
    assert mean1.abs().max() > 1e-3
    monkeypatch.setattr(double_cv, "double_cv_parts", broken)
    row = run("sum-target", "double-cv", n=40_000, seed=3, task_params=SMALL,
              estimator_params={"m": 2, "pilot": 0, "alpha": -1.0})  # fmt: skip
    assert row["bias_pvalue"] < 1e-6
    assert DoubleCv(m=2).evals_per_estimate == 2
