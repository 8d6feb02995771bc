"""Known answers for the relaxation family: st, gapped-st, reinmax (exact enumeration) and gumbel-rao (quadrature).

ST, GST and ReinMax are deterministic given the hard sample z, so their exact mean and variance are finite sums
over the K^D configurations: E[g] = Σ_z p(z) g(z), Var = Σ_z p(z) ‖g(z) − E[g]‖². g(z) comes from reference
implementations written the way the papers write them (autograd through a ``value − surrogate.detach() +
surrogate`` graph), independent of the estimators' closed-form Jacobian products. Gumbel-Rao on a single binary
variable reduces to one-dimensional integrals over the logistic noise, computed by quadrature.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from gradbench.core import Problem, Task, per_draw_autograd
from gradbench.errors import GradbenchError
from gradbench.registry import ESTIMATORS
from gradbench.rng import BlockRng
from gradbench.runner import CellSpec, prepare
from tests.helpers import run

TOY = {"target": 0.3, "logit": -1.0}  # Bernoulli D = 1 off the symmetric point, with a large gradient
N = 200_000


# --- reference implementations (autograd, as the papers write them) ------------------------------------------


def reference_st(theta, z, task, tau, gap=None):
    """ST (gap None) or GST (gap κ): f(z − y.detach() + y), y = softmax((θ + m)/τ), m the detached GST shift."""

    def objective(th):
        m = torch.zeros_like(th)
        if gap is not None:
            t = th.detach()
            top = t.max(-1, keepdim=True).values
            m = (top - t) * z - torch.relu(t - top + gap) * (1 - z)
        y = ((th + m) / tau).softmax(-1)
        return task.f(z - y.detach() + y)

    return per_draw_autograd(theta, z.shape[0], objective)


def reference_reinmax(theta, z, task, tau):
    """Liu et al. (2023), as the paper writes it: π₁ = (z + softmax(θ/τ))/2 re-attached as softmax(sg(ln π₁ − θ) + θ);
    π₂ = 2π₁ − ½ softmax(θ); forward z, backward through π₂."""

    def objective(th):
        pi0 = th.softmax(-1)
        pi1 = 0.5 * ((th / tau).softmax(-1) + z)
        pi1 = ((pi1.log() - th).detach() + th).softmax(-1)
        pi2 = 2 * pi1 - 0.5 * pi0
        return task.f(pi2 - pi2.detach() + z)

    return per_draw_autograd(theta, z.shape[0], objective)


REFERENCES = {
    "st": lambda theta, z, task, tau: reference_st(theta, z, task, tau),
    "gapped-st": lambda theta, z, task, tau: reference_st(theta, z, task, tau, gap=1.0),
    "reinmax": reference_reinmax,
}


def all_configurations(D: int, K: int) -> torch.Tensor:
    """Every one-hot z, K^D x D x K, float64."""
    idx = torch.tensor(list(itertools.product(range(K), repeat=D)))  # K^D x D
    return torch.nn.functional.one_hot(idx, K).to(torch.float64)


def exact_moments(estimator: str, task: str, tau: float, task_params=None):
    """(exact E[g] − g*, exact trace of Cov g) by enumeration, in float64."""
    cell = prepare(
        CellSpec(task=task, estimator=estimator, task_params=task_params or {}, estimator_params={"tau": tau})
    )
    t = cell.task
    theta = t.initial_logits()  # float64
    z = all_configurations(t.D, t.K)  # C x D x K
    weight = (z * theta.softmax(-1)).sum(-1).prod(-1)  # C
    g = REFERENCES[estimator](theta, z, t, tau)  # C x D x K
    mean = (weight[:, None, None] * g).sum(0)
    variance = (weight[:, None, None] * (g - mean).square()).sum().item()
    return mean - cell.problem.exact_grad, variance


# --- replay: the estimators give the reference's numbers on the same draws --------------------------------------


@pytest.mark.parametrize("estimator", list(REFERENCES))
@pytest.mark.parametrize("task", ["bernoulli", "sum-target"])
def test_replays_the_reference_implementation_on_the_same_draws(estimator, task):
    tau = 1.5 if estimator == "reinmax" else 0.7
    cell = prepare(CellSpec(task=task, estimator=estimator, estimator_params={"tau": tau}, dtype="float64"))
    got = cell.estimator.estimate(cell.problem, BlockRng(7, 0, [64]))
    p = cell.problem.probs
    z = torch.nn.functional.one_hot(BlockRng(7, 0, [64]).categorical(p), p.shape[-1]).to(p)
    torch.testing.assert_close(got, REFERENCES[estimator](cell.problem.theta, z, cell.task, tau))


# --- exact mean and variance by enumeration vs the measured ones ------------------------------------------------

CASES = [
    ("st", 0.5),
    ("st", 1.0),
    ("gapped-st", 0.5),
    ("gapped-st", 1.0),
    ("reinmax", 1.0),
    ("reinmax", 2.0),
]


@pytest.mark.parametrize(("estimator", "tau"), CASES)
@pytest.mark.parametrize(("task", "task_params"), [("bernoulli", TOY), ("sum-target", {})])
def test_measured_bias_and_variance_match_exact_enumeration(estimator, tau, task, task_params):
    bias_vec, variance = exact_moments(estimator, task, tau, task_params)
    row = run(task, estimator, n=N, seed=1, task_params=task_params, estimator_params={"tau": tau})
    assert abs(row["variance"] - variance) < 5 * row["variance_se"], (row["variance"], variance)
    noise = math.sqrt(variance / N)  # size of ‖ĝ − E g‖ for an unbiased mean
    assert abs(row["bias"] - bias_vec.norm().item()) < 5 * noise


def test_reinmax_is_exact_at_tau_one_for_quadratic_objectives():
    # Heun's method integrates a quadratic exactly: at τ = 1 ReinMax's mean is the true gradient on both tasks
    # (f is quadratic in z), however far θ is from uniform; at τ = 2 it is not, and the bias is detectable.
    for task, params in (("bernoulli", TOY), ("bernoulli", {"target": 0.1, "logit": 2.5}), ("sum-target", {})):
        bias_vec, _ = exact_moments("reinmax", task, 1.0, params)
        assert bias_vec.abs().max() < 1e-12
    bias_vec, variance = exact_moments("reinmax", "sum-target", 2.0)
    assert bias_vec.norm() > 10 * math.sqrt(variance / N)
    assert run("sum-target", "reinmax", n=N, seed=1, estimator_params={"tau": 2.0})["bias_pvalue"] < 1e-6


@pytest.mark.parametrize("estimator", ["st", "gapped-st"])
def test_straight_through_biases_are_real_and_detected(estimator):
    assert ESTIMATORS[estimator].unbiased is False
    bias_vec, variance = exact_moments(estimator, "sum-target", 0.5)
    assert bias_vec.norm() > 10 * math.sqrt(variance / N)
    assert run("sum-target", estimator, n=N, seed=1, estimator_params={"tau": 0.5})["bias_pvalue"] < 1e-6


def test_st_closed_form_on_the_bernoulli_toy():
    # θ = 0: g₁ = 2(b − t)/(4τ) = −g₀, so E g₁ = (1 − 2t)/(4τ) (exact (1 − 2t)/4), Var = 2 · 1/(16τ²).
    t = 0.3
    for tau in (0.5, 1.0):
        bias_vec, variance = exact_moments("st", "bernoulli", tau, {"target": t})
        assert variance == pytest.approx(1 / (8 * tau**2), rel=1e-12)
        assert bias_vec[0, 1].item() == pytest.approx((1 - 2 * t) / 4 * (1 / tau - 1), abs=1e-12)


class Linear(Task):
    """f(z) = Σ h_dk z_dk, linear on the simplex; D = 3, K = 4; θ_dk = cos(d + k)."""

    name = "test-linear"
    summary = "linear"

    def __init__(self):
        super().__init__()
        self.D, self.K = 3, 4
        self.h = torch.arange(12, dtype=torch.float64).reshape(3, 4).sin()

    def initial_logits(self):
        d, k = torch.arange(3.0, dtype=torch.float64)[:, None], torch.arange(4.0, dtype=torch.float64)
        return torch.cos(d + k)

    def f(self, z):
        return (z * self.h.to(z)).sum((-1, -2))


def test_st_at_tau_one_is_the_exact_gradient_for_linear_f():
    task = Linear()
    theta = task.initial_logits()
    p = theta.softmax(-1)
    exact = p * (task.h - (p * task.h).sum(-1, keepdim=True))
    problem = Problem(task=task, theta=theta, exact_grad=exact, exact_value=0.0)
    got = ESTIMATORS["st"](tau=1.0).estimate(problem, BlockRng(0, 0, [100]))
    torch.testing.assert_close(got, exact.expand_as(got))  # every draw, zero variance
    assert not torch.allclose(ESTIMATORS["st"](tau=0.5).estimate(problem, BlockRng(0, 0, [4])), exact)


def test_gapped_logits_make_the_sample_win_by_the_gap():
    from gradbench.estimators.gapped_st import gapped_logits

    theta = torch.tensor([[0.3, -1.0, 1.2, 1.1], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    for gap in (0.0, 0.5, 1.0, 3.0):
        idx = BlockRng(1, 0, [500]).categorical(theta.softmax(-1))
        z = torch.nn.functional.one_hot(idx, 4).to(theta)
        x = gapped_logits(theta, z, gap)  # n x D x K
        chosen = (x * z).sum(-1)
        others = x.masked_fill(z.bool(), -math.inf).max(-1).values
        assert (chosen - others >= gap - 1e-12).all()
        assert (chosen == theta.max(-1).values).all()  # the sampled logit is lifted to the maximum
        untouched = (theta <= theta.max(-1, keepdim=True).values - gap) & ~z.bool()  # already far enough down
        assert torch.equal(x[untouched], theta.expand_as(x)[untouched])


def test_reinmax_refuses_temperatures_below_one():
    with pytest.raises(GradbenchError, match=r"tau must be ≥ 1, got 0.5"):
        ESTIMATORS["reinmax"](tau=0.5)
    ESTIMATORS["reinmax"](tau=1.0)


# --- Gumbel-Rao: quadrature on one binary variable ---------------------------------------------------------------


def gumbel_rao_moments(theta1: float, target: float, tau: float, k: int) -> tuple[float, float, float]:
    """Bernoulli D = 1, θ = (0, θ₁), f = (z₁ − t)². With L = G₁ − G₀ ~ Logistic, b = 1[θ₁ + L > 0],
    w(L) = σ((θ₁ + L)/τ) σ(−(θ₁ + L)/τ)/τ, GR-MCk gives g₁ = −g₀ = 2(b − t) · mean of k draws of w(L | b).
    Returns (E g₁, trace of Cov g, exact ∂E f/∂θ₁) from the conditional moments m_b, v_b of w by quadrature."""
    L = torch.linspace(-60, 60, 2_400_001, dtype=torch.float64)
    density = torch.sigmoid(L) * torch.sigmoid(-L)
    y = torch.sigmoid((theta1 + L) / tau)
    w = y * (1 - y) / tau
    mean, second = 0.0, 0.0
    for b, region in ((1, theta1 + L > 0), (0, theta1 + L <= 0)):
        mass = torch.trapezoid(density * region, L)
        m = torch.trapezoid(w * density * region, L) / mass
        v = torch.trapezoid(w.square() * density * region, L) / mass - m**2
        c = 2 * (b - target)
        mean += mass * c * m
        second += mass * c**2 * (m**2 + v / k)
    p1 = torch.sigmoid(torch.tensor(theta1, dtype=torch.float64))
    exact = p1 * (1 - p1) * (1 - 2 * target)
    return mean.item(), 2 * (second - mean**2).item(), exact.item()


@pytest.mark.parametrize(("k", "tau"), [(1, 0.5), (10, 0.5), (3, 1.0)])
def test_gumbel_rao_matches_quadrature(k, tau):
    mean, variance, exact = gumbel_rao_moments(TOY["logit"], TOY["target"], tau, k)
    row = run("bernoulli", "gumbel-rao", n=N, seed=2, task_params=TOY, estimator_params={"tau": tau, "k": k})
    assert abs(row["variance"] - variance) < 5 * row["variance_se"], (row["variance"], variance)
    assert abs(row["bias"] - math.sqrt(2) * abs(mean - exact)) < 5 * math.sqrt(variance / N)
    assert row["bias_pvalue"] < 1e-6  # declared biased, and measurably so here


def test_gumbel_rao_with_one_draw_is_st_gumbel_in_distribution():
    # k = 1: (D, conditional G) has the law of (argmax(θ + G), G), so GR-MC1 and ST-Gumbel share mean and variance.
    mean, variance, _ = gumbel_rao_moments(TOY["logit"], TOY["target"], 0.5, 1)
    row = run("bernoulli", "st-gumbel", n=N, seed=3, task_params=TOY, estimator_params={"tau": 0.5})
    assert abs(row["variance"] - variance) < 5 * row["variance_se"]
    _, variance_10, _ = gumbel_rao_moments(TOY["logit"], TOY["target"], 0.5, 10)
    assert variance_10 < 0.8 * variance  # Rao-Blackwellization pays off on this toy


def conditional_sampler_error(sampler, n: int = 100_000) -> float:
    """Largest deviation of the conditional sampler, mixed over D ~ p, from the unconditional Gumbel(θ) law:
    CDF of each x_k, CDF of x₀ − x₂ (logistic), and the rate at which argmax x ≠ D."""
    theta = torch.tensor([[0.3, -1.0, 1.2]], dtype=torch.float64)
    rng = BlockRng(5, 0, [n])
    index = rng.categorical(theta.softmax(-1))  # n x 1
    expo = rng.open_uniform(1, 3, dtype=torch.float64).log().neg()  # n x 1 x 3
    x = sampler(theta, index, expo)[:, 0]  # n x 3
    errors = [(x.argmax(-1) != index[:, 0]).double().mean().item()]
    for c in (-1.0, 0.0, 0.7, 2.0):
        cdf = torch.exp(-torch.exp(-(c - theta[0])))  # Gumbel(θ_k) CDF at c
        errors += ((x <= c).double().mean(0) - cdf).abs().tolist()
        diff_cdf = torch.sigmoid(torch.tensor(c) - (theta[0, 0] - theta[0, 2]))
        errors.append(abs(((x[:, 0] - x[:, 2]) <= c).double().mean().item() - diff_cdf.item()))
    return max(errors)


def test_conditional_gumbel_has_the_gumbel_law_and_respects_the_argmax():
    from gradbench.estimators.gumbel_rao import conditional_gumbel

    assert conditional_sampler_error(conditional_gumbel) < 0.006  # ≈ 4 standard errors of an empirical CDF


def _untruncated(theta, index, expo):  # broken: the others ignore the maximum
    from gradbench.estimators.gumbel_rao import conditional_gumbel

    top = conditional_gumbel(theta, index, expo)
    chosen = torch.nn.functional.one_hot(index, 3).bool()
    return torch.where(chosen, top, theta - expo.log())


def _wrong_maximum(theta, index, expo):  # broken: the maximum drawn as Gumbel(θ_i) instead of Gumbel(log Z)
    chosen = torch.nn.functional.one_hot(index, 3).bool()
    top = torch.where(chosen, theta - expo.log(), 0.0).sum(-1, keepdim=True)
    return torch.where(chosen, top, -torch.logaddexp(expo.log() - theta, -top))


@pytest.mark.parametrize("broken", [_untruncated, _wrong_maximum])
def test_conditional_sampler_check_catches_broken_samplers(broken):
    assert conditional_sampler_error(broken) > 0.02


@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_gumbel_rao_closed_form_softmax_equals_softmax_of_the_conditional_logits(tau):
    from gradbench.estimators.gumbel_rao import conditional_gumbel, conditional_softmax_

    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(3, 5, dtype=torch.float64, generator=gen)  # D x K
    index = torch.randint(0, 5, (64, 3), generator=gen)  # n x D
    e = torch.empty(64, 4, 3, 5, dtype=torch.float64).exponential_(generator=gen)  # n x s x D x K
    expected = (conditional_gumbel(theta, index[:, None], e) / tau).softmax(-1)
    got = conditional_softmax_(e.clone(), index[:, None, :, None], theta.softmax(-1).reciprocal(), tau)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
