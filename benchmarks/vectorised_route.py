"""Issue 15's remaining route, measured: a fused Gumbel-Softmax kernel with a counter-based RNG and vectorisable math.

    python benchmarks/vectorised_route.py [--n 400000] [--repeats 5]

``benchmarks/numba_route.py`` showed that a fused *scalar* loop loses to gradbench's torch kernels: numba's
``math.log``/``math.exp`` do not vectorise without Intel's SVML, and numba's Mersenne Twister is scalar. This script
measures the route that note left open — everything vectorisable by LLVM without SVML:

- random bits from **Philox-4x32-10** (Salmon, Moraes, Dror & Shaw 2011, "Parallel random numbers: as easy as
  1, 2, 3", SC'11), counter-based, checked against the Random123 known-answer vectors before anything is timed;
- **log and exp as polynomials** in plain float32 arithmetic plus exponent bit manipulation (the Cephes ``logf``
  and ``expf`` coefficients, Moshier 1992), so LLVM can vectorise them (AVX2: 8 lanes);
- the whole estimate in one pass per cache-sized slab: uniforms, G = −log(−log U), the softmax with a constant
  shift, f's gradient v = 2(z − c) for the quadratic task, g = z ⊙ (v − ⟨z, v⟩)/τ, and float64 sums of g and g²;
- and the route's shippable shape (``C++ strict, split``): the kernel only draws z̃; the task's ∂f/∂z, the Jacobian
  product and the grouped statistics stay gradbench's torch code.

Two numba builds: ``strict`` (no fast-math: every operation rounded as written, so a numpy fallback could reproduce
its numbers bit for bit) and ``fast-math`` (contraction into fused multiply-adds, reassociation: faster, not
reproducible by a fallback without FMA); and, where ``g++`` is on the PATH, the same kernel in C++
(``benchmarks/vectorised_route.cpp``, loaded with ctypes) built the same two ways (``-ffp-contract=off
-fno-math-errno -fno-trapping-math``, which change no result, and ``-ffast-math``, both ``-O3 -march=native``): the
"small C++ extension" route, compiled here in about a second without torch's headers. numba is not a dependency of
gradbench (``pip install numba`` first). On the benchmark problem (quadratic, D = 20, K = 10, τ = 0.5, float32, 1
thread) it prints, interleaved over repeats, estimates per second and the rate as a fraction of the fill limit
(``Tensor.uniform_`` into [n, D, K]) for: the fill, each build, and gradbench's own cell (``gradbench.api.run``);
and checks each build's bias against g* within noise.
Nothing is written.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# Random123's known-answer vectors for philox4x32-10: (counter, key) -> output
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]
SLAB = 64  # estimates per slab: 64 x 200 float32 = 50 KiB of scratch, L2-resident


def build(fastmath):
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic

    @intrinsic
    def f32_bits(typingctx, x):
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.IntType(32))

        return types.int32(types.float32), codegen

    @intrinsic
    def bits_f32(typingctx, x):
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.FloatType())

        return types.float32(types.int32), codegen

    F = np.float32
    M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
    W0, W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
    LOW = np.uint64(0xFFFFFFFF)
    S32 = np.uint64(32)

    @njit(inline="always", fastmath=fastmath)
    def philox(c0, c1, c2, c3, k0, k1):
        for _ in range(10):
            p0 = np.uint64(c0) * M0
            p1 = np.uint64(c2) * M1
            c0, c1, c2, c3 = (
                np.uint32(p1 >> S32) ^ c1 ^ k0,
                np.uint32(p1 & LOW),
                np.uint32(p0 >> S32) ^ c3 ^ k1,
                np.uint32(p0 & LOW),
            )
            k0, k1 = np.uint32(k0 + W0), np.uint32(k1 + W1)
        return c0, c1, c2, c3

    @njit(inline="always", fastmath=fastmath)
    def logf(x):  # x > 0 normal; Cephes logf, |rel. error| < 1e-7 on (0, 20]
        i = f32_bits(x)
        e = (i >> 23) - 127
        m = bits_f32((i & 0x007FFFFF) | 0x3F800000)  # [1, 2)
        big = m > F(1.41421356)
        m = m * F(0.5) if big else m
        ef = F(e + 1) if big else F(e)
        x = m - F(1.0)
        z = x * x
        y = F(7.0376836292e-2) * x - F(1.1514610310e-1)
        y = y * x + F(1.1676998740e-1)
        y = y * x - F(1.2420140846e-1)
        y = y * x + F(1.4249322787e-1)
        y = y * x - F(1.6668057665e-1)
        y = y * x + F(2.0000714765e-1)
        y = y * x - F(2.4999993993e-1)
        y = y * x + F(3.3333331174e-1)
        y = y * x * z + F(-2.12194440e-4) * ef - F(0.5) * z
        return x + y + F(0.693359375) * ef

    @njit(inline="always", fastmath=fastmath)
    def expf(x):  # Cephes expf on [-87, 88]
        x = max(x, F(-87.0))
        fx = math.floor(x * F(1.44269504088896341) + F(0.5))
        x = x - fx * F(0.693359375) - fx * F(-2.12194440e-4)
        y = F(1.9875691500e-4) * x + F(1.3981999507e-3)
        y = y * x + F(8.3334519073e-3)
        y = y * x + F(4.1665795894e-2)
        y = y * x + F(1.6666665459e-1)
        y = y * x + F(5.0000001201e-1)
        y = y * (x * x) + x + F(1.0)
        return y * bits_f32((np.int32(fx) + 127) << 23)

    @njit(cache=False, fastmath=fastmath, boundscheck=False)
    def kat(c, k):
        u32 = np.uint32
        return philox(u32(c[0]), u32(c[1]), u32(c[2]), u32(c[3]), u32(k[0]), u32(k[1]))

    @njit(cache=False, fastmath=fastmath, boundscheck=False)
    def fused(n, base, inv_tau, target, K, key0, key1, s1, s2):
        """n estimates; base: P = D·K float32, (θ − max θ_d − G_max)/τ; target: P float32; s1, s2: P float64."""
        P = base.shape[0]
        scratch = np.empty(SLAB * P, np.float32)
        words = SLAB * P // 4
        for slab in range(n // SLAB):
            for j in range(words):  # uniforms on the midpoint grid (k + 1/2)·2⁻²⁴, never 0 or 1
                a, b, c, d = philox(np.uint32(j), np.uint32(slab), np.uint32(0), np.uint32(0), key0, key1)
                scratch[4 * j] = F(a >> np.uint32(8)) * F(2.0**-24) + F(2.0**-25)
                scratch[4 * j + 1] = F(b >> np.uint32(8)) * F(2.0**-24) + F(2.0**-25)
                scratch[4 * j + 2] = F(c >> np.uint32(8)) * F(2.0**-24) + F(2.0**-25)
                scratch[4 * j + 3] = F(d >> np.uint32(8)) * F(2.0**-24) + F(2.0**-25)
            for i in range(SLAB):  # e = exp((θ + G)/τ − c_d), G = −log(−log U)
                row = i * P
                for p in range(P):
                    scratch[row + p] = expf(base[p] - logf(-logf(scratch[row + p])) * inv_tau)
            for r in range(SLAB * P // K):  # softmax, v = 2(z − c), g = z ⊙ (v − ⟨z, v⟩)/τ, float64 sums
                row = r * K
                p0 = row % P
                total = F(0.0)
                for k in range(K):
                    total += scratch[row + k]
                dot = F(0.0)
                for k in range(K):
                    z = scratch[row + k] / total
                    scratch[row + k] = z
                    dot += z * (F(2.0) * (z - target[p0 + k]))
                for k in range(K):
                    z = scratch[row + k]
                    g = np.float64(z * (F(2.0) * (z - target[p0 + k]) - dot) * inv_tau)
                    s1[p0 + k] += g
                    s2[p0 + k] += g * g

    return kat, fused


def build_cpp(folder: str) -> dict[str, tuple]:
    """The C++ kernel built strict and fast-math: {name: (kat, fused)} with numba-like call signatures."""
    if shutil.which("g++") is None:
        return {}
    source = Path(__file__).with_suffix(".cpp")
    builds = {}
    strict = ["-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
    for name, flags in (("C++ strict", strict), ("C++ fast-math", ["-ffast-math"])):
        library = os.path.join(folder, name.replace(" ", "_") + ".so")
        command = ["g++", "-O3", "-march=native", *flags, "-shared", "-fPIC", "-o", library, str(source)]
        subprocess.run(command, check=True)
        lib = ctypes.CDLL(library)
        lib.kat.argtypes = [ctypes.c_void_p] * 3
        lib.fused.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_float, ctypes.c_void_p, ctypes.c_int64,
                              ctypes.c_int64, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p,
                              ctypes.c_void_p, ctypes.c_int64]  # fmt: skip

        def kat(counter, key, lib=lib):
            out = np.zeros(4, np.uint32)
            lib.kat(counter.ctypes.data, key.ctypes.data, out.ctypes.data)
            return out

        def fused(n, base, inv_tau, target, K, key0, key1, s1, s2, lib=lib):
            scratch = np.empty(SLAB * base.shape[0], np.float32)
            lib.fused(n, base.ctypes.data, float(inv_tau), target.ctypes.data, base.shape[0], K, int(key0), int(key1),
                      s1.ctypes.data, s2.ctypes.data, scratch.ctypes.data, SLAB)  # fmt: skip

        builds[name] = (kat, fused)
        if name == "C++ strict":
            lib.relaxed.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_float, ctypes.c_int64, ctypes.c_int64,
                                    ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_int64]  # fmt: skip
            builds["C++ strict, split"] = (kat, _split_route(lib))
    return builds


def _split_route(lib):
    """The shippable shape of the route: the C++ kernel draws z̃ chunk by chunk; ∂f/∂z (the task's own code), the
    Jacobian product and the grouped float64 statistics stay gradbench's torch code (``gradbench.fast``,
    ``gradbench.stats``), exactly as the runner calls them."""
    from gradbench.fast import grad_f, softmax_vjp_
    from gradbench.registry import get_task
    from gradbench.runner import cached_exact_gradient
    from gradbench.stats import GROUPS, GroupedMoments

    task = get_task("quadratic")()
    exact = cached_exact_gradient(task)[1].reshape(-1).double()  # P, float64

    def fused(n, base, inv_tau, target, K, key0, key1, s1, s2):
        P = base.shape[0]
        chunk, block = 2048, 1024
        moments = GroupedMoments(P, GROUPS)
        z = torch.empty(chunk, task.D, task.K)  # reused, as the runner's allocator does
        for start in range(0, n - chunk + 1, chunk):
            lib.relaxed(chunk, base.ctypes.data, float(inv_tau), P, K, int(key0), int(key1) + start, z.data_ptr(), SLAB)
            g = softmax_vjp_(z, grad_f(task, z), 1 / float(inv_tau), [block, block]).reshape(chunk, P)
            moments.update(g[:block], start, exact)
            moments.update(g[block:], start + block, exact)
        count, mean_dev, m2 = moments.pooled()
        mean = (mean_dev + exact).numpy()  # the mean estimate
        s1[:] = mean * n  # so that the caller's s1/n is the mean and s2/n − mean² the variance
        s2[:] = (m2.numpy() / max(count, 1) + mean**2) * n

    return fused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=400_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    try:
        builds = {"numba strict": build(False), "numba fast-math": build(True)}
    except ImportError:
        raise SystemExit("numba is not installed: pip install numba (this script only evaluates the route)") from None
    folder = tempfile.mkdtemp(prefix="gradbench-route-")
    t0 = time.perf_counter()
    builds.update(build_cpp(folder))
    cpp_s = time.perf_counter() - t0
    torch.set_num_threads(1)
    from numba import set_num_threads

    from gradbench.api import run
    from gradbench.registry import get_task
    from gradbench.runner import cached_exact_gradient

    set_num_threads(1)
    for name, (kat, _) in builds.items():
        for counter, key, expected in PHILOX_KAT:
            got = tuple(int(v) for v in kat(np.array(counter, np.uint32), np.array(key, np.uint32)))
            if got != expected:
                raise SystemExit(f"Philox-4x32-10 ({name}) fails its known-answer test: {got} != {expected}")
    task = get_task("quadratic")()
    D, K, tau = task.D, task.K, 0.5
    n = args.n // 2048 * 2048  # whole chunks of the split route (and whole slabs)
    theta = task.initial_logits().double()  # D x K
    g_max = -math.log(-math.log1p(-(2.0**-25)))  # the largest Gumbel draw on the midpoint grid
    base = ((theta - theta.amax(-1, keepdim=True) - g_max) / tau).reshape(-1).numpy().astype(np.float32)  # P
    target = task.target.reshape(-1).numpy().astype(np.float32)  # P
    exact = cached_exact_gradient(task)[1].reshape(-1).numpy()  # P
    t0 = time.perf_counter()
    for _, fused in builds.values():  # numba compiles on the first call
        fused(SLAB, base, np.float32(1 / tau), target, K, np.uint32(1), np.uint32(2), np.zeros(D * K), np.zeros(D * K))
    compile_s = time.perf_counter() - t0
    run("gumbel", "quadratic", tau=tau, samples=20_000, seed=0)  # warm
    buffer = torch.empty((n, D, K), dtype=torch.float32)
    rates: dict[str, list[float]] = {"fill": [], **{name: [] for name in builds}, "gradbench": []}
    bias: dict[str, float] = {}
    noise = 0.0
    for r in range(args.repeats):
        t = time.perf_counter()
        buffer.uniform_()
        rates["fill"].append(n / (time.perf_counter() - t))
        for name, (_, fused) in builds.items():
            s1, s2 = np.zeros(D * K), np.zeros(D * K)
            t = time.perf_counter()
            fused(n, base, np.float32(1 / tau), target, K, np.uint32(r), np.uint32(12345), s1, s2)
            rates[name].append(n / (time.perf_counter() - t))
            mean = s1 / n
            bias[name] = float(np.linalg.norm(mean - exact))
            noise = float(np.linalg.norm(np.sqrt(np.maximum(s2 / n - mean**2, 0.0) / n)))
        t = time.perf_counter()
        row = run("gumbel", "quadratic", tau=tau, samples=n, seed=r)
        rates["gradbench"].append(n / (time.perf_counter() - t))
    limit = statistics.median(rates["fill"])
    shutil.rmtree(folder, ignore_errors=True)
    print(f"quadratic D = {D}, K = {K}, τ = {tau}, float32, n = {n:,}, 1 thread; numba compile {compile_s:.1f} s, "
          f"g++ {cpp_s:.1f} s; load average {os.getloadavg()[0]:.2f}; medians of {args.repeats} repeats")  # fmt: skip
    print(f"Philox-4x32-10 matches Random123's known-answer vectors ({', '.join(builds)})")
    print("| path | estimates/s | / fill limit | ‖bias‖ |")
    print("|---|---|---|---|")
    for name, values in rates.items():
        rate = statistics.median(values)
        shown = {"gradbench": f"{row['bias']:.4g}", "fill": "—"}.get(name, f"{bias.get(name, float('nan')):.4g}")
        print(f"| {name} | {rate:,.0f} | {rate / limit:.2f} | {shown} |")
    print(f"noise scale of ‖bias‖ (‖SE‖): {noise:.2g}")


if __name__ == "__main__":
    main()
