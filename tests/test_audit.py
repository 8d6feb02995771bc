"""`gradbench audit` and the battery behind it: deliberately broken estimators and tasks fail the right property,
with evidence; a sound one passes; the CLI's exit codes and formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import gradbench
from gradbench import battery
from gradbench.estimators.reinforce import one_hot
from gradbench.registry import ESTIMATORS, TASKS
from tests.helpers import assert_one_line_error, registry_snapshot


@pytest.fixture(autouse=True)
def isolated_registry():
    with registry_snapshot():
        yield


FAST = {"tasks": ["sum-target"], "samples": 20_000, "processes": False}


class GlobalRngReinforce(gradbench.Estimator):
    """Broken on purpose: REINFORCE drawing z from torch's global generator (torch.multinomial without generator=)."""

    name = "broken-global-rng"
    summary = family = "test"
    unbiased = True

    def estimate(self, problem, rng):
        p = problem.probs  # D x K
        idx = torch.multinomial(p, rng.n, replacement=True).T  # n x D, from the global RNG
        z = one_hot(idx, p.shape[-1], p.dtype)
        return problem.task.f(z)[:, None, None] * (z - p)


class NumpyRngReinforce(GlobalRngReinforce):
    """Broken on purpose: the uniforms come from numpy's global generator."""

    name = "broken-numpy-rng"

    def estimate(self, problem, rng):
        import numpy as np

        p = problem.probs
        u = torch.from_numpy(np.random.random_sample((rng.n, p.shape[0], 1))).to(p)  # n x D x 1
        z = one_hot((u >= p.cumsum(-1)).sum(-1).clamp(max=p.shape[-1] - 1), p.shape[-1], p.dtype)
        return problem.task.f(z)[:, None, None] * (z - p)


class ReinforcePlusConstant(gradbench.Estimator):
    """Broken on purpose: REINFORCE + 0.05 on every component."""

    name = "broken-plus-constant"
    summary = family = "test"
    unbiased = True

    def estimate(self, problem, rng):
        return ESTIMATORS["reinforce"]().estimate(problem, rng) + 0.05


class ReinforceWithoutMinusP(ReinforcePlusConstant):
    """Broken on purpose: f(z)·onehot(z), the score without its −p term."""

    name = "broken-no-minus-p"

    def estimate(self, problem, rng):
        p = problem.probs
        z = one_hot(rng.categorical(p), p.shape[-1], p.dtype)
        return problem.task.f(z)[:, None, None] * z


class WrongShape(ReinforcePlusConstant):
    """Broken on purpose: n x (D·K) instead of n x D x K."""

    name = "broken-wrong-shape"

    def estimate(self, problem, rng):
        return ESTIMATORS["reinforce"]().estimate(problem, rng).flatten(1)


class MutatesTheta(ReinforcePlusConstant):
    """Broken on purpose: moves θ in place."""

    name = "broken-mutates-theta"

    def estimate(self, problem, rng):
        problem.theta.add_(1e-3)
        return ESTIMATORS["reinforce"]().estimate(problem, rng)


class OneMax(gradbench.Task):
    """f(z) = −(number of ones) over 4 binary variables, θ = 0; separable: h[d] = (0, −1)."""

    name = "audit-onemax"
    summary = "minus the number of ones"
    factor = 1.0

    def __init__(self, **options):
        super().__init__(**options)
        self.D, self.K = 4, 2

    def initial_logits(self):
        return torch.zeros(4, 2, dtype=torch.float64)

    def f(self, z):
        return -z[..., 1].sum(-1)

    def separable_values(self):
        return self.factor * torch.tensor([[0.0, -1.0]] * 4, dtype=torch.float64)


class OneMaxOffByTwo(OneMax):
    """Broken on purpose: its closed form (separable_values) is twice f's, so its exact gradient is off by 2."""

    name = "audit-onemax-x2"
    factor = 2.0


class BadFGrad(OneMax):
    """Broken on purpose: f_grad with the wrong sign."""

    name = "audit-onemax-fgrad"

    def f_grad(self, z):
        g = torch.zeros_like(z)
        g[..., 1] = 1.0  # should be −1
        return g


class DiscontinuousRelaxation(OneMax):
    """Broken on purpose: one formula on one-hot z, another (off by 1) inside the simplex."""

    name = "audit-onemax-relaxed-off"

    def f(self, z):
        on_vertices = bool(((z == 0) | (z == 1)).all())
        return -z[..., 1].sum(-1) + (0.0 if on_vertices else 1.0)


NOT_REPRODUCIBLE = {"same seed", "chunk size", "global RNG"}


@pytest.mark.parametrize(
    ("cls", "prop", "evidence", "failing"),
    [
        (GlobalRngReinforce, "global RNG", "draws from torch's global RNG", NOT_REPRODUCIBLE),
        (NumpyRngReinforce, "global RNG", "draws from numpy's global RNG", NOT_REPRODUCIBLE),
        (ReinforcePlusConstant, "unbiased", "declared unbiased, bias detected on 1/1 cells — sum-target: p = ", None),
        (ReinforceWithoutMinusP, "unbiased", "bias detected", None),
        (WrongShape, "contract", "estimate() returned shape (64, 24), expected (64, 6, 4)", None),
        (MutatesTheta, "contract", "modified problem.theta", None),
    ],
    ids=lambda x: x.name if isinstance(x, type) else "",
)
def test_a_broken_estimator_fails_the_right_property_with_evidence(cls, prop, evidence, failing, monkeypatch):
    monkeypatch.setitem(ESTIMATORS, cls.name, cls)
    report = gradbench.audit(cls.name, **FAST)
    assert report.exit_code == 1
    failed = {v.property: v for v in report.verdicts if v.status == battery.FAIL}
    assert set(failed) == (failing or {prop}), [(v.property, v.evidence) for v in report.verdicts]
    assert evidence in failed[prop].evidence, failed[prop].evidence
    if failing:  # not reproducible, but its mean is still measured: unbiased
        assert report.verdict("unbiased").status == battery.PASS


def test_a_sound_estimator_passes_every_property_with_evidence():
    report = gradbench.audit("reinforce", tasks=["sum-target", "bernoulli"], samples=20_000)
    assert report.passed, [(v.property, v.status, v.evidence) for v in report.verdicts]
    assert [v.property for v in report.verdicts] == [
        "declarations", "contract", "same seed", "chunk size", "global RNG", "two processes", "unbiased",
    ]  # fmt: skip
    unbiased = report.verdict("unbiased")
    assert "2 cells, α = 0.01 Holm" in unbiased.evidence and "detectable bias (power 0.8)" in unbiased.evidence
    assert {c["task"] for c in unbiased.numbers["cells"]} == {"sum-target", "bernoulli"}


def test_a_declared_biased_estimator_is_reported_biased_where_it_is():
    verdict = gradbench.audit("st-gumbel", est_opts={"tau": 1.0}, **FAST).verdict("biased")
    assert verdict.status == battery.PASS and "declared biased, and biased on 1/1 cells" in verdict.evidence


@pytest.mark.parametrize(
    ("cls", "prop", "evidence"),
    [
        (OneMaxOffByTwo, "exact gradient", "g* ≈ 2 × FD"),
        (BadFGrad, "f_grad", "f_grad differs from autograd of f"),
        (DiscontinuousRelaxation, "relaxation", "does not extend f on the vertices"),
    ],
    ids=lambda x: x.name if isinstance(x, type) else None,
)
def test_a_broken_task_fails_the_right_property(cls, prop, evidence, monkeypatch):
    monkeypatch.setitem(TASKS, cls.name, cls)
    report = gradbench.audit(cls.name, samples=20_000)
    failed = {v.property: v for v in report.verdicts if v.status == battery.FAIL}
    assert prop in failed, [(v.property, v.status, v.evidence) for v in report.verdicts]
    assert evidence in failed[prop].evidence, failed[prop].evidence
    if cls is OneMaxOffByTwo:  # the wrong g* is also seen by an estimator known to be unbiased
        assert set(failed) == {"exact gradient", "reference"}
    else:
        assert set(failed) == {prop}


def test_a_sound_task_passes(monkeypatch):
    monkeypatch.setitem(TASKS, OneMax.name, OneMax)
    report = gradbench.audit(OneMax.name, samples=20_000)
    assert report.passed, [(v.property, v.status, v.evidence) for v in report.verdicts]
    assert report.verdict("exact gradient").status == battery.PASS
    assert report.verdict("f_grad").status == battery.SKIP


def test_cli_audit_exit_codes_and_formats(cli, monkeypatch):
    monkeypatch.setitem(ESTIMATORS, ReinforcePlusConstant.name, ReinforcePlusConstant)
    ok = cli("audit", "exact", "-t", "sum-target", "-n", "2000", "--format", "json")
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["passed"] and {v["property"] for v in data["verdicts"]} >= {"contract", "two processes", "unbiased"}
    bad = cli("audit", ReinforcePlusConstant.name, "-t", "sum-target", "-n", "20000", "--format", "markdown")
    assert bad.exit_code == 1
    assert "| unbiased | **FAIL** |" in bad.stdout
    assert_one_line_error(cli("audit", "no-such-estimator"), "unknown estimator 'no-such-estimator'")
    assert_one_line_error(cli("audit", "reinforce", "--format", "xml"), "--format")
    assert_one_line_error(cli("audit", "gumbel", "--tau", "-1"), "tau")


def test_cli_audit_of_a_plugin_file_and_a_surrogate(cli):
    examples = Path(__file__).parents[1] / "docs" / "examples" / "surrogates.py"
    result = cli("audit", "reinforce-sl-nodetach", "--plugin", examples, "-t", "sum-target", "-n", "20000")
    assert result.exit_code == 1, result.output
    assert "unbiased" in result.stdout and "FAIL" in result.stdout
