"""Issue 15's third route, measured: a numba kernel that fuses a whole Gumbel-Softmax estimate and its statistics.

    python benchmarks/numba_route.py [--n 200000] [--repeats 5]

numba is not a dependency of gradbench: this script evaluates the route (``pip install numba`` first). On the
benchmark problem (quadratic, D = 20, K = 10, τ = 0.5, float32, 1 thread) it times, interleaved, per estimate:

- **fill**: ``Tensor.uniform_`` into a preallocated [n, D, K] float32 tensor (``gradbench bench``'s limit);
- **fused (torch uniforms)**: one ``@njit(fastmath=True)`` loop over estimates and variables that reads the
  uniforms torch drew and computes G = −log(−log U), y = (θ + G)/τ, the shifted softmax z, f's gradient
  v = 2(z − c), the relaxed estimate g = z ⊙ (v − ⟨z, v⟩)/τ and folds g and g² into float64 sums — every pass
  over [n, D, K] after the draws in one sweep; this path keeps gradbench's random numbers;
- **fused (own RNG)**: the same loop drawing its uniforms inside (numba's per-thread Mersenne Twister): no
  separate fill pass, but a different random stream than torch's (the baseline's numbers would all change);
- **gradbench**: the runner's own whole cell at the same n (``gradbench.run``), as ``bench`` measures it.

It prints each path's estimates per second and its rate as a fraction of the fill limit (issue 15's
"ours / limit"), and checks that the fused estimates have the runner's mean (same distribution) within 5 SE.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch


def build_kernels():
    from numba import njit

    @njit(fastmath=True, cache=False)
    def fold_relaxed(y, m, target, d, tau, s1, s2):  # y: K logits (θ + G)/τ of variable d, m their max
        K = y.shape[0]
        total = 0.0
        for k in range(K):
            y[k] = math.exp(y[k] - m)
            total += y[k]
        dot = 0.0  # ⟨z, v⟩ with v = ∂f/∂z = 2 (z − c)
        for k in range(K):
            y[k] /= total
            dot += y[k] * 2.0 * (y[k] - target[d, k])
        for k in range(K):  # g = z ⊙ (v − ⟨z, v⟩) / τ, folded into float64 sums
            grad = y[k] * (2.0 * (y[k] - target[d, k]) - dot) / tau
            s1[d, k] += grad
            s2[d, k] += grad * grad

    @njit(fastmath=True, cache=False)
    def fused_from_uniforms(u, theta, target, tau, s1, s2):  # u: n x D x K float32; s1, s2: D x K float64
        n, D, K = u.shape
        y = np.empty(K, np.float32)
        for i in range(n):
            for d in range(D):
                m = -np.inf
                for k in range(K):
                    y[k] = (theta[d, k] - math.log(-math.log(u[i, d, k]))) / tau
                    m = max(m, y[k])
                fold_relaxed(y, m, target, d, tau, s1, s2)

    @njit(fastmath=True, cache=False)
    def fused_own_rng(n, theta, target, tau, s1, s2, seed):
        np.random.seed(seed)
        D, K = theta.shape
        y = np.empty(K, np.float32)
        for _ in range(n):
            for d in range(D):
                m = -np.inf
                for k in range(K):
                    uu = np.random.random() * (1 - 2.0**-24) + 2.0**-25
                    y[k] = (theta[d, k] - math.log(-math.log(uu))) / tau
                    m = max(m, y[k])
                fold_relaxed(y, m, target, d, tau, s1, s2)

    return fused_from_uniforms, fused_own_rng


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    try:
        fused_from_uniforms, fused_own_rng = build_kernels()
    except ImportError:
        raise SystemExit("numba is not installed: pip install numba (this script only evaluates the route)") from None
    torch.set_num_threads(1)
    from numba import set_num_threads

    set_num_threads(1)
    from gradbench.api import run
    from gradbench.registry import get_task

    task = get_task("quadratic")()
    theta = task.initial_logits().numpy().astype(np.float32)  # D x K
    target = task.target.numpy().astype(np.float32)
    D, K, tau, n = task.D, task.K, 0.5, args.n
    buffer = torch.empty((n, D, K), dtype=torch.float32)
    s1, s2 = np.zeros((D, K)), np.zeros((D, K))
    t0 = time.perf_counter()
    fused_from_uniforms(buffer[:2].uniform_().numpy(), theta, target, tau, s1, s2)  # compile
    fused_own_rng(2, theta, target, tau, s1, s2, 0)
    compile_s = time.perf_counter() - t0
    run("gumbel", "quadratic", tau=tau, samples=20_000, seed=0)  # warm

    rates: dict[str, list[float]] = {"fill": [], "fused (torch uniforms)": [], "fused (own RNG)": [], "gradbench": []}
    for r in range(args.repeats):
        t = time.perf_counter()
        buffer.uniform_()
        fill = time.perf_counter() - t
        rates["fill"].append(n / fill)
        s1[:], s2[:] = 0, 0
        t = time.perf_counter()
        buffer.uniform_()
        fused_from_uniforms(buffer.numpy(), theta, target, tau, s1, s2)
        rates["fused (torch uniforms)"].append(n / (time.perf_counter() - t))
        mean_fused, var_fused = s1 / n, s2 / n - (s1 / n) ** 2
        o1, o2 = np.zeros((D, K)), np.zeros((D, K))
        t = time.perf_counter()
        fused_own_rng(n, theta, target, tau, o1, o2, r)
        rates["fused (own RNG)"].append(n / (time.perf_counter() - t))
        t = time.perf_counter()
        row = run("gumbel", "quadratic", tau=tau, samples=n, seed=r)
        rates["gradbench"].append(n / (time.perf_counter() - t))
    print(f"quadratic D = {D}, K = {K}, τ = {tau}, float32, n = {n:,}, 1 thread; numba compile {compile_s:.1f} s;")
    print(f"load average {tuple(round(x, 2) for x in __import__('os').getloadavg())}; median of {args.repeats}")
    limit = statistics.median(rates["fill"])
    print("| path | estimates/s | / fill limit |")
    print("|---|---|---|")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"| {name} | {rate:,.0f} | {rate / limit:.2f} |")
    # the same distribution as the runner: the fused estimates' bias against g* matches the runner's within noise
    se = np.sqrt(np.maximum(var_fused, 0.0) / n)  # D x K
    fused_bias = float(np.linalg.norm(mean_fused - _exact_gradient()))
    print(
        f"‖bias‖: fused {fused_bias:.4g}, runner {row['bias']:.4g}, noise scale ‖SE‖ = {float(np.linalg.norm(se)):.2g}"
    )


def _exact_gradient() -> np.ndarray:
    from gradbench.registry import get_task
    from gradbench.runner import cached_exact_gradient

    value, grad = cached_exact_gradient(get_task("quadratic")())
    return grad.numpy()


if __name__ == "__main__":
    main()
