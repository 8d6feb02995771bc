"""Generic contract tests, table-driven over the registry: a new estimator or task is covered by registering it."""

from __future__ import annotations

import math

import pytest
import torch

from gradbench.core import Estimator
from gradbench.errors import GradbenchError
from gradbench.registry import ESTIMATORS as REGISTRY
from gradbench.rng import BlockRng
from gradbench.runner import CellSpec, prepare, run_cell
from tests.helpers import ESTIMATORS, TASKS, compatible_pairs, default_hparams, run, small_task_options, without_timing

PAIRS = compatible_pairs()
ALPHA = 1e-3  # level of the unbiasedness test (fixed seeds: a failure is a real, reproducible finding)
UNBIASED_SAMPLES = 200_000


def estimates_for(task_name: str, estimator_name: str, n: int, seed: int = 0, first_block: int = 0):
    cell = prepare(
        CellSpec(
            task=task_name,
            estimator=estimator_name,
            task_params=small_task_options(task_name),
            estimator_params=default_hparams(ESTIMATORS[estimator_name]),
            n_samples=n,
        )
    )
    cell.estimator.setup(cell.problem, seed)  # as the runner does, once per cell (RELAX trains its control variate)
    rng = BlockRng(seed, first_block, [n])
    return cell.estimator.estimate(cell.problem, rng), cell


@pytest.mark.parametrize(("estimator", "task"), PAIRS)
def test_estimate_shape_dtype_and_finiteness(estimator, task):
    est, cell = estimates_for(task, estimator, 64)
    assert est.shape == (64, cell.task.D, cell.task.K)
    assert est.dtype == torch.float32
    assert torch.isfinite(est).all()


@pytest.mark.parametrize(("estimator", "task"), PAIRS)
def test_same_seed_same_numbers_and_other_seed_other_numbers(estimator, task):
    a, _ = estimates_for(task, estimator, 256, seed=1)
    b, _ = estimates_for(task, estimator, 256, seed=1)
    c, _ = estimates_for(task, estimator, 256, seed=2)
    assert torch.equal(a, b)
    if not torch.equal(a, a[:1].expand_as(a)):  # a random estimator: another seed gives other numbers
        assert not torch.equal(a, c)


@pytest.mark.parametrize(("estimator", "task"), PAIRS)
def test_metrics_do_not_depend_on_chunk_size(estimator, task):
    block = prepare(
        CellSpec(
            task=task,
            estimator=estimator,
            task_params=small_task_options(task),
            estimator_params=default_hparams(ESTIMATORS[estimator]),
        )
    ).block_size
    n = min(5_000, 2 * block + block // 2)  # several blocks, the last one short, where blocks are small
    rows = [without_timing(run(task, estimator, n=n, seed=3, chunk_size=c)) for c in (1, 3 * block, None)]
    assert rows[0] == rows[1] == rows[2]


@pytest.mark.parametrize(("estimator", "task"), [p for p in PAIRS if ESTIMATORS[p[0]].unbiased])
def test_declared_unbiased_estimators_are_unbiased(estimator, task):
    cls = ESTIMATORS[estimator]
    evals = cls(**default_hparams(cls)).evals_on(TASKS[task]())
    n = max(2_000, UNBIASED_SAMPLES // evals)  # the same budget of f evaluations (at least 2,000 estimates)
    row = run(task, estimator, n=n, seed=11)
    assert row["bias_pvalue"] > ALPHA, f"{estimator} on {task}: p = {row['bias_pvalue']:.3g}"


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_incompatible_pairs_are_refused_up_front(estimator):
    cls = ESTIMATORS[estimator]
    for t_name, t_cls in TASKS.items():
        reason = cls(**default_hparams(cls)).incompatibility(t_cls())
        if reason is not None:
            with pytest.raises(GradbenchError, match=estimator):
                prepare(CellSpec(task=t_name, estimator=estimator, estimator_params=default_hparams(cls)))


@pytest.mark.parametrize("estimator", [n for n, c in ESTIMATORS.items() if c.has_tau()])
@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_temperature_must_be_positive_and_finite(estimator, bad):
    with pytest.raises(GradbenchError, match="tau"):
        ESTIMATORS[estimator](tau=bad)


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_declarations_are_complete(estimator):
    cls = ESTIMATORS[estimator]
    for attr in ("name", "summary", "family", "unbiased"):
        assert getattr(cls, attr, None) is not None, attr
    assert cls.__doc__ and len(cls.__doc__) > 80, "docstring must give the formula and the reference"
    assert cls(**default_hparams(cls)).draws_per_estimate >= 1


# --- proof that the unbiasedness test can fail -------------------------------------------------------------


class ReinforcePlusConstant(Estimator):
    """Broken on purpose: REINFORCE + a constant on every component."""

    name = "broken-plus-constant"
    summary = family = "test"
    unbiased = True
    offset = 0.5  # detectable on every task, quadratic's REINFORCE noise (≈ 500 per component) included

    def estimate(self, problem, rng):
        return REGISTRY["reinforce"]().estimate(problem, rng) + self.offset


class ReinforcePlusSmallConstant(ReinforcePlusConstant):
    """Broken on purpose: REINFORCE + 0.002, four times the Bernoulli toy's whole gradient (5·10⁻⁴)."""

    name = "broken-plus-small-constant"
    offset = 0.002


class ReinforceWithoutMinusP(Estimator):
    """Broken on purpose: f(z)·onehot(z), the score without its −p term."""

    name = "broken-no-minus-p"
    summary = family = "test"
    unbiased = True

    def estimate(self, problem, rng):
        from gradbench.estimators.reinforce import one_hot

        p = problem.probs
        z = one_hot(rng.categorical(p), p.shape[-1], p.dtype)
        return problem.task.f(z)[:, None, None] * z


@pytest.mark.parametrize("broken", [ReinforcePlusConstant, ReinforceWithoutMinusP])
@pytest.mark.parametrize("task", list(TASKS))
def test_unbiasedness_test_rejects_broken_reinforce(broken, task, monkeypatch):
    monkeypatch.setitem(REGISTRY, broken.name, broken)
    row = run(task, broken.name, n=UNBIASED_SAMPLES, seed=11)
    assert row["bias_pvalue"] <= ALPHA


def test_unbiasedness_test_sees_a_small_constant_on_the_bernoulli_needle(monkeypatch):
    monkeypatch.setitem(REGISTRY, ReinforcePlusSmallConstant.name, ReinforcePlusSmallConstant)
    assert run("bernoulli", "reinforce", n=UNBIASED_SAMPLES, seed=11)["bias_pvalue"] > ALPHA
    assert run("bernoulli", ReinforcePlusSmallConstant.name, n=UNBIASED_SAMPLES, seed=11)["bias_pvalue"] <= ALPHA


def test_exact_estimator_has_zero_variance_and_no_detectable_bias():
    for task in TASKS:
        row = run(task, "exact", n=1000)
        assert row["variance"] == 0.0
        assert row["bias_pvalue"] == 1.0
        assert row["snr"] == math.inf


def test_run_cell_rejects_bad_sizes():
    with pytest.raises(GradbenchError, match="at least 2"):
        run_cell(CellSpec(task="bernoulli", estimator="reinforce", n_samples=1))
    with pytest.raises(GradbenchError, match="chunk size"):
        run_cell(CellSpec(task="bernoulli", estimator="reinforce", chunk_size=0))
