"""Known answers for the score-function family: reinforce-baseline, reinforce-batch-baseline, rloo, unordered-set.

Exact expectations and variances come from enumerating every possible draw (tuple or set) of a small task, so
"unbiased" is checked to float64 precision, not only statistically; the biased variants are shown biased.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from gradbench.errors import GradbenchError
from gradbench.estimators.reinforce_batch_baseline import batch_baseline_combine
from gradbench.estimators.rloo import rloo_combine
from gradbench.estimators.unordered_set import (
    UnorderedSet,
    _SubsetTables,
    set_estimate,
    set_weights,
    stochastic_beam_search,
)
from gradbench.registry import ESTIMATORS as REGISTRY
from gradbench.rng import BlockRng
from gradbench.runner import CellSpec, prepare
from tests.helpers import run

SMALL = {"dim": 2, "categories": 3}  # sum-target with 9 configurations: every set of draws can be enumerated


def problem_for(task: str, task_params: dict, estimator: str = "reinforce", dtype: str = "float64", **est):
    return prepare(
        CellSpec(task=task, estimator=estimator, task_params=task_params, estimator_params=est, dtype=dtype)
    ).problem


def configurations(D: int, K: int) -> torch.Tensor:
    """All K^D configurations as category indices, K^D x D."""
    return torch.tensor(list(itertools.product(range(K), repeat=D)), dtype=torch.int64)


def joint_probs(problem, configs: torch.Tensor) -> torch.Tensor:
    logp = problem.theta.to(torch.float64).log_softmax(-1)
    return logp[torch.arange(configs.shape[1]), configs].sum(-1).exp()


def exact_moments(values: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Mean (D x K) and trace of the covariance of estimates ``values`` (N x D x K) drawn with probabilities
    ``weights`` (N, summing to 1)."""
    mean = (weights[:, None, None] * values).sum(0)
    second = (weights[:, None, None] * values.square()).sum(0)
    return mean, float((second - mean.square()).sum())


def assert_variance_matches(row: dict, exact_variance: float) -> None:
    assert abs(row["variance"] - exact_variance) < 4 * row["variance_se"] + 1e-12, (row["variance"], exact_variance)


# --- RLOO and the batch-mean baseline: every m-tuple of draws -------------------------------------------------


def tuple_moments(combine, m: int):
    problem = problem_for("sum-target", SMALL)
    configs = configurations(2, 3)  # 9 x 2
    p = joint_probs(problem, configs)  # 9
    tuples = torch.tensor(list(itertools.product(range(9), repeat=m)))  # 9^m x m
    z = torch.nn.functional.one_hot(configs[tuples], 3).to(torch.float64)  # 9^m x m x D x K
    f = problem.task.f(z)  # 9^m x m
    score = z - problem.probs.to(torch.float64)
    return exact_moments(combine(f, score), p[tuples].prod(-1)), problem.exact_grad


@pytest.mark.parametrize("m", [2, 3])
def test_rloo_is_exactly_unbiased_over_every_tuple_of_draws(m):
    (mean, variance), exact = tuple_moments(rloo_combine, m)
    torch.testing.assert_close(mean, exact, rtol=0, atol=1e-15)
    row = run("sum-target", "rloo", n=40_000, seed=3, task_params=SMALL, estimator_params={"m": m})
    assert_variance_matches(row, variance)
    assert row["draws_per_estimate"] == m


@pytest.mark.parametrize("m", [2, 3])
def test_batch_mean_baseline_shrinks_the_gradient_by_one_minus_one_over_m(m):
    (mean, _), exact = tuple_moments(batch_baseline_combine, m)
    torch.testing.assert_close(mean, (1 - 1 / m) * exact, rtol=0, atol=1e-15)
    # and RLOO is exactly m/(m − 1) times it, draw for draw
    (rloo_mean, _), _ = tuple_moments(rloo_combine, m)
    torch.testing.assert_close(rloo_mean, m / (m - 1) * mean, rtol=0, atol=1e-15)


def test_batch_mean_baseline_is_detected_as_biased_and_matches_its_shrunk_mean():
    assert REGISTRY["reinforce-batch-baseline"].unbiased is False
    row = run("sum-target", "reinforce-batch-baseline", n=50_000, seed=2, estimator_params={"m": 2})
    assert row["bias_pvalue"] < 1e-6
    assert row["cosine"] > 0.99  # the right direction, half the length
    cell = prepare(CellSpec(task="sum-target", estimator="reinforce-batch-baseline", estimator_params={"m": 2}))
    est = cell.estimator.estimate(cell.problem, BlockRng(2, 0, [50_000])).to(torch.float64).reshape(50_000, -1)
    z = (est.mean(0) - 0.5 * cell.problem.exact_grad.reshape(-1)) / (est.std(0) / math.sqrt(50_000))
    assert z.abs().max() < 4.5  # consistent with (1 − 1/m) g* (24 components)


def test_rloo_replays_a_fixed_draw():
    cell = prepare(CellSpec(task="sum-target", estimator="rloo", estimator_params={"m": 3}, dtype="float64"))
    got = cell.estimator.estimate(cell.problem, BlockRng(0, 0, [8]))
    p = cell.problem.probs
    idx = BlockRng(0, 0, [8]).categorical(p.repeat(3, 1)).view(8, 3, 6)
    z = torch.nn.functional.one_hot(idx, 4).to(p)
    f = cell.problem.task.f(z)
    expected = torch.zeros(8, 6, 4, dtype=p.dtype)
    for j in range(3):  # the textbook form: baseline = mean of the other draws
        others = (f.sum(1) - f[:, j]) / 2
        expected += (f[:, j] - others)[:, None, None] * (z[:, j] - p) / 3
    torch.testing.assert_close(got, expected)


# --- running-mean baseline -------------------------------------------------------------------------------------


def test_running_baseline_replays_a_fixed_draw_across_calls():
    cell = prepare(CellSpec(task="sum-target", estimator="reinforce-baseline", dtype="float64"))
    est = cell.estimator
    got = torch.cat(
        [est.estimate(cell.problem, BlockRng(5, 0, [16, 16])), est.estimate(cell.problem, BlockRng(5, 2, [16, 7]))]
    )
    p = cell.problem.probs
    draws = [BlockRng(5, b, [16]).categorical(p) for b in range(3)] + [BlockRng(5, 3, [7]).categorical(p)]
    z = torch.nn.functional.one_hot(torch.cat(draws), 4).to(p)  # 55 x D x K
    f = cell.problem.task.f(z)
    for i in range(55):  # baseline = mean of the f values of all earlier draws (0 for the first)
        baseline = f[:i].mean() if i else 0.0
        torch.testing.assert_close(got[i], (f[i] - baseline) * (z[i] - p))


def test_running_baseline_starts_from_its_warm_up_draws():
    """After setup(), b_i = (S_W + Σ_{j<i} f_j)/(W + i), S_W the f sum of W draws from the warm-up seed's own stream,
    whatever the cell's seed (the warm-up is a fixed part of the estimator, not a random effect)."""
    from gradbench.estimators.reinforce_baseline import WARMUP_STREAM
    from gradbench.rng import block_seed

    cell = prepare(CellSpec(task="sum-target", estimator="reinforce-baseline", dtype="float64"))
    est, p, W = cell.estimator, cell.problem.probs, 64
    est.setup(cell.problem, seed=123)
    warm = BlockRng(block_seed(0, WARMUP_STREAM), 0, [W]).categorical(p)  # W x D
    s_w = cell.problem.task.f(torch.nn.functional.one_hot(warm, 4).to(p)).sum()
    got = est.estimate(cell.problem, BlockRng(5, 0, [16]))
    z = torch.nn.functional.one_hot(BlockRng(5, 0, [16]).categorical(p), 4).to(p)  # 16 x D x K
    f = cell.problem.task.f(z)
    for i in range(16):
        torch.testing.assert_close(got[i], (f[i] - (s_w + f[:i].sum()) / (W + i)) * (z[i] - p))
    other = prepare(CellSpec(task="sum-target", estimator="reinforce-baseline", dtype="float64", seed=9)).estimator
    other.setup(cell.problem, seed=9)
    assert torch.equal(other.estimate(cell.problem, BlockRng(5, 0, [16])), got)


def test_running_baseline_refuses_chunks_out_of_order_and_restarts_at_block_zero():
    cell = prepare(CellSpec(task="bernoulli", estimator="reinforce-baseline"))
    est = cell.estimator
    first = est.estimate(cell.problem, BlockRng(0, 0, [16]))
    with pytest.raises(GradbenchError, match="block order"):
        est.estimate(cell.problem, BlockRng(0, 3, [16]))
    assert torch.equal(est.estimate(cell.problem, BlockRng(0, 0, [16])), first)  # block 0: a fresh cell


def test_running_baseline_nearly_removes_reinforce_variance_on_the_bernoulli_toy():
    # With the exact E f as baseline, every estimate at θ = 0 would be g* (zero variance); the running mean
    # converges to E f, so nearly all of REINFORCE's variance 2·0.0156 goes.
    plain = run("bernoulli", "reinforce", n=50_000, seed=1)
    based = run("bernoulli", "reinforce-baseline", n=50_000, seed=1)
    assert based["variance"] < 1e-3 * plain["variance"]
    assert based["bias_pvalue"] > 1e-3


# --- unordered set estimator -----------------------------------------------------------------------------------


def reference_set_probability(p: list[float]) -> float:
    """p(S) by brute force over the orderings of S: Σ_orderings Π p(s_i) / (1 − Σ_{j<i} p(s_j))."""
    total = 0.0
    for order in itertools.permutations(p):
        prob, used = 1.0, 0.0
        for x in order:
            prob *= x / (1 - used)
            used += x
        total += prob
    return total


def reference_loo_probability(p: list[float], removed: list[int]) -> float:
    """p^{D∖A}(S ∖ A) for A = the elements at ``removed``: orderings of the rest under p renormalised on D ∖ A."""
    mass = sum(p[i] for i in removed)
    rest = [x / (1 - mass) for i, x in enumerate(p) if i not in removed]
    return reference_set_probability(rest) if rest else 1.0


def test_set_weights_match_brute_force_leave_one_out_ratios():
    gen = torch.Generator().manual_seed(0)
    m = 4
    p = torch.rand(3, m, generator=gen, dtype=torch.float64) / 6  # sets of 4 of total mass < 2/3
    w, r = set_weights(p.log(), _SubsetTables(m, "cpu"))
    for row in range(3):
        ps = p[row].tolist()
        p_set = reference_set_probability(ps)
        for s in range(m):
            ratio = reference_loo_probability(ps, [s]) / p_set  # R(S, s)
            assert w[row, s].item() == pytest.approx(ps[s] * ratio, rel=1e-12)
            for t in range(m):
                second = 1.0 if t == s else reference_loo_probability(ps, [s, t]) / reference_loo_probability(ps, [s])
                assert r[row, s, t].item() == pytest.approx(ps[t] * second, rel=1e-12)
    torch.testing.assert_close(w.sum(1), torch.ones(3, dtype=torch.float64))  # P(first = s | S) sums to 1


def test_set_weights_do_not_underflow_on_configurations_of_a_large_model():
    """m = 4 configurations of 128 variables (vae-digits): p ≈ 1e-116, so p^4 underflows float64. The weights are
    finite, w sums to 1, and they equal the weights at p scaled up by e^250 (where the masses 1 − p(U) are 1 to
    within 1e-12, so q is homogeneous and w, r off the diagonal are scale-free); the diagonal of r is p itself."""
    gen = torch.Generator().manual_seed(1)
    log_p = torch.rand(5, 4, generator=gen, dtype=torch.float64) * 20 - 300  # n x m, p ≈ e^-300 … e^-280
    tables = _SubsetTables(4, "cpu")
    w, r = set_weights(log_p, tables)
    w_up, r_up = set_weights(log_p + 250, tables)
    assert torch.isfinite(w).all() and torch.isfinite(r).all()
    torch.testing.assert_close(w.sum(1), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(w, w_up, rtol=1e-9, atol=0)
    off = ~torch.eye(4, dtype=torch.bool)
    torch.testing.assert_close(r[:, off], r_up[:, off], rtol=1e-9, atol=0)
    torch.testing.assert_close(torch.diagonal(r, dim1=1, dim2=2), log_p.exp())


def all_ordered_samples(problem, m: int):
    """Every ordered sample without replacement of m configurations of SMALL, with its probability."""
    configs = configurations(2, 3)
    p = joint_probs(problem, configs).tolist()
    orders, probs = [], []
    for order in itertools.permutations(range(9), m):
        prob, used = 1.0, 0.0
        for i in order:
            prob *= p[i] / (1 - used)
            used += p[i]
        orders.append(order)
        probs.append(prob)
    return configs[torch.tensor(orders)], torch.tensor(probs, dtype=torch.float64)  # N x m x D, N


@pytest.mark.parametrize("m", [2, 3, 5])
def test_unordered_set_is_exactly_unbiased_over_every_sample_without_replacement(m):
    problem = problem_for("sum-target", SMALL)
    idx, prob = all_ordered_samples(problem, m)
    assert prob.sum().item() == pytest.approx(1.0, rel=1e-12)
    mean, variance = exact_moments(set_estimate(problem, idx), prob)
    torch.testing.assert_close(mean, problem.exact_grad, rtol=0, atol=1e-15)
    row = run("sum-target", "unordered-set", n=40_000, seed=3, task_params=SMALL, estimator_params={"m": m})
    assert_variance_matches(row, variance)


def test_unordered_set_without_the_self_term_of_its_baseline_is_biased(monkeypatch):
    # Broken on purpose: R^{D∖{s}}(S, s) = 0 instead of 1 drops p(s) f(s) from the baseline, whose conditional mean
    # given the first draw then depends on that draw.
    problem = problem_for("sum-target", SMALL)
    idx, prob = all_ordered_samples(problem, 3)
    tables = _SubsetTables(3, "cpu")
    original = set_weights

    def broken(log_p, t):
        w, r = original(log_p, t)
        return w, r * (1 - torch.eye(log_p.shape[1], dtype=r.dtype))

    monkeypatch.setattr("gradbench.estimators.unordered_set.set_weights", broken)
    mean, _ = exact_moments(set_estimate(problem, idx, tables), prob)
    row = run("sum-target", "unordered-set", n=100_000, seed=3, task_params=SMALL, estimator_params={"m": 3})
    assert (mean - problem.exact_grad).abs().max() > 1e-3
    assert row["bias_pvalue"] < 1e-6


def test_unordered_set_with_the_whole_space_is_the_exact_gradient():
    row = run("bernoulli", "unordered-set", n=2_000, seed=0, estimator_params={"m": 2})
    assert row["variance"] == 0.0 and row["bias_pvalue"] == 1.0
    tiny = {"dim": 2, "categories": 2}
    row = run(
        "sum-target", "unordered-set", n=2_000, seed=0, task_params=tiny, estimator_params={"m": 4}, dtype="float64"
    )
    assert row["variance"] < 1e-28 and row["bias"] < 1e-15


def beam_set_counts(logp: torch.Tensor, m: int, n: int, search=stochastic_beam_search) -> dict:
    gumbel = BlockRng(7, 0, [n]).gumbel(logp.shape[0], m, logp.shape[1], dtype=torch.float64)
    sets = search(logp, gumbel, m)  # n x m x D
    codes = (sets * (logp.shape[1] ** torch.arange(logp.shape[0]))).sum(-1).sort(-1).values  # n x m
    keys, counts = codes.unique(dim=0, return_counts=True)
    return {tuple(k.tolist()): int(c) for k, c in zip(keys, counts, strict=True)}


def chi_square_against_set_probabilities(counts: dict, problem, m: int, n: int) -> tuple[float, int]:
    configs = configurations(2, 3)
    codes = (configs * (3 ** torch.arange(2))).sum(-1)
    p = joint_probs(problem, configs)
    chi2 = 0.0
    sets = list(itertools.combinations(range(9), m))
    for subset in sets:
        expected = n * reference_set_probability([p[i].item() for i in subset])
        observed = counts.get(tuple(sorted(codes[list(subset)].tolist())), 0)
        chi2 += (observed - expected) ** 2 / expected
    return chi2, len(sets) - 1


def test_stochastic_beam_search_samples_sets_with_the_right_probabilities():
    problem = problem_for("sum-target", SMALL)
    logp = problem.theta.log_softmax(-1)
    n = 100_000
    for m in (2, 4):
        counts = beam_set_counts(logp, m, n)
        assert all(len(set(k)) == m for k in counts)  # distinct configurations only
        chi2, dof = chi_square_against_set_probabilities(counts, problem, m, n)
        assert chi2 < dof + 5 * math.sqrt(2 * dof), (m, chi2, dof)


def test_beam_search_without_the_truncated_gumbel_is_caught_by_the_frequency_test():
    # Broken on purpose: children keep their unconditioned Gumbel values (a greedy beam over independent noise).
    def greedy(logp, gumbel, m):
        n, D, _, K = gumbel.shape
        score = torch.zeros(n, 1, dtype=torch.float64)
        prefix = torch.zeros(n, 1, 0, dtype=torch.int64)
        for d in range(D):
            width = score.shape[1]
            child = (score[..., None] + logp[d] + gumbel[:, d, :width]).reshape(n, -1)
            best = child.topk(min(m, child.shape[1]), -1)
            prefix = torch.cat(
                [prefix.gather(1, (best.indices // K)[..., None].expand(-1, -1, d)), (best.indices % K)[..., None]], -1
            )
            score = best.values
        return prefix

    problem = problem_for("sum-target", SMALL)
    counts = beam_set_counts(problem.theta.log_softmax(-1), 2, 100_000, search=greedy)
    chi2, dof = chi_square_against_set_probabilities(counts, problem, 2, 100_000)
    assert chi2 > dof + 5 * math.sqrt(2 * dof)


def test_unordered_set_refuses_a_task_with_fewer_configurations_than_m():
    with pytest.raises(GradbenchError, match="K\\^D = 2"):
        prepare(CellSpec(task="bernoulli", estimator="unordered-set", estimator_params={"m": 3}))
    with pytest.raises(GradbenchError, match="m must be"):
        UnorderedSet(m=11)
    assert UnorderedSet(m=6).draws_per_estimate == 6
