"""Where a Gumbel-Softmax / ST-Gumbel cell spends its time, stage by stage, in units of one uniform fill.

    python benchmarks/profile_relaxations.py [--reps 100]

One chunk of the runner's size (2 blocks of 1,024 estimates on quadratic D = 20, K = 10, float32, τ = 0.5, 1 thread)
is pushed through the stages of ``gumbel``'s and ``st-gumbel``'s estimate and of the runner's float64 statistics,
each timed on its own input (so the stages add up to about the whole, up to cache effects); the unit is one
``Tensor.uniform_()`` fill of [n, D, K], the benchmark's limit. Nothing is written.
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from gradbench.fast import grad_f, perturbed_logits, row_max, row_sum, shifted_exp_and_hard_, softmax_vjp_
    from gradbench.rng import BlockRng
    from gradbench.runner import CellSpec, prepare
    from gradbench.stats import GROUPS, GroupedMoments

    cell = prepare(CellSpec(task="quadratic", estimator="gumbel", estimator_params={"tau": 0.5}))
    problem, tau = cell.problem, 0.5
    theta, task = problem.theta, problem.task
    sizes = [cell.block_size] * cell.chunk_blocks
    n, (D, K) = sum(sizes), theta.shape
    buf = torch.empty(n, D, K)
    gen = torch.Generator().manual_seed(0)

    def timed(fn) -> float:
        fn()
        t0 = time.perf_counter()
        for _ in range(args.reps):
            fn()
        return (time.perf_counter() - t0) / args.reps

    rng = lambda: BlockRng(0, 0, sizes)  # noqa: E731
    u = rng().uniform(D, K)
    y = perturbed_logits(theta, rng(), tau)
    e = y.exp()
    soft = e / e.sum(-1, keepdim=True)
    v = grad_f(task, soft)
    est = softmax_vjp_(soft.clone(), v.clone(), tau, sizes)
    moments = GroupedMoments(D * K, GROUPS)
    exact = problem.exact_grad.reshape(-1)
    stages = {
        "uniforms (BlockRng.uniform)": lambda: rng().uniform(D, K),
        "clamp into (0, 1)": lambda: u.clone().clamp_(1e-38, 1 - 2**-23),
        "Gumbel: log, neg, log": lambda: u.clone().log_().neg_().log_(),
        "(θ − w)/τ": lambda: torch.add(theta / tau, y, alpha=-1.0 / tau),
        "row max + subtract (st-gumbel)": lambda: y.clone().sub_(row_max(y)),
        "exp": lambda: y.exp(),
        "row sum + divide": lambda: e.clone().div_(row_sum(e, sizes)),
        "∂f/∂z (task.f_grad)": lambda: grad_f(task, soft),
        "hard one-hot (st-gumbel)": lambda: shifted_exp_and_hard_(y.clone()),
        "Jacobian product": lambda: softmax_vjp_(soft, v.clone(), tau, sizes),
        "float64 statistics": lambda: [
            moments.update(est.reshape(n, -1)[i * sizes[0] : (i + 1) * sizes[0]], 0, exact) for i in range(len(sizes))
        ],
    }
    clone = timed(lambda: u.clone())
    fill = timed(lambda: buf.uniform_(generator=gen))
    whole = {
        "gumbel estimate (whole)": lambda: cell.estimator.estimate(problem, rng()),
    }
    st = prepare(CellSpec(task="quadratic", estimator="st-gumbel", estimator_params={"tau": 0.5}))
    whole["st-gumbel estimate (whole)"] = lambda: st.estimator.estimate(st.problem, rng())
    print(f"chunk n = {n}, fill {fill * 1e3:.2f} ms, load average {os.getloadavg()[0]:.1f}; clone (subtracted "
          f"where a stage works on a copy) {clone / fill:.2f} fills")  # fmt: skip
    for name, fn in stages.items():
        t = timed(fn)
        if "clone" in str(fn.__code__.co_names) or name.startswith(("clamp", "Gumbel", "row max", "row sum", "hard")):
            t -= clone
        print(f"{name:34s} {t / fill:5.2f} fills")
    for name, fn in whole.items():
        print(f"{name:34s} {timed(fn) / fill:5.2f} fills")


if __name__ == "__main__":
    main()
