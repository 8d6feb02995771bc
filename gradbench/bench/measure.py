"""The measurement loop of ``gradbench bench``: one estimator at a time, its row handed over as soon as it is done."""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import gradbench
from gradbench.bench.anchors import (
    STOCK_BATCHES,
    RunningSums,
    batched_rate,
    gumbel_softmax_loop,
    limit_rate,
    naive_step,
    stock_variants,
    sync,
    timed,
)
from gradbench.bench.config import TASK, BenchConfig, cell_spec, select_estimators, validate
from gradbench.bench.memory import peak_memory
from gradbench.runner import DTYPES, build_estimator, prepare, resolve_device, run_cell


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def steps_per_estimator(config: BenchConfig) -> int:
    """Progress units per estimator: calibration, each repeat, each memory run."""
    return 1 + config.repeats + (2 if config.memory_samples is not None else 0)


def _loop_rate(device: torch.device, step: Callable[[int], None], draws: int) -> float:
    return draws / timed(device, lambda: [step(i) for i in range(draws)])


def _draws_for(device: torch.device, step: Callable[[int], None], seconds: float) -> int:
    step(0)
    per_draw = timed(device, lambda: [step(i) for i in range(5)]) / 5
    return int(min(max(seconds / max(per_draw, 1e-9), 10), 1_000_000))


def measure_one(config: BenchConfig, name: str, advance: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """The row of one estimator (columns :data:`gradbench.bench.output.COLUMNS`)."""
    started = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    device = resolve_device(config.device)
    spec = cell_spec(config, name, config.samples)
    small = replace(spec, n_samples=config.marginal_from)
    cell = prepare(spec)
    D, K = cell.task.D, cell.task.K
    chunk = cell.block_size * cell.chunk_blocks
    dtype = DTYPES[config.dtype]
    tau = spec.estimator_params.get("tau", config.tau)
    stock_n = config.stock_samples or max(2, config.samples // 10)

    # Calibration (also the warm-up): the naive loops' draw counts, the stock variant and batch size.
    torch.manual_seed(config.seed)
    run_cell(replace(spec, n_samples=2 * chunk))
    sums = RunningSums((D, K), device)
    step, kind = naive_step(name, build_estimator(name, dict(spec.estimator_params)), cell.problem, tau, sums)
    draws = _draws_for(device, step, config.naive_seconds)
    gs_step = gumbel_softmax_loop(cell.problem, config.tau)
    gs_draws = _draws_for(device, gs_step, config.naive_seconds)
    stock = None
    for label, run in stock_variants(name, cell.problem, tau):
        for B in STOCK_BATCHES:
            run(min(B, 64))
            rate = batched_rate(run, B, min(stock_n, 2 * B), device)
            if stock is None or rate > stock[0]:
                stock = (rate, label, run, B)
    advance(f"{name}: calibrated")

    samples: dict[str, list[float]] = {}

    def record(key: str, value: float) -> None:
        samples.setdefault(key, []).append(value)

    for r in range(config.repeats):
        limit = limit_rate(config.samples, chunk, D, K, device, dtype, config.seed + r)
        t_small = timed(device, lambda: run_cell(small))
        t0 = time.perf_counter()
        sync(device)
        row = run_cell(spec)
        sync(device)
        t_large = time.perf_counter() - t0
        marginal = (config.samples - config.marginal_from) / (t_large - t_small) if t_large > t_small else math.nan
        cell_rate = config.samples / t_large
        stock_rate = batched_rate(stock[2], stock[3], stock_n, device) if stock is not None else math.nan
        naive = _loop_rate(device, step, draws)
        naive_gs = _loop_rate(device, gs_step, gs_draws)
        record("ours", marginal)
        record("cell", cell_rate)
        record("estimate", row["estimates_per_sec"])
        record("limit", limit)
        record("naive", naive)
        record("naive_gs", naive_gs)
        record("stock", stock_rate)
        record("vs_naive", marginal / naive)
        record("vs_naive_gs", marginal / naive_gs)
        record("vs_stock", marginal / stock_rate)
        record("vs_limit", marginal / limit)
        record("nonfinite", row["nonfinite_fraction"])
        advance(f"{name}: repeat {r + 1}/{config.repeats}")

    mem: dict[str, Any] = {
        "mem_samples_small": "",
        "peak_mem_mib_small": "",
        "mem_samples_large": "",
        "peak_mem_mib_large": "",
        "mem_kind": "",
    }
    if config.memory_samples is not None:
        for label, n in zip(("small", "large"), config.memory_samples, strict=True):
            mib, mem_kind = peak_memory(replace(spec, n_samples=n), config.threads, config.plugins)
            mem[f"mem_samples_{label}"] = n
            mem[f"peak_mem_mib_{label}"] = round(mib, 1)
            mem["mem_kind"] = mem_kind
            advance(f"{name}: peak memory at n = {n:,}")
    m = {key: _median(values) for key, values in samples.items()}
    return {
        "estimator": name,
        "task": TASK,
        "D": D,
        "K": K,
        "dtype": config.dtype,
        "tau": spec.estimator_params.get("tau", ""),
        "device": str(device),
        "device_name": device_name(device),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average": round(load, 2),
        "n_samples": config.samples,
        "marginal_from": config.marginal_from,
        "repeats": config.repeats,
        "chunk_size": chunk,
        "ours_per_sec": m["ours"],
        "ours_cell_per_sec": m["cell"],
        "ours_estimate_per_sec": m["estimate"],
        "naive_per_sec": m["naive"],
        "naive_kind": kind,
        "naive_gs_per_sec": m["naive_gs"],
        "stock_per_sec": m["stock"],
        "stock_kind": f"{stock[1]}, B = {stock[3]}" if stock else "",
        "limit_per_sec": m["limit"],
        "ours_vs_naive": m["vs_naive"],
        "ours_vs_naive_gs": m["vs_naive_gs"],
        "ours_vs_stock": m["vs_stock"],
        "ours_vs_limit": m["vs_limit"],
        **mem,
        "nonfinite_fraction": m["nonfinite"],
        "seconds": round(time.perf_counter() - started, 1),
        "gradbench_version": gradbench.__version__,
        "torch_version": torch.__version__,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def run_benchmark(
    config: BenchConfig,
    on_row: Callable[[dict[str, Any]], None] = lambda row: None,
    advance: Callable[[str], None] = lambda text: None,
    names: list[str] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Measure every selected estimator, one after the other; ``on_row`` gets each row as soon as it is complete.
    Returns (rows, notes on skipped estimators)."""
    validate(config)
    torch.set_num_threads(config.threads)
    notes: list[str] = []
    if names is None:
        names, notes = select_estimators(config)
    rows = []
    for name in names:
        config.log(f"measuring {name}")
        row = measure_one(config, name, advance)
        rows.append(row)
        on_row(row)
    return rows, notes
