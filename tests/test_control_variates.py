"""Known answers for the control-variate family: rebar (fixed η, τ) and relax (learned c_φ, trained in setup)."""

from __future__ import annotations

import pytest
import torch

from gradbench.errors import GradbenchError
from gradbench.estimators import rebar as rebar_module
from gradbench.estimators.gumbel_rao import conditional_gumbel
from gradbench.rng import BlockRng
from gradbench.runner import CellSpec, prepare
from tests.helpers import run

ALPHA = 1e-3
N = 200_000
WRONG_WAY = {"target": 0.45, "logit": -2.0}  # DESIGN.md §5: the relaxation points the wrong way here


def test_rebar_with_eta_zero_is_reinforce_on_the_same_draws():
    cell = prepare(
        CellSpec(task="sum-target", estimator="rebar", estimator_params={"tau": 0.5, "eta": 0.0}, dtype="float64")
    )
    got = cell.estimator.estimate(cell.problem, BlockRng(3, 0, [128]))
    theta, p = cell.problem.theta, cell.problem.probs
    gumbel = BlockRng(3, 0, [128]).gumbel(*theta.shape, dtype=theta.dtype)  # the estimator's first request
    b = torch.nn.functional.one_hot((theta + gumbel).argmax(-1), theta.shape[-1]).to(theta)
    torch.testing.assert_close(got, cell.task.f(b)[:, None, None] * (b - p))


def test_rebar_with_eta_zero_has_reinforce_variance_on_the_bernoulli_toy():
    t = 0.499
    closed_form = 2 * (0.5 * ((1 - t) ** 4 + t**4) / 4 - (0.25 * (1 - 2 * t)) ** 2)  # see test_estimators.py
    row = run("bernoulli", "rebar", n=N, seed=4, estimator_params={"tau": 0.5, "eta": 0.0})
    assert abs(row["variance"] - closed_form) < 5 * row["variance_se"]


@pytest.mark.parametrize(("eta", "tau"), [(0.5, 0.3), (2.0, 2.0), (1.0, 0.1)])
@pytest.mark.parametrize(("task", "task_params"), [("bernoulli", WRONG_WAY), ("sum-target", {})])
def test_rebar_is_unbiased_for_any_eta_and_tau(eta, tau, task, task_params):
    row = run(task, "rebar", n=N // 2, seed=12, task_params=task_params, estimator_params={"tau": tau, "eta": eta})
    assert row["bias_pvalue"] > ALPHA, row["bias_pvalue"]


def _detached(theta, index, expo):  # broken: no reparameterisation gradient through the conditional sample
    return conditional_gumbel(theta.detach(), index, expo)


def _wrong_maximum(theta, index, expo):  # broken: the maximum drawn as Gumbel(θ_b) instead of Gumbel(log Z)
    chosen = torch.nn.functional.one_hot(index, theta.shape[-1]).bool()
    top = torch.where(chosen, theta - expo.log(), 0.0).sum(-1, keepdim=True)
    return torch.where(chosen, top, -torch.logaddexp(expo.log() - theta, -top))


def _untruncated(theta, index, expo):  # broken: the other coordinates are not truncated below the maximum
    chosen = torch.nn.functional.one_hot(index, theta.shape[-1]).bool()
    return torch.where(chosen, conditional_gumbel(theta, index, expo), theta - expo.log())


def test_an_independent_resample_is_unbiased_but_useless():
    # x̃ drawn afresh *without* conditioning on b is independent of b: both correction terms then cancel in
    # expectation, so the estimator stays unbiased (the unbiasedness test must not reject it) and just adds noise.
    def independent(theta, index, expo):
        return theta - expo.log()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rebar_module, "conditional_gumbel", independent)
        row = run("bernoulli", "rebar", n=N, seed=12, task_params=WRONG_WAY, estimator_params={"tau": 0.5})
    assert row["bias_pvalue"] > ALPHA
    assert row["variance"] > run("bernoulli", "reinforce", n=N, seed=12, task_params=WRONG_WAY)["variance"]


@pytest.mark.parametrize("broken", [_detached, _wrong_maximum, _untruncated])
@pytest.mark.parametrize(("task", "task_params"), [("bernoulli", WRONG_WAY), ("sum-target", {})])
def test_unbiasedness_test_rejects_rebar_with_a_wrong_conditional_sample(broken, task, task_params, monkeypatch):
    monkeypatch.setattr(rebar_module, "conditional_gumbel", broken)
    row = run(task, "rebar", n=N, seed=12, task_params=task_params, estimator_params={"tau": 0.5})
    assert row["bias_pvalue"] <= ALPHA


# --- RELAX ---------------------------------------------------------------------------------------------------


def relax_cell(task="bernoulli", seed=0, task_params=None, **params):
    cell = prepare(
        CellSpec(task=task, estimator="relax", task_params=task_params or {}, estimator_params={"tau": 0.5, **params})
    )
    cell.estimator.setup(cell.problem, seed)
    return cell


def test_relax_without_training_is_rebar_with_eta_one():
    relax = relax_cell("sum-target", steps=0)
    rebar = prepare(CellSpec(task="sum-target", estimator="rebar", estimator_params={"tau": 0.5, "eta": 1.0}))
    a = relax.estimator.estimate(relax.problem, BlockRng(9, 0, [256]))
    b = rebar.estimator.estimate(rebar.problem, BlockRng(9, 0, [256]))
    torch.testing.assert_close(a, b)


def test_relax_training_is_seeded_by_train_seed_not_by_the_cell_seed():
    a, b = relax_cell(seed=1, steps=20, train_seed=1), relax_cell(seed=7, steps=20, train_seed=1)
    c = relax_cell(seed=1, steps=20, train_seed=2)
    assert a.estimator.losses == b.estimator.losses  # another cell seed: the same trained c_φ
    for pa, pb in zip(a.estimator.net.parameters(), b.estimator.net.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert a.estimator.losses != c.estimator.losses
    rng = BlockRng(0, 0, [64])
    assert not torch.equal(a.estimator.estimate(a.problem, rng), c.estimator.estimate(c.problem, BlockRng(0, 0, [64])))


@pytest.mark.parametrize(("task", "task_params"), [("bernoulli", {}), ("bernoulli", WRONG_WAY)])
def test_relax_training_lowers_the_variance_below_rebar(task, task_params):
    cell = relax_cell(task, task_params=task_params)
    losses = cell.estimator.losses
    assert sum(losses[-10:]) / 10 < 0.5 * losses[0]  # the variance objective went down during training
    relax = run(task, "relax", n=N, seed=5, task_params=task_params, estimator_params={"tau": 0.5})
    rebar = run(task, "rebar", n=N, seed=5, task_params=task_params, estimator_params={"tau": 0.5})
    assert relax["variance"] < 0.5 * rebar["variance"]
    assert relax["bias_pvalue"] > ALPHA


@pytest.mark.parametrize(("task", "task_params"), [("bernoulli", WRONG_WAY), ("sum-target", {})])
def test_relax_is_unbiased_at_another_temperature(task, task_params):
    row = run(task, "relax", n=N // 2, seed=13, task_params=task_params, estimator_params={"tau": 1.0, "steps": 50})
    assert row["bias_pvalue"] > ALPHA


def test_relax_refuses_to_estimate_before_setup():
    cell = prepare(CellSpec(task="bernoulli", estimator="relax", estimator_params={"tau": 0.5}))
    with pytest.raises(GradbenchError, match="setup"):
        cell.estimator.estimate(cell.problem, BlockRng(0, 0, [4]))
