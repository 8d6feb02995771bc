"""Known answers for the built-in estimators (closed forms and DESIGN.md §5 facts)."""

from __future__ import annotations

import pytest
import torch

from gradbench.registry import ESTIMATORS
from gradbench.rng import BlockRng
from gradbench.runner import CellSpec, prepare
from tests.helpers import run

TOY_WRONG_WAY = {"target": 0.45, "logit": -2.0}  # DESIGN.md §5: relaxation points the wrong way at τ = 1


def test_reinforce_variance_matches_closed_form_on_the_bernoulli_toy():
    # Acceptance of issue 2: at θ = 0, t = 0.499 each component is ±½ f(b), so per-component variance is
    # E[f²]/4 − (¼(1 − 2t))² with E[f²] = ½((1 − t)⁴ + t⁴).
    t = 0.499
    per_component = 0.5 * ((1 - t) ** 4 + t**4) / 4 - (0.25 * (1 - 2 * t)) ** 2
    assert 2 * per_component == pytest.approx(2 * 0.0156251, rel=1e-4)
    row = run("bernoulli", "reinforce", n=1_000_000, seed=5)
    assert row["variance"] == pytest.approx(2 * per_component, rel=0.02)
    assert row["bias_pvalue"] > 0.01


def test_reinforce_replays_a_fixed_draw():
    cell = prepare(CellSpec(task="sum-target", estimator="reinforce", n_samples=8))
    rng = BlockRng(0, 0, [8])
    z_idx = BlockRng(0, 0, [8]).categorical(cell.problem.probs)  # same stream: the draw the estimator sees
    got = cell.estimator.estimate(cell.problem, rng)
    p = cell.problem.probs
    z = torch.nn.functional.one_hot(z_idx, 4).to(p)
    expected = cell.problem.task.f(z)[:, None, None] * (z - p)
    torch.testing.assert_close(got, expected)


def test_gumbel_softmax_bias_falls_and_variance_grows_as_tau_falls():
    cold = run("bernoulli", "gumbel", n=200_000, seed=2, task_params=TOY_WRONG_WAY, estimator_params={"tau": 0.1})
    warm = run("bernoulli", "gumbel", n=200_000, seed=2, task_params=TOY_WRONG_WAY, estimator_params={"tau": 1.0})
    assert cold["bias"] < warm["bias"]
    assert cold["variance"] > warm["variance"]


def test_gumbel_softmax_points_the_wrong_way_at_tau_one():
    warm = run("bernoulli", "gumbel", n=200_000, seed=2, task_params=TOY_WRONG_WAY, estimator_params={"tau": 1.0})
    assert warm["cosine"] < -0.99
    assert warm["bias_pvalue"] < 1e-6


def test_gumbel_replays_a_fixed_draw_against_hand_derived_gradient():
    # Bernoulli D = 1: z̃_1 = σ((θ1 − θ0 + G1 − G0)/τ); f = (z̃_1 − t)²; ∂f/∂θ1 = 2(z̃_1 − t) z̃_1 (1 − z̃_1)/τ.
    tau, t = 0.7, 0.3
    cell = prepare(
        CellSpec(
            task="bernoulli",
            estimator="gumbel",
            task_params={"target": t},
            estimator_params={"tau": tau},
            n_samples=16,
            dtype="float64",
        )
    )
    got = cell.estimator.estimate(cell.problem, BlockRng(4, 0, [16]))
    g = BlockRng(4, 0, [16]).gumbel(1, 2, dtype=torch.float64)
    theta = cell.problem.theta
    y = torch.sigmoid(((theta[0, 1] + g[:, 0, 1]) - (theta[0, 0] + g[:, 0, 0])) / tau)
    d1 = 2 * (y - t) * y * (1 - y) / tau
    torch.testing.assert_close(got[:, 0, 1], d1)
    torch.testing.assert_close(got[:, 0, 0], -d1)


def test_straight_through_gumbel_is_declared_and_measured_biased():
    assert ESTIMATORS["st-gumbel"].unbiased is False
    for tau in (0.1, 1.0):  # biased at a cold and a warm temperature
        row = run("bernoulli", "st-gumbel", n=200_000, seed=4, task_params=TOY_WRONG_WAY, estimator_params={"tau": tau})
        assert row["bias_pvalue"] < 1e-6


def test_straight_through_forward_is_the_hard_sample():
    # ST's estimate is ∂f/∂z at the hard z pushed through the soft Jacobian: with f linear in z
    # (quadratic task, K = 2, D = 1 is not linear; use sum-target with target far away) we just check the hard
    # forward: the one-hot argmax of θ + G equals the Gumbel-max sample, so f(hard) takes the discrete values.
    cell = prepare(CellSpec(task="sum-target", estimator="st-gumbel", estimator_params={"tau": 0.5}, n_samples=32))
    g = BlockRng(0, 0, [32]).gumbel(6, 4)
    hard = torch.nn.functional.one_hot((cell.problem.theta + g).argmax(-1), 4).float()
    soft = ((cell.problem.theta + g) / 0.5).softmax(-1)
    f_hard = cell.problem.task.f(hard)
    # Hand-derived: ∂f/∂z_dk = 2 (s − t) v_k / D at the hard z; through the softmax Jacobian J = (diag(y) − y yᵀ)/τ.
    v = torch.arange(4) / 3
    s = (hard * v).sum(-1).mean(-1)
    dfdz = (2 * (s - 0.45))[:, None, None] * v / 6  # n x D x K
    jvp = soft * (dfdz - (soft * dfdz).sum(-1, keepdim=True)) / 0.5
    got = cell.estimator.estimate(cell.problem, BlockRng(0, 0, [32]))
    torch.testing.assert_close(got, jvp, rtol=1e-5, atol=1e-6)
    assert torch.isfinite(f_hard).all()
