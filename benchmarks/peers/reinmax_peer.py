"""Cross-check gradbench's ``reinmax`` against the authors' package (``reinmax`` on PyPI) and the exact answer.

    pip install --no-deps reinmax          # the peer needs only torch; --no-deps keeps pip away from torch
    python benchmarks/peers/reinmax_peer.py [--samples 1000000]

For each (task, τ) it measures, on the same θ and with the same metrics (gradbench.stats):
- ours: the ``reinmax`` estimator, n estimates drawn in chunks from block-seeded generators;
- the peer: ``reinmax.reinmax(logits, tau)`` on an n x D x K leaf of θ (the peer samples with ``torch.multinomial``
  from the global generator, seeded here), one backward pass of Σ_i f(sample_i) giving the n per-draw gradients;
- exact: ReinMax's own mean and variance by enumerating the K^D hard samples (the estimate is deterministic given
  the sample), and the true gradient g*.
It prints one line per case: bias ‖ĝ − g*‖, bias p-value and variance for ours and the peer, next to the exact
bias and variance of ReinMax, and the largest per-component z-scores of ours and the peer against ReinMax's exact
mean and against each other (about 3 or less when they agree, over 2 to 24 components).
"""

from __future__ import annotations

import argparse
import itertools

import torch

from gradbench.estimators.st import grad_at, softmax_vjp
from gradbench.rng import BlockRng
from gradbench.runner import CellSpec, prepare
from gradbench.stats import GROUPS, GroupedMoments, compute_metrics

CASES = [
    ("bernoulli", {}, 1.0),
    ("bernoulli", {"target": 0.3, "logit": -1.0}, 1.0),
    ("bernoulli", {"target": 0.3, "logit": -1.0}, 2.0),
    ("sum-target", {}, 1.0),
    ("sum-target", {}, 2.0),
]
CHUNK = 1 << 16  # a multiple of the replicate-group count


def exact_reinmax(task, tau: float) -> tuple[torch.Tensor, float]:
    """(E[g] over the exact law of the hard sample, trace of Cov g), by enumeration in float64."""
    theta = task.initial_logits()  # D x K
    idx = torch.tensor(list(itertools.product(range(task.K), repeat=task.D)))  # C x D
    z = torch.nn.functional.one_hot(idx, task.K).to(theta)  # C x D x K
    p = theta.softmax(-1)
    weight = (z * p).sum(-1).prod(-1)  # C
    v = grad_at(task, z)
    g = 2 * softmax_vjp(0.5 * ((theta / tau).softmax(-1) + z), v) - 0.5 * softmax_vjp(p, v)  # C x D x K
    mean = (weight[:, None, None] * g).sum(0)
    return mean, float((weight[:, None, None] * (g - mean).square()).sum())


def stream(estimates, exact_grad: torch.Tensor, n: int):
    """Metrics and pooled (mean, M2) of n estimates produced chunk by chunk by ``estimates(size, chunk_index)``."""
    exact_flat = exact_grad.reshape(-1)
    moments = GroupedMoments(exact_flat.numel(), GROUPS)
    for i, start in enumerate(range(0, n, CHUNK)):
        size = min(CHUNK, n - start)
        moments.update(estimates(size, i).reshape(size, -1).double() - exact_flat, start)
    _, mean_dev, m2 = moments.pooled()
    return compute_metrics(moments, exact_flat, torch.finfo(torch.float32).eps), exact_flat + mean_dev, m2 / (n - 1)


def compare(task_name: str, task_params: dict, tau: float, n: int, seed: int = 0) -> dict:
    """One case: ours, the peer (both float32, n estimates), and the exact ReinMax moments."""
    from reinmax import reinmax

    cell = prepare(
        CellSpec(task=task_name, estimator="reinmax", task_params=task_params, estimator_params={"tau": tau})
    )
    task, problem, exact_grad = cell.task, cell.problem, cell.problem.exact_grad
    ours, ours_mean, ours_var = stream(
        lambda size, i: cell.estimator.estimate(problem, BlockRng(seed, i, [size])), exact_grad, n
    )

    def peer_estimates(size: int, i: int) -> torch.Tensor:
        leaf = problem.theta.expand(size, *problem.theta.shape).clone().requires_grad_(True)  # n x D x K
        sample, _ = reinmax(leaf, tau)  # one-hot forward, ReinMax backward
        (grad,) = torch.autograd.grad(task.f(sample).sum(), leaf)
        return grad

    torch.manual_seed(seed)  # the peer draws with torch.multinomial from the global generator
    peer, peer_mean, peer_var = stream(peer_estimates, exact_grad, n)
    mean, variance = exact_reinmax(task, tau)
    mean = mean.reshape(-1)

    def max_z(a, b, var):  # largest per-component |a − b| in standard errors
        return ((a - b).abs() / (var / n).sqrt().clamp(min=1e-300)).max().item()

    return {
        "task": task.describe(),
        "tau": tau,
        "exact_bias": float((mean - exact_grad.reshape(-1)).norm()),
        "exact_variance": variance,
        "ours": ours,
        "peer": peer,
        "ours_z": max_z(ours_mean, mean, ours_var),
        "peer_z": max_z(peer_mean, mean, peer_var),
        "ours_vs_peer_z": max_z(ours_mean, peer_mean, ours_var + peer_var),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        "| task | τ | exact ReinMax bias | exact ReinMax variance | ours: bias, p, variance | peer: bias, p, variance "
        "| max z: ours vs exact mean, peer vs exact mean, ours vs peer |"
    )
    print("|---|---|---|---|---|---|---|")
    for task_name, params, tau in CASES:
        r = compare(task_name, params, tau, args.samples, args.seed)
        o, q = r["ours"], r["peer"]
        print(
            f"| {r['task']} | {tau:g} | {r['exact_bias']:.3g} | {r['exact_variance']:.5g} "
            f"| {o.bias:.3g}, {o.bias_pvalue:.3g}, {o.variance:.5g} ± {o.variance_se:.2g} "
            f"| {q.bias:.3g}, {q.bias_pvalue:.3g}, {q.variance:.5g} ± {q.variance_se:.2g} "
            f"| {r['ours_z']:.2f}, {r['peer_z']:.2f}, {r['ours_vs_peer_z']:.2f} |"
        )
    print(f"(n = {args.samples:,} estimates each, seed {args.seed}, 1 torch thread, float32)")


if __name__ == "__main__":
    main()
