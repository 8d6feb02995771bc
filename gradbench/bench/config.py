"""What ``gradbench bench`` measures: its settings, their validation, and the estimators chosen.

Every input error is found here, before any file is touched or anything is measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gradbench.errors import GradbenchError
from gradbench.registry import all_estimators, load_plugin
from gradbench.runner import DTYPES, CellSpec, build_task, prepare, resolve_device

TASK = "quadratic"
TASK_PARAMS = {"dim": 20, "categories": 10}
DEFAULT_ESTIMATORS = ("reinforce", "gumbel", "st-gumbel")
"""Measured when no ``--estimator`` is given (``--all`` measures every registered estimator)."""
MARGINAL_FROM = 20_000
"""``ours`` is the marginal rate between a cell of this many estimates and one of ``samples``: the per-estimate cost
without the fixed cost of a cell (exact gradient lookup, set-up, first-touch page faults)."""
MAX_SAMPLES = 10**9
"""Largest ``--samples`` and ``--memory-samples`` accepted (a 10⁹-estimate cell takes tens of minutes here)."""


@dataclass(frozen=True)
class BenchConfig:
    samples: int = 1_000_000  # estimates of the large timed cell (ours, limit); ours is marginal from MARGINAL_FROM
    repeats: int = 3
    threads: int = 1
    device: str = "cpu"
    dtype: str = "float32"
    tau: float = 0.5
    estimators: tuple[str, ...] = ()  # empty: DEFAULT_ESTIMATORS (or every registered one with all_estimators)
    all_estimators: bool = False
    task_params: dict[str, Any] = field(default_factory=dict)  # e.g. {"dim": 100, "categories": 2} for binary-only
    memory_samples: tuple[int, int] | None = (100_000, 1_000_000)
    naive_seconds: float = 0.3  # time spent in each naive loop per repeat (its draw count is fixed in calibration)
    stock_samples: int | None = None  # estimates per stock measurement; default samples / 10
    marginal_from: int = MARGINAL_FROM
    plugins: tuple[str, ...] = ()
    seed: int = 0
    log: Callable[[str], None] = field(default=lambda text: None, compare=False)


def validate(config: BenchConfig) -> None:
    """Every input error before any work."""
    for name, value in (("--samples", config.samples), ("--stock-samples", config.stock_samples)):
        if value is not None and not 2 <= value <= MAX_SAMPLES:
            raise GradbenchError(f"{name} must be between 2 and {MAX_SAMPLES:.0e}, got {value}")
    if config.samples <= config.marginal_from:
        raise GradbenchError(
            f"--samples must exceed {config.marginal_from:,} (ours is the marginal rate from that size), "
            f"got {config.samples}"
        )
    if not 1 <= config.repeats <= 100:
        raise GradbenchError(f"--repeats must be between 1 and 100, got {config.repeats}")
    import os

    cores = os.cpu_count() or 1
    if not 1 <= config.threads <= max(64, cores):
        raise GradbenchError(f"--threads must be between 1 and {max(64, cores)}, got {config.threads}")
    if config.dtype not in DTYPES:
        raise GradbenchError(f"unknown dtype {config.dtype!r} (use {', '.join(DTYPES)})")
    if not (math.isfinite(config.tau) and config.tau > 0):
        raise GradbenchError(f"--tau must be a finite number > 0, got {config.tau!r}")
    if not (math.isfinite(config.naive_seconds) and 0 < config.naive_seconds <= 60):
        raise GradbenchError(f"--naive-seconds must be a finite number in (0, 60], got {config.naive_seconds!r}")
    if config.memory_samples is not None and not all(2 <= n <= MAX_SAMPLES for n in config.memory_samples):
        raise GradbenchError(f"--memory-samples must be between 2 and {MAX_SAMPLES:.0e}, got {config.memory_samples}")
    if config.estimators and config.all_estimators:
        raise GradbenchError("--estimator and --all exclude each other")
    resolve_device(config.device)
    build_task(TASK, {**TASK_PARAMS, **config.task_params})  # a bad --task-opt is an error, not a skipped estimator


def estimator_params(name: str, tau: float) -> dict[str, Any]:
    """The benchmark's τ, raised to the estimator's lower bound where it declares one (ReinMax: τ ≥ 1)."""
    spec = next((p for p in all_estimators()[name].params if p.name == "tau"), None)
    if spec is None:
        return {}
    return {"tau": max(tau, spec.low) if spec.low is not None else tau}


def cell_spec(config: BenchConfig, name: str, n: int) -> CellSpec:
    return CellSpec(
        task=TASK,
        estimator=name,
        task_params={**TASK_PARAMS, **config.task_params},
        estimator_params=estimator_params(name, config.tau) if name in all_estimators() else {},
        seed=config.seed,
        n_samples=n,
        device=config.device,
        dtype=config.dtype,
    )


def select_estimators(config: BenchConfig) -> tuple[list[str], list[str]]:
    """(estimators to measure, notes on the ones skipped). Named estimators that cannot run are errors."""
    for plugin in config.plugins:
        load_plugin(plugin)
    known = all_estimators()
    if config.estimators:
        names = list(dict.fromkeys(config.estimators))
    elif config.all_estimators:
        names = list(known)
    else:
        names = [name for name in DEFAULT_ESTIMATORS if name in known]
    chosen, notes = [], []
    for name in names:
        try:
            prepare(cell_spec(config, name, 2))
        except GradbenchError as exc:
            if config.estimators:
                raise
            notes.append(f"{name}: skipped ({exc})")
            continue
        chosen.append(name)
    if not chosen:
        raise GradbenchError("no estimator can run on the benchmark problem")
    return chosen, notes
