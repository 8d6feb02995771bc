"""Routes to a fused relaxation chain, measured against the random-fill limit in one process (issue 15).

    python benchmarks/fusion_routes.py [--n 2048] [--reps 200]

For the Gumbel-Softmax estimate on the benchmark problem (quadratic D = 20, K = 10, float32, τ = 0.5, one chunk of n
estimates, 1 thread) it times, per chunk and in units of one ``Tensor.uniform_()`` fill of [n, D, K]:

- ``uniforms``: gradbench's uniform draws alone (``BlockRng.uniform``): what every route must still pay to keep
  the same numbers for the same seed;
- ``eager``: gradbench's estimator (``gumbel``) as shipped: uniforms + transform + softmax + Jacobian product;
- ``compiled``: the same chain after the uniforms (clamp, two logs, shift, exp, row sum, divide, ∂f/∂z, Jacobian
  product) as one function through ``torch.compile`` (Inductor's C++/OpenMP CPU code generation, default mode),
  given the same uniforms; its compile time is reported separately, and whether it returns the same numbers.

It prints one line per route; nothing is written.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from gradbench.rng import BlockRng
    from gradbench.runner import CellSpec, prepare

    cell = prepare(CellSpec(task="quadratic", estimator="gumbel", estimator_params={"tau": 0.5}))
    problem, estimator, tau = cell.problem, cell.estimator, 0.5
    theta, task = problem.theta, problem.task
    n, (D, K) = args.n, theta.shape
    sizes = [cell.block_size] * (n // cell.block_size)
    gen = torch.Generator().manual_seed(0)
    buf = torch.empty(n, D, K)

    def timed(fn) -> float:
        fn()
        t0 = time.perf_counter()
        for _ in range(args.reps):
            fn()
        return (time.perf_counter() - t0) / args.reps

    info = torch.finfo(torch.float32)

    def chain(u: torch.Tensor) -> torch.Tensor:  # u n x D x K -> n x D x K estimates
        w = u.clamp(info.tiny, 1.0 - info.eps).log().neg().log()  # −G
        y = (theta - w) / tau
        e = (y - y.amax(-1, keepdim=True)).exp()
        s = e / e.sum(-1, keepdim=True)  # z̃
        v = task.f_grad(s)  # ∂f/∂z
        return s * (v - (s * v).sum(-1, keepdim=True)) / tau

    fill = timed(lambda: buf.uniform_(generator=gen))
    rows = {"uniforms": timed(lambda: BlockRng(0, 0, sizes).uniform(D, K))}
    rows["eager (shipped)"] = timed(lambda: estimator.estimate(problem, BlockRng(0, 0, sizes)))
    u = BlockRng(0, 0, sizes).uniform(D, K)
    rows["eager chain, given u"] = timed(lambda: chain(u))
    t0 = time.perf_counter()
    try:
        compiled = torch.compile(chain, dynamic=False)
        compiled(u)
        compile_s = time.perf_counter() - t0
        rows["compiled chain, given u"] = timed(lambda: compiled(u))
        same = torch.equal(compiled(u), chain(u))
        close = torch.allclose(compiled(u), chain(u), rtol=1e-5, atol=1e-6)
    except Exception as exc:  # no compiler, unsupported platform
        compile_s, same, close = float("nan"), False, False
        print(f"torch.compile failed: {type(exc).__name__}: {exc}")
    print(f"fill [{n}, {D}, {K}]: {fill * 1e3:.2f} ms; load average {__import__('os').getloadavg()[0]:.1f}")
    for name, seconds in rows.items():
        print(f"{name:26s} {seconds * 1e3:8.2f} ms  {seconds / fill:5.2f} fills  {n / seconds / 1e6:6.3f} M est/s")
    print(f"compile time {compile_s:.1f} s; compiled == eager bit for bit: {same}; within 1e-5: {close}")


if __name__ == "__main__":
    main()
