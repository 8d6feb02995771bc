"""Known answers for muprop, nvil and decoupled-st: exact moments by enumeration or quadrature, replays against
independent implementations, and broken variants that these checks catch."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate

from gradbench.estimators.decoupled_st import DecoupledStraightThrough
from gradbench.estimators.muprop import MuProp
from gradbench.estimators.nvil import Nvil
from gradbench.rng import BlockRng
from gradbench.runner import CellSpec, prepare
from tests.helpers import run
from tests.test_zoo2_sampled_sums import FixedDraws
from tests.test_zoo_score_function import (
    SMALL,
    assert_variance_matches,
    configurations,
    exact_moments,
    joint_probs,
    problem_for,
)


def over_every_draw(problem, estimate):
    """An estimator that draws one categorical per variable by inverse CDF, fed every configuration of SMALL."""
    configs = configurations(2, 3)  # 9 x 2
    cdf = problem.probs.cumsum(-1)
    lower = torch.cat((torch.zeros(2, 1, dtype=cdf.dtype), cdf[:, :-1]), -1)
    u = ((lower + cdf) / 2).gather(1, configs.T).T[..., None]  # 9 x D x 1, mid-interval of each category
    return exact_moments(estimate(problem, FixedDraws(u)), joint_probs(problem, configs))


# --- muprop -----------------------------------------------------------------------------------------------------


def test_muprop_is_exactly_unbiased_over_every_draw_and_its_variance_matches():
    problem = problem_for("sum-target", SMALL, "muprop")
    mean, variance = over_every_draw(problem, MuProp().estimate)
    torch.testing.assert_close(mean, problem.exact_grad, rtol=0, atol=1e-15)
    assert_variance_matches(run("sum-target", "muprop", n=40_000, seed=3, task_params=SMALL), variance)


@pytest.mark.parametrize("target", [0.499, 0.2])
def test_muprop_on_the_bernoulli_toy_has_the_closed_form_variance(target):
    # At θ = 0, μ = ½: f(b) − f̂(b) = (b − ½)² = ¼ for b ∈ {0, 1}, so g = ¼ (onehot(b) − p) + g*: variance 2 · (¼)² · ¼.
    row = run("bernoulli", "muprop", n=50_000, seed=2, task_params={"target": target}, dtype="float64")
    assert abs(row["variance"] - 1 / 32) < 4 * row["variance_se"] + 1e-4 / 32, row["variance"]
    assert row["bias_pvalue"] > 1e-3


def test_muprop_without_the_analytic_term_is_caught(monkeypatch):
    # Broken on purpose: the control variate subtracted, its expectation J_μᵀ∇f(μ) not added back.
    original = MuProp.estimate

    def broken(self, problem, rng):
        p = problem.probs
        v = torch.autograd.functional.jacobian(lambda x: problem.task.f(x[None])[0], p)
        return original(self, problem, rng) - p * (v - (p * v).sum(-1, keepdim=True))

    problem = problem_for("sum-target", SMALL, "muprop")
    mean, _ = over_every_draw(problem, lambda pr, r: broken(MuProp(), pr, r))
    assert (mean - problem.exact_grad).abs().max() > 1e-3
    monkeypatch.setattr(MuProp, "estimate", broken)
    assert run("sum-target", "muprop", n=40_000, seed=3, task_params=SMALL)["bias_pvalue"] < 1e-6


# --- nvil -------------------------------------------------------------------------------------------------------


def trained_nvil(task: str, task_params: dict, **hparams) -> tuple[Nvil, object]:
    cell = prepare(CellSpec(task=task, estimator="nvil", task_params=task_params, estimator_params=hparams))
    cell.estimator.setup(cell.problem, seed=123)
    return cell.estimator, cell.problem


def test_nvil_is_the_gradient_over_its_scale_exactly():
    est, _ = trained_nvil("sum-target", SMALL)
    problem = problem_for("sum-target", SMALL, "nvil")
    mean, variance = over_every_draw(problem, est.estimate)
    torch.testing.assert_close(mean, problem.exact_grad / est.scale, rtol=0, atol=1e-15)
    assert est.scale == 1.0  # f ≤ 0.2 here: no normalisation, so unbiased
    row = run("sum-target", "nvil", n=40_000, seed=3, task_params=SMALL)
    assert_variance_matches(row, variance)
    assert row["bias_pvalue"] > 1e-3


def test_nvil_normalisation_rescales_the_gradient_where_the_signal_is_large():
    est, problem = trained_nvil("quadratic", {"dim": 10, "categories": 5})
    assert est.scale > 2
    est_rows = est.estimate(problem, BlockRng(1, 0, [200_000])).to(torch.float64).reshape(200_000, -1)
    se = est_rows.std(0) / math.sqrt(200_000)
    expected = problem.exact_grad.reshape(-1) / est.scale
    assert ((est_rows.mean(0) - expected) / se).abs().max() < 4.5  # E g = g* / max(1, √v)
    assert ((est_rows.mean(0) - problem.exact_grad.reshape(-1)) / se).abs().max() > 10  # and not g*


def test_nvil_is_one_fixed_function_of_its_hyper_parameters():
    a, problem = trained_nvil("sum-target", SMALL)
    a.setup(problem, seed=999)  # the cell's seed does not enter the training
    b, _ = trained_nvil("sum-target", SMALL)
    c, _ = trained_nvil("sum-target", SMALL, train_seed=1)
    assert (a.baseline, a.scale) == (b.baseline, b.scale)
    assert a.baseline != c.baseline
    assert abs(a.baseline - problem.exact_value) < 0.02  # the learned baseline tracks E f


def test_nvil_without_the_minus_p_of_the_score_is_caught(monkeypatch):
    # Broken on purpose: (f − c) onehot(z), which is unbiased only if c = E f exactly.
    def broken(self, problem, rng):
        from gradbench.fast import categorical_one_hot

        z = categorical_one_hot(problem.probs, rng)
        return z * ((problem.task.f(z) - self.baseline) / self.scale)[:, None, None]

    est, problem = trained_nvil("sum-target", SMALL)
    mean, _ = over_every_draw(problem_for("sum-target", SMALL, "nvil"), lambda pr, r: broken(est, pr, r))
    assert (mean - problem.exact_grad).abs().max() > 1e-4
    monkeypatch.setattr(Nvil, "estimate", broken)
    assert run("sum-target", "nvil", n=200_000, seed=3, task_params=SMALL)["bias_pvalue"] < 1e-6


# --- decoupled-st -----------------------------------------------------------------------------------------------


def test_decoupled_st_with_unit_forward_temperature_is_st_gumbel():
    a = run("sum-target", "decoupled-st", n=20_000, seed=5, estimator_params={"tau": 1.0, "tau_b": 0.5})
    b = run("sum-target", "st-gumbel", n=20_000, seed=5, estimator_params={"tau": 0.5})
    for column in ("bias", "variance", "mse", "cosine"):
        assert a[column] == b[column], column


def test_decoupled_st_replays_the_autograd_straight_through_form():
    tau_f, tau_b = 0.7, 2.0
    spec = CellSpec(
        task="sum-target", estimator="decoupled-st", estimator_params={"tau": tau_f, "tau_b": tau_b}, dtype="float64"
    )
    cell = prepare(spec)
    got = cell.estimator.estimate(cell.problem, BlockRng(2, 0, [32]))
    gumbel = BlockRng(2, 0, [32]).gumbel(6, 4, dtype=torch.float64)
    theta = cell.problem.theta.detach().expand(32, 6, 4).clone().requires_grad_(True)
    logits = theta / tau_f + gumbel
    soft = (logits / tau_b).softmax(-1)
    hard = torch.nn.functional.one_hot(logits.argmax(-1), 4).to(soft)
    z = hard - soft.detach() + soft  # the straight-through form: hard forward, soft backward
    (expected,) = torch.autograd.grad(cell.problem.task.f(z).sum(), theta)
    torch.testing.assert_close(got, expected)


def bernoulli_moments(tau_f: float, tau_b: float, target: float, logit: float) -> tuple[float, float]:
    """Exact mean and variance of ∂/∂θ₁ on the Bernoulli toy (D = 1), by quadrature over the logistic noise
    L = G₁ − G₀: Δ = α/τ_f + L, b = 1[Δ > 0], g₁ = σ'(Δ/τ_b) · 2(b − t) / (τ_b τ_f)."""

    def density(x: float) -> float:
        return math.exp(-abs(x)) / (1 + math.exp(-abs(x))) ** 2

    def g1(x: float) -> float:
        delta = logit / tau_f + x
        s = 0.5 * (1 + math.tanh(delta / (2 * tau_b)))  # σ(Δ/τ_b) without overflow
        return s * (1 - s) * 2 * ((delta > 0) - target) / (tau_b * tau_f)

    cut = -logit / tau_f

    def moment(power: int) -> float:
        pieces = [(-60.0, cut), (cut, 60.0)]  # the logistic density is < 1e-26 beyond ±60
        return sum(integrate.quad(lambda x: g1(x) ** power * density(x), a, b, epsabs=1e-14)[0] for a, b in pieces)

    mean = moment(1)
    return mean, moment(2) - mean**2


@pytest.mark.parametrize(("tau_f", "tau_b"), [(0.5, 2.0), (2.0, 0.5), (1.0, 1.0)])
def test_decoupled_st_mean_and_variance_match_quadrature_on_the_bernoulli_toy(tau_f, tau_b):
    params = {"target": 0.45, "logit": -0.5}
    mean, var1 = bernoulli_moments(tau_f, tau_b, 0.45, -0.5)
    row_params = {"tau": tau_f, "tau_b": tau_b}
    cell = prepare(
        CellSpec(task="bernoulli", estimator="decoupled-st", task_params=params, estimator_params=row_params)
    )
    est = cell.estimator.estimate(cell.problem, BlockRng(7, 0, [200_000])).to(torch.float64)
    g1 = est[:, 0, 1]
    assert abs(g1.mean().item() - mean) < 4.5 * g1.std().item() / math.sqrt(200_000), (g1.mean().item(), mean)
    row = run("bernoulli", "decoupled-st", n=100_000, seed=7, task_params=params, estimator_params=row_params)
    assert abs(row["variance"] - 2 * var1) < 4 * row["variance_se"], (row["variance"], 2 * var1)  # θ₀ = −θ₁


def test_decoupled_st_without_the_forward_temperature_in_the_backward_pass_is_caught(monkeypatch):
    # Broken on purpose: the 1/τ_f of ∂(θ/τ_f)/∂θ forgotten.
    original = DecoupledStraightThrough.estimate

    def broken(self, problem, rng):
        return original(self, problem, rng) * self.config["tau"]

    monkeypatch.setattr(DecoupledStraightThrough, "estimate", broken)
    params = {"target": 0.45, "logit": -0.5}
    mean, _ = bernoulli_moments(0.5, 2.0, 0.45, -0.5)
    cell = prepare(
        CellSpec(
            task="bernoulli", estimator="decoupled-st", task_params=params, estimator_params={"tau": 0.5, "tau_b": 2.0}
        )
    )
    g1 = cell.estimator.estimate(cell.problem, BlockRng(7, 0, [200_000])).to(torch.float64)[:, 0, 1]
    assert abs(g1.mean().item() - mean) > 10 * g1.std().item() / math.sqrt(200_000)
