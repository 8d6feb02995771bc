"""The fast paths (gradbench.fast, Task.f_grad) give the numbers of the plain autograd formulation they replace."""

from __future__ import annotations

import pytest
import torch

from gradbench.core import Task, per_draw_autograd
from gradbench.fast import categorical_one_hot, grad_f, gumbel_range, gumbel_softmax_sample, shifted_exp_and_hard_
from gradbench.rng import BlockRng
from gradbench.runner import CellSpec, prepare
from tests.helpers import TASKS

RELAXABLE = [name for name, cls in TASKS.items() if cls.relaxable]


def problem_for(task: str, estimator: str, dtype: str = "float64", tau: float = 0.5, **task_params):
    cell = prepare(
        CellSpec(
            task=task,
            estimator=estimator,
            task_params=task_params,
            estimator_params={"tau": tau} if "gumbel" in estimator else {},
            dtype=dtype,
        )
    )
    return cell.estimator, cell.problem


def simplex_and_vertices(task: Task, n: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    if task.family == "gaussian":  # real points x, n x D (away from any kink with probability 1)
        return [torch.randn(n, task.D, generator=gen, dtype=torch.float64).mul(2)]
    soft = torch.randn(n, task.D, task.K, generator=gen, dtype=torch.float64).mul(2).softmax(-1)
    hard = torch.nn.functional.one_hot(soft.argmax(-1), task.K).to(soft)
    return [soft, hard]


@pytest.mark.parametrize("task", list(TASKS))
def test_closed_form_f_grad_equals_autograd(task):
    t = TASKS[task]()
    for z in simplex_and_vertices(t, 7):
        closed = t.f_grad(z)
        if closed is None:
            pytest.skip(f"task {task} has no closed-form f_grad")
        leaf = z.clone().requires_grad_(True)
        (expected,) = torch.autograd.grad(t.f(leaf).sum(), leaf)
        assert closed.shape == z.shape
        torch.testing.assert_close(closed, expected, rtol=1e-12, atol=1e-12)


class NoClosedForm(Task):
    """f(z) = Σ_dk w_dk z_dk³ with no f_grad: grad_f must fall back to autograd."""

    name = "test-no-closed-form"
    summary = "cubic"

    def __init__(self, **options):
        super().__init__(**options)
        self.D, self.K = 3, 4

    def f(self, z):
        w = torch.arange(12, dtype=z.dtype).reshape(3, 4)
        return (w * z**3).sum((-1, -2))


class ExpandedGrad(NoClosedForm):
    """A linear f whose closed-form gradient is returned as an expanded (read-only) view."""

    def f(self, z):
        return z.sum((-1, -2))

    def f_grad(self, z):
        return torch.ones((), dtype=z.dtype).expand_as(z)


def test_grad_f_falls_back_to_autograd_and_returns_a_writable_tensor():
    z = torch.rand(5, 3, 4, dtype=torch.float64)
    w = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    torch.testing.assert_close(grad_f(NoClosedForm(), z), 3 * w * z**2)
    g = grad_f(ExpandedGrad(), z)
    g.mul_(2)  # an expanded view would refuse this
    assert torch.equal(g, torch.full_like(z, 2.0))


def autograd_gumbel(problem, rng: BlockRng, tau: float, hard: bool) -> torch.Tensor:
    """The textbook formulation: per-draw autograd through softmax((θ + G)/τ), straight-through when ``hard``."""
    theta = problem.theta
    gumbel = rng.gumbel(*theta.shape, dtype=theta.dtype)  # n x D x K

    def objective(leaf):
        soft = ((leaf + gumbel) / tau).softmax(-1)
        if not hard:
            return problem.task.f(soft)
        one_hot = torch.nn.functional.one_hot((theta + gumbel).argmax(-1), theta.shape[-1]).to(soft)
        return problem.task.f(one_hot - soft.detach() + soft)

    return per_draw_autograd(theta, rng.n, objective)


# τ = 0.5 takes the constant-shift softmax, τ = 0.05 the row-maximum one (see gumbel_softmax_sample).
@pytest.mark.parametrize("tau", [0.5, 0.05])
@pytest.mark.parametrize("estimator", ["gumbel", "st-gumbel"])
@pytest.mark.parametrize("task", RELAXABLE)
def test_relaxation_estimators_equal_per_draw_autograd(task, estimator, tau):
    est, problem = problem_for(task, estimator, tau=tau)
    got = est.estimate(problem, BlockRng(7, 0, [300]))
    expected = autograd_gumbel(problem, BlockRng(7, 0, [300]), tau, hard=estimator == "st-gumbel")
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("estimator", ["gumbel", "st-gumbel"])
def test_relaxation_estimators_in_float32_agree_with_float64(estimator):
    est32, p32 = problem_for("quadratic", estimator, dtype="float32")
    est64, p64 = problem_for("quadratic", estimator, dtype="float64")
    got = est32.estimate(p32, BlockRng(3, 0, [500])).double()
    expected = autograd_gumbel(p32, BlockRng(3, 0, [500]), 0.5, hard=estimator == "st-gumbel").double()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert torch.isfinite(est64.estimate(p64, BlockRng(3, 0, [500]))).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tau", [10.0, 0.5, 0.3, 0.05, 1e-3])
def test_gumbel_softmax_sample_is_a_finite_softmax_at_any_temperature(dtype, tau):
    theta = torch.tensor([[0.0, 3.0, -5.0, 1.0], [20.0, -20.0, 0.0, 0.0]], dtype=dtype)
    soft = gumbel_softmax_sample(theta, BlockRng(1, 0, [2000]), tau)
    assert torch.isfinite(soft).all()
    torch.testing.assert_close(soft.sum(-1), torch.ones(2000, 2, dtype=dtype))
    g = BlockRng(1, 0, [2000]).gumbel(2, 4, dtype=dtype)
    tol = 30 * torch.finfo(dtype).eps * (20 + 17) / tau  # the rounding of (θ + G)/τ, amplified by exp
    torch.testing.assert_close(soft, ((theta + g) / tau).softmax(-1), rtol=tol, atol=tol)


def test_gumbel_range_bounds_every_possible_draw():
    for dtype in (torch.float32, torch.float64):
        info = torch.finfo(dtype)
        extreme = torch.tensor([0.0, 1.0], dtype=dtype).clamp(info.tiny, 1 - info.eps)
        g = -(-extreme.log()).log()
        lo, hi = gumbel_range(dtype)
        assert lo <= float(g.min()) and float(g.max()) <= hi


def test_hard_sample_is_the_first_argmax_even_with_ties():
    y = torch.tensor([[[0.5, 2.0, 2.0, -1.0], [3.0, 1.0, 0.0, 3.0]]])  # 1 x 2 x 4, a tie in each row
    e, hard = shifted_exp_and_hard_(y.clone())
    assert torch.equal(hard, torch.tensor([[[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]]))
    torch.testing.assert_close(e, (y - y.amax(-1, keepdim=True)).exp())
    no_tie = torch.randn(64, 5, 7)
    _, hard = shifted_exp_and_hard_(no_tie.clone())
    assert torch.equal(hard, torch.nn.functional.one_hot(no_tie.argmax(-1), 7).float())


def test_categorical_one_hot_draws_what_rng_categorical_draws():
    probs = torch.tensor([[0.2, 0.0, 0.5, 0.3], [0.97, 0.01, 0.01, 0.01], [0.0, 0.0, 0.0, 1.0]])
    z = categorical_one_hot(probs, BlockRng(5, 0, [4096, 4096]))
    idx = BlockRng(5, 0, [4096, 4096]).categorical(probs)
    assert torch.equal(z, torch.nn.functional.one_hot(idx, 4).to(probs))
    assert not z[:, 0, 1].any() and bool(z[:, 2, 3].all())  # probability 0 and 1
    freq = z.mean(0)
    assert (freq - probs).abs().max() < 4 * (0.25 / 8192) ** 0.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(64, 20, 10), (3, 1, 1), (5, 4, 2), (7, 3, 13)])
def test_row_max_is_amax_over_the_last_axis(shape, dtype):
    from gradbench.fast import row_max

    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    x.view(-1)[:: max(1, x.numel() // 5)] = float("inf")
    x.view(-1)[1 :: max(2, x.numel() // 3)] = float("nan")
    x.view(-1)[2 :: max(3, x.numel() // 4)] = float("-inf")
    got, expected = row_max(x), x.amax(-1, keepdim=True)
    assert got.shape == expected.shape and got.dtype == dtype
    assert torch.equal(got.isnan(), expected.isnan())
    assert torch.equal(got.nan_to_num(0.0), expected.nan_to_num(0.0))
