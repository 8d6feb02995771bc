"""Every estimator on a CUDA GPU (skipped where torch sees none): runs, reproducible, chunk-independent, unbiased."""

from __future__ import annotations

import math

import pytest
import torch

from gradbench.bench import BenchConfig, run_benchmark
from gradbench.rng import BlockRng
from tests.helpers import ESTIMATORS, compatible_pairs, run, without_timing

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize(("estimator", "task"), compatible_pairs())
def test_every_estimator_runs_on_cuda_and_does_not_depend_on_chunk_size(estimator, task):
    # 140,000 estimates are at least 3 of the (larger) CUDA blocks on every built-in task.
    rows = [without_timing(run(task, estimator, n=140_000, seed=3, device="cuda", chunk_size=c)) for c in (1, None)]
    assert rows[0] == rows[1]
    assert rows[0]["device"].startswith("cuda")
    assert math.isfinite(rows[0]["variance"])


@pytest.mark.parametrize("estimator", [n for n, c in ESTIMATORS.items() if c.unbiased])
def test_declared_unbiased_estimators_are_unbiased_on_cuda(estimator):
    assert run("sum-target", estimator, n=200_000, seed=11, device="cuda")["bias_pvalue"] > 1e-3


def test_cuda_agrees_with_cpu_statistically():
    cpu = run("quadratic", "gumbel", n=200_000, seed=1)
    gpu = run("quadratic", "gumbel", n=200_000, seed=1, device="cuda")
    assert abs(gpu["variance"] - cpu["variance"]) < 5 * math.hypot(cpu["variance_se"], gpu["variance_se"])


def test_uniforms_on_cuda_are_in_range():
    u = BlockRng(0, 0, [4096, 4096], "cuda").open_uniform(10)
    assert u.device.type == "cuda" and float(u.min()) > 0 and float(u.max()) < 1


def test_benchmark_runs_on_cuda():
    config = BenchConfig(
        samples=4096, repeats=1, naive_seconds=0.02, stock_samples=2048, memory_samples=(4096, 40_960), device="cuda"
    )
    rows, _ = run_benchmark(config)
    for row in rows:
        assert row["device"].startswith("cuda") and row["mem_kind"] == "cuda max_memory_allocated"
        assert row["ours_per_sec"] > 0 and row["peak_mem_mib_large"] > 0
