"""Generic contract tests, table-driven over the registry: a new estimator or task is covered by registering it."""

from __future__ import annotations

import math

import pytest

from gradbench import battery
from gradbench.core import Estimator
from gradbench.errors import GradbenchError
from gradbench.registry import ESTIMATORS as REGISTRY
from gradbench.runner import CellSpec, prepare, run_cell
from tests.helpers import ESTIMATORS, TASKS, compatible_pairs, default_hparams, run, small_task_options

PAIRS = compatible_pairs()
ALPHA = 1e-3  # level of the unbiasedness test (fixed seeds: a failure is a real, reproducible finding)
UNBIASED_SAMPLES = 200_000


# The generic contract tests run the audit battery (gradbench.battery, the code behind `gradbench audit`) on every
# compatible built-in pair, one property at a time.


def small(task: str) -> tuple[str, dict]:
    return task, small_task_options(task)


def assert_passes(verdict: battery.Verdict) -> None:
    assert verdict.status == battery.PASS, f"{verdict.property}: {verdict.evidence}"


@pytest.mark.parametrize(("estimator", "task"), PAIRS)
def test_estimate_shape_dtype_and_finiteness(estimator, task):
    assert_passes(battery.contract(estimator, default_hparams(ESTIMATORS[estimator]), [small(task)]))


@pytest.mark.parametrize(("estimator", "task"), PAIRS)
def test_same_seed_same_numbers_and_other_seed_other_numbers(estimator, task):
    assert_passes(battery.same_seed(estimator, default_hparams(ESTIMATORS[estimator]), [small(task)]))


@pytest.mark.parametrize(("estimator", "task"), PAIRS)
def test_metrics_do_not_depend_on_chunk_size(estimator, task):
    assert_passes(battery.chunk_size(estimator, default_hparams(ESTIMATORS[estimator]), [small(task)]))


@pytest.mark.parametrize(("estimator", "task"), PAIRS)
def test_no_draw_from_a_global_generator(estimator, task):
    assert_passes(battery.global_rng(estimator, default_hparams(ESTIMATORS[estimator]), [small(task)]))


@pytest.mark.parametrize(("estimator", "task"), [p for p in PAIRS if ESTIMATORS[p[0]].unbiased])
def test_declared_unbiased_estimators_are_unbiased(estimator, task):
    # One cell per test (the battery Holm-combines the cells of one audit; here each pair is its own family).
    params = default_hparams(ESTIMATORS[estimator])
    (cell,) = battery.bias_cells(estimator, params, [small(task)], UNBIASED_SAMPLES, seed=11)
    assert cell.pvalue > ALPHA, f"{estimator} on {task}: p = {cell.pvalue:.3g}"


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
@pytest.mark.parametrize("task", [n for n, c in TASKS.items() if c.family == "categorical"])
def test_unbiasedness_test_rejects_broken_reinforce(broken, task, monkeypatch):
    monkeypatch.setitem(REGISTRY, broken.name, broken)
    (cell,) = battery.bias_cells(broken.name, {}, [small(task)], UNBIASED_SAMPLES, seed=11)
    assert cell.pvalue <= ALPHA


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
