"""Known answers for IndeCateR and the Rao-Blackwellised score function (rb-reinforce): exact mean and variance by
enumerating every draw on a small task, and broken variants that the same checks catch."""

from __future__ import annotations

import pytest
import torch

from gradbench.errors import GradbenchError
from gradbench.estimators.indecater import IndeCateR, substituted_values
from gradbench.estimators.rb_reinforce import sample_outside, top_configurations
from gradbench.fast import categorical_one_hot
from gradbench.registry import ESTIMATORS as REGISTRY
from gradbench.rng import BlockRng
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


class FixedDraws:
    """Stands in for a BlockRng: hands the estimator chosen uniforms (n x *shape)."""

    def __init__(self, u: torch.Tensor):
        self.u, self.n, self.sizes, self.first_block = u, u.shape[0], [u.shape[0]], 0

    def uniform(self, *shape, dtype=torch.float32):
        assert tuple(shape) == tuple(self.u.shape[1:]), (shape, self.u.shape)
        return self.u.to(dtype)


def indecater_over_every_draw(problem):
    """IndeCateR's estimate for every configuration z of SMALL (fed as the inverse-CDF uniform that selects it)."""
    configs = configurations(2, 3)  # 9 x 2
    cdf = problem.probs.cumsum(-1)  # D x K
    lower = torch.cat((torch.zeros(2, 1, dtype=cdf.dtype), cdf[:, :-1]), -1)  # D x K
    u = ((lower + cdf) / 2).gather(1, configs.T).T[..., None]  # 9 x D x 1: mid-interval of each chosen category
    values = IndeCateR().estimate(problem, FixedDraws(u))
    return values, joint_probs(problem, configs)


def test_indecater_is_exactly_unbiased_over_every_draw_and_its_variance_matches():
    problem = problem_for("sum-target", SMALL, "indecater")
    values, prob = indecater_over_every_draw(problem)
    mean, variance = exact_moments(values, prob)
    torch.testing.assert_close(mean, problem.exact_grad, rtol=0, atol=1e-15)
    row = run("sum-target", "indecater", n=40_000, seed=3, task_params=SMALL)
    assert_variance_matches(row, variance)
    assert row["draws_per_estimate"] == 2 * 3  # D·K evaluations of f per estimate


def test_indecater_is_exact_for_a_separable_objective():
    for task, params in (("bernoulli", {"target": 0.45}), ("quadratic", {"dim": 3, "categories": 4})):
        row = run(task, "indecater", n=2_000, seed=1, task_params=params, dtype="float64")
        assert row["variance"] < 1e-28 and row["bias"] < 1e-15, (task, row["variance"], row["bias"])


def test_indecater_without_the_centring_term_is_caught(monkeypatch):
    # Broken on purpose: g_dj = p_dj f(z_{−d}, j), i.e. without − p_dj Σ_k p_dk f(z_{−d}, k) (the −p of the score).
    def broken(self, problem, rng):
        z = categorical_one_hot(problem.probs, rng)
        values = torch.stack([substituted_values(problem.task, z, d) for d in range(z.shape[1])], 1)
        return values * problem.probs

    problem = problem_for("sum-target", SMALL, "indecater")
    monkeypatch.setattr(IndeCateR, "estimate", broken)
    values, prob = indecater_over_every_draw(problem)
    mean, _ = exact_moments(values, prob)
    assert (mean - problem.exact_grad).abs().max() > 1e-3
    assert run("sum-target", "indecater", n=40_000, seed=3, task_params=SMALL)["bias_pvalue"] < 1e-6


# --- rb-reinforce ---------------------------------------------------------------------------------------------


def test_top_configurations_are_the_most_probable_ones():
    problem = problem_for("sum-target", {"dim": 3, "categories": 3})
    configs = configurations(3, 3)
    p = joint_probs(problem, configs)
    for k in (1, 4, 26):
        got = top_configurations(problem.probs.log(), k)
        expected = p.topk(k).values
        torch.testing.assert_close(joint_probs(problem, got).sort(descending=True).values, expected)
        assert len({tuple(c) for c in got.tolist()}) == k


def rb_moments(problem, summed: int, sampler=sample_outside):
    """Exact mean and variance of rb-reinforce on SMALL: every z̃ outside C with its conditional probability."""
    configs = configurations(2, 3)
    p = joint_probs(problem, configs)
    C = top_configurations(problem.probs.log(), summed)
    inside = (configs[:, None, :] == C[None]).all(-1).any(-1)  # 9
    u = torch.rand(200_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    drawn = sampler(problem.probs, C, FixedDraws(u))  # the sampler's frequencies, checked against p(· | ∉ C)
    codes = drawn[:, 0] * 3 + drawn[:, 1]
    freq = torch.bincount(codes, minlength=9).to(torch.float64) / u.shape[0]
    cond = torch.where(inside, 0.0, p) / p[~inside].sum()
    score = problem.probs.to(torch.float64)
    z_c = torch.nn.functional.one_hot(C, 3).to(torch.float64)  # k x D x K
    pc = joint_probs(problem, C)  # k
    exact_part = ((pc * problem.task.f(z_c))[:, None, None] * (z_c - score)).sum(0)  # D x K
    z_all = torch.nn.functional.one_hot(configs, 3).to(torch.float64)  # 9 x D x K
    values = exact_part + ((1 - pc.sum()) * problem.task.f(z_all))[:, None, None] * (z_all - score)  # 9 x D x K
    return exact_moments(values, cond), freq, cond


@pytest.mark.parametrize("summed", [0, 1, 4, 8])
def test_rb_reinforce_is_exactly_unbiased_and_its_variance_matches(summed):
    problem = problem_for("sum-target", SMALL)
    (mean, variance), freq, cond = rb_moments(problem, summed)
    torch.testing.assert_close(mean, problem.exact_grad, rtol=0, atol=1e-15)
    assert (freq - cond).abs().max() < 0.005  # the conditional sampler draws from p(· | z ∉ C)
    assert (freq[cond == 0] == 0).all()
    row = run("sum-target", "rb-reinforce", n=40_000, seed=3, task_params=SMALL, estimator_params={"summed": summed})
    assert_variance_matches(row, variance)
    assert row["draws_per_estimate"] == summed + 1
    if summed == 8:  # everything but one configuration summed: the exact gradient at every draw
        assert variance < 1e-28


def test_rb_reinforce_sampling_inside_the_summed_set_is_caught(monkeypatch):
    # Broken on purpose: z̃ drawn from p itself (the summed configurations counted twice).
    def unconditioned(probs, summed, rng):
        return sample_outside(probs, summed[:0], rng)

    problem = problem_for("sum-target", SMALL)
    _, freq, cond = rb_moments(problem, 4, sampler=unconditioned)
    assert (freq - cond).abs().max() > 0.05  # the frequency check sees it …
    monkeypatch.setattr("gradbench.estimators.rb_reinforce.sample_outside", unconditioned)
    row = run("sum-target", "rb-reinforce", n=100_000, seed=3, task_params=SMALL, estimator_params={"summed": 4})
    assert row["bias_pvalue"] < 1e-6  # … and so does the unbiasedness test


def test_rb_reinforce_refuses_to_sum_the_whole_space():
    with pytest.raises(GradbenchError, match="K\\^D = 2"):
        prepare(CellSpec(task="bernoulli", estimator="rb-reinforce", estimator_params={"summed": 2}))
    assert REGISTRY["rb-reinforce"](summed=3).draws_per_estimate == 4


def test_rb_reinforce_replays_a_fixed_draw():
    spec = CellSpec(task="sum-target", estimator="rb-reinforce", estimator_params={"summed": 3}, dtype="float64")
    cell = prepare(spec)
    got = cell.estimator.estimate(cell.problem, BlockRng(0, 0, [8]))
    p = cell.problem.probs
    C = top_configurations(p.log(), 3)
    drawn = sample_outside(p, C, BlockRng(0, 0, [8]))
    z = torch.nn.functional.one_hot(drawn, 4).to(p)
    f = cell.problem.task.f
    expected = torch.zeros(8, 6, 4, dtype=p.dtype)
    rest = 1.0
    for c in C:  # the textbook form, one summed configuration at a time
        zc = torch.nn.functional.one_hot(c, 4).to(p)
        pc = p[torch.arange(6), c].prod()
        expected += pc * f(zc) * (zc - p)
        rest -= pc
    expected += rest * f(z)[:, None, None] * (z - p)
    torch.testing.assert_close(got, expected)
