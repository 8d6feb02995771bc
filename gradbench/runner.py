"""Run one cell: (task + options, estimator + hyper-parameters, seed, number of estimates) -> one metrics row.

Everything the user can get wrong is checked in :func:`prepare` before any estimate is drawn. The estimates are
drawn chunk by chunk (whole blocks, see :mod:`gradbench.rng`) and folded into :class:`GroupedMoments`, so memory
does not grow with ``n_samples``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import torch

import gradbench
from gradbench import contract
from gradbench.core import Estimator, Problem, Task, format_params, resolve_params
from gradbench.cost import cost_columns
from gradbench.errors import GradbenchError
from gradbench.exact import exact_gradient
from gradbench.fingerprint import class_fingerprint
from gradbench.limits import check_eta, check_memory, check_samples, check_seed, check_tau
from gradbench.registry import get_estimator, get_task
from gradbench.rng import BlockRng, block_size_for, stream_seed
from gradbench.stats import GROUPS, GroupedMoments, Metrics, compute_metrics

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}
"""Dtypes of the estimates (``--dtype``). The exact gradient is float64 and the statistics are accumulated in
float64 whatever the dtype (DESIGN.md §3); float16 and bfloat16 estimates may overflow or turn NaN, which is
counted (``nonfinite_fraction``, see :mod:`gradbench.nonfinite`), not fatal."""

CHUNK_ELEMENTS = 1 << 19
"""Default chunk on CPU: at most about this many gradient entries per estimator call (whole blocks, at least one).
Small enough that a chunk's few n x D x K tensors stay in a core's cache, large enough that the fixed cost of a
call is small (measured with benchmarks/throughput.py: 2 blocks of 1,024 estimates on the 20 x 10 problem)."""
CUDA_CHUNK_ELEMENTS = 1 << 24
CUDA_BLOCK_ELEMENTS = 1 << 22
"""On a GPU, larger blocks and chunks: kernel launches, not caches, are what costs there."""


@dataclass(frozen=True)
class CellSpec:
    """One measurement. ``estimator_params`` holds every hyper-parameter, ``tau`` included."""

    task: str
    estimator: str
    task_params: dict[str, Any] = field(default_factory=dict)
    estimator_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    n_samples: int = 100_000
    device: str = "cpu"
    dtype: str = "float32"
    chunk_size: int | None = None  # estimates per estimator call; rounded up to whole blocks


@dataclass
class PreparedCell:
    spec: CellSpec
    task: Task
    estimator: Estimator
    problem: Problem
    block_size: int
    chunk_blocks: int


def resolve_device(name: str) -> torch.device:
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise GradbenchError(f"--device {name}: no CUDA GPU is available to torch {torch.__version__}")
        return torch.device(name)
    raise GradbenchError(f"unknown device {name!r} (use cpu or cuda)")


_EXACT_CACHE: dict[tuple[type[Task], str], tuple[float, torch.Tensor]] = {}


def cached_exact_gradient(task: Task) -> tuple[float, torch.Tensor]:
    """Exact (E f, gradient) of a task at its initial logits, computed once per task class and options."""
    key = (type(task), format_params(task.config))
    if key not in _EXACT_CACHE:
        _EXACT_CACHE[key] = exact_gradient(task)
    return _EXACT_CACHE[key]


def build_task(name: str, params: dict[str, Any], chunk: int = 16, itemsize: int = 4) -> Task:
    """Instantiate and validate a task (:func:`gradbench.contract.validate_task`); a size that cannot fit in memory
    is refused before it is built (:meth:`Task.dims`), and an allocation that fails while building it is one line."""
    return construct_task(get_task(name), params, chunk, itemsize)


def construct_task(cls: type[Task], params: dict[str, Any], chunk: int = 16, itemsize: int = 4) -> Task:
    dims = cls.dims(resolve_params(f"task {cls.name!r}", cls.params, params))
    what = f"task {cls.name!r} ({format_params(params)})" if params else f"task {cls.name!r}"
    if dims is not None:
        check_memory(what, dims[0] * dims[1], chunk, itemsize)
    try:
        task = contract.guarded((), cls, "__init__", lambda: cls(**params))
    except MemoryError:
        raise GradbenchError(f"{what}: out of memory while building it; choose a smaller size") from None
    contract.validate_task(task)
    return task


def build_estimator(name: str, params: dict[str, Any]) -> Estimator:
    cls = get_estimator(name)
    if "tau" in params and params["tau"] is not None and not cls.has_tau():
        raise GradbenchError(f"estimator {name!r} has no temperature; drop --tau")
    if not cls.has_tau():
        params = {k: v for k, v in params.items() if k != "tau"}
    return contract.guarded((), cls, "__init__", lambda: cls(**params))


def prepare(spec: CellSpec) -> PreparedCell:
    """Validate the whole cell and build its problem (exact gradient included) without drawing anything."""
    check_seed(spec.seed)
    check_samples(spec.n_samples)
    if spec.dtype not in DTYPES:
        raise GradbenchError(f"unknown dtype {spec.dtype!r} (use {', '.join(DTYPES)})")
    if spec.chunk_size is not None and spec.chunk_size < 1:
        raise GradbenchError(f"chunk size must be positive, got {spec.chunk_size}")
    device = resolve_device(spec.device)
    task = build_task(spec.task, spec.task_params, itemsize=DTYPES[spec.dtype].itemsize)
    estimator = build_estimator(spec.estimator, spec.estimator_params)
    reason = contract.call(estimator, "incompatibility", task)
    if reason:
        raise GradbenchError(reason)
    dtype = DTYPES[spec.dtype]
    P = task.D * task.K
    if device.type == "cuda":
        block = block_size_for(P, target_elements=CUDA_BLOCK_ELEMENTS, cap=1 << 16)
        default_blocks = CUDA_CHUNK_ELEMENTS // (P * block)
    else:
        block = block_size_for(P)
        default_blocks = CHUNK_ELEMENTS // (P * block)
    chunk_blocks = max(1, math.ceil(spec.chunk_size / block) if spec.chunk_size else default_blocks)
    chunk = min(chunk_blocks * block, spec.n_samples)
    if device.type == "cpu":  # before any tensor of the task's size exists
        check_memory(f"task {task.describe()}", P, chunk, dtype.itemsize)
    value, grad = contract.guarded((task,), task, "f", lambda: cached_exact_gradient(task))
    theta = task.initial_logits().to(device=device, dtype=dtype)
    # float32/float64: a τ so small that (θ + G)/τ overflows is an input error. float16/bfloat16: where small τ
    # breaks is what a low-precision run measures, so its non-finite estimates are counted instead (issue 15).
    if spec.dtype in ("float32", "float64") and estimator.config.get("tau") is not None:
        check_tau(
            f"estimator {estimator.name!r}",
            float(estimator.config["tau"]),
            spec.dtype,
            torch.finfo(dtype).max,
            float(theta.abs().max()) if theta.numel() else 0.0,
        )
    problem = Problem(task=task, theta=theta, exact_grad=grad.to(device), exact_value=value)
    return PreparedCell(spec, task, estimator, problem, block, chunk_blocks)


def pilot(spec: CellSpec) -> tuple[float, float]:
    """(seconds of the set-up, seconds per estimate) of a cell, from its set-up and one timed block."""
    cell = prepare(replace(spec, n_samples=2))
    device = cell.problem.theta.device
    t0 = time.perf_counter()
    cell.estimator.setup(cell.problem, spec.seed)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    cell.estimator.estimate(cell.problem, BlockRng(spec.seed, 0, [cell.block_size], device))
    _synchronize(device)
    return setup, (time.perf_counter() - t0) / cell.block_size


def check_duration(specs: list[CellSpec], force: bool, what: str) -> None:
    """Refuse ``specs`` when their estimated time exceeds :data:`gradbench.limits.MAX_SECONDS` (unless ``force``).

    Only cells with more than :data:`gradbench.limits.PILOT_FREE` estimates are piloted (one pilot per distinct
    task, estimator and options); smaller ones cannot plausibly take a day.
    """
    from gradbench.limits import PILOT_FREE

    pilots: dict[tuple, tuple[float, float]] = {}
    total = 0.0
    for spec in specs:
        if spec.n_samples <= PILOT_FREE:
            continue
        key = (spec.task, format_params(spec.task_params), spec.estimator, format_params(spec.estimator_params))
        if key not in pilots:
            pilots[key] = pilot(spec)
        setup, per_estimate = pilots[key]
        total += setup + per_estimate * spec.n_samples
    check_eta(total, what, force)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Stream:
    """A run of ``n`` consecutive estimates drawn from ``seed`` (cut into blocks as usual); ``group`` is the replicate
    group every estimate of it feeds, or None for the interleaved groups of a single stream."""

    seed: int
    n: int
    group: int | None


def cell_streams(seed: int, n: int, stateful: bool) -> list[Stream]:
    """The streams of a cell: one for an estimator without state (its estimates feed the G replicate groups
    interleaved); G independent streams, stream s with ⌈(n − s)/G⌉ estimates feeding group s alone, for a stateful
    estimator, so that no state is shared between groups (their batch means stay independent)."""
    if not stateful:
        return [Stream(seed, n, None)]
    return [Stream(stream_seed(seed, s), (n - s + GROUPS - 1) // GROUPS, s) for s in range(min(GROUPS, n))]


def _run_stream(
    cell: PreparedCell,
    estimator: Estimator,
    stream: Stream,
    moments: GroupedMoments,
    exact_flat: torch.Tensor,
    on_progress: Callable[[int], None] | None,
) -> float:
    """Draw one stream's estimates chunk by chunk into ``moments`` (which counts the non-finite ones it leaves
    out); returns the seconds spent estimating."""
    problem = cell.problem
    device = problem.theta.device
    D, K = cell.task.D, cell.task.K
    n, block = stream.n, cell.block_size
    n_blocks = math.ceil(n / block)
    seconds = 0.0
    for first in range(0, n_blocks, cell.chunk_blocks):
        last = min(first + cell.chunk_blocks, n_blocks)
        sizes = [min(block, n - b * block) for b in range(first, last)]
        _synchronize(device)
        t0 = time.perf_counter()
        rng = BlockRng(stream.seed, first, sizes, device)
        estimates = contract.call(
            estimator, "estimate", problem, rng, suspects=(estimator, cell.task)
        )  # n_chunk x D x K
        _synchronize(device)
        seconds += time.perf_counter() - t0
        contract.check_estimates(estimator, estimates, rng.n, problem.theta)
        flat = estimates.reshape(rng.n, D * K)  # n_chunk x P, the estimator's dtype (a view when contiguous)
        if stream.group is not None:
            moments.update_group(flat, stream.group, offset=exact_flat)
        else:
            start = 0
            for b, size in zip(range(first, last), sizes, strict=True):
                moments.update(flat[start : start + size], b * block, offset=exact_flat)  # moments of g − g*
                start += size
        if on_progress is not None:
            on_progress(rng.n)
    return seconds


def measure(
    cell: PreparedCell, seed: int, n: int, on_progress: Callable[[int], None] | None = None
) -> tuple[GroupedMoments, float]:
    """Draw ``n`` estimates of ``cell.estimator`` at ``cell.problem`` and fold their deviations from g* into
    streaming moments: (moments, seconds spent estimating). Calls ``setup`` first (not timed). Shared by
    ``run``/``sweep``/``check`` (through :func:`run_cell`) and by ``train``'s evaluations (with a cell built around
    the problem at the current parameters)."""
    problem, estimator = cell.problem, cell.estimator
    D, K = problem.theta.shape
    exact_flat = problem.exact_grad.reshape(-1)  # P, float64
    moments = GroupedMoments(D * K, GROUPS, problem.theta.device)
    streams = cell_streams(seed, n, estimator.stateful)
    fresh = copy.deepcopy(estimator) if estimator.stateful else None  # each stream starts from a fresh copy
    contract.call(estimator, "setup", problem, seed, suspects=(estimator, cell.task))  # one-off: not timed
    seconds = 0.0
    for stream in streams:
        if stream.group is not None and stream.group > 0:
            estimator = copy.deepcopy(fresh)
            contract.call(estimator, "setup", problem, seed, suspects=(estimator, cell.task))
        seconds += _run_stream(cell, estimator, stream, moments, exact_flat, on_progress)
    return moments, seconds


def run_cell(
    spec: CellSpec, on_progress: Callable[[int], None] | None = None, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Measure one cell and return its CSV row (see :data:`gradbench.results.COLUMNS`).

    ``details``, when given, receives what the row does not hold (used by ``gradbench check``): ``exact_grad``
    (g*, P), ``mean_dev`` (ĝ − g*, P) and ``component_var`` (s_j², P), float64 CPU tensors.
    """
    cell = prepare(spec)
    problem, estimator = cell.problem, cell.estimator
    device = problem.theta.device
    D, K = cell.task.D, cell.task.K
    exact_flat = problem.exact_grad.reshape(-1)  # P, float64
    n = spec.n_samples
    moments, seconds = measure(cell, spec.seed, n, on_progress)
    nonfinite = moments.nonfinite  # estimates with a NaN or ±inf component, left out of the statistics
    if n - nonfinite >= 2:
        metrics = compute_metrics(moments, exact_flat, torch.finfo(problem.theta.dtype).eps, abs(problem.exact_value))
    else:  # fewer than two finite estimates: nothing to measure, but the row says so (nonfinite_fraction)
        metrics = Metrics(**{name: math.nan for name in Metrics.__dataclass_fields__})
    if details is not None:
        n_done, mean_dev, m2 = moments.pooled()
        details.update(
            exact_grad=exact_flat.cpu(), mean_dev=mean_dev.cpu(), component_var=(m2 / max(n_done - 1, 1)).cpu()
        )
    est_params = {k: v for k, v in estimator.config.items() if k != "tau"}
    row = {
        "task": cell.task.name,
        "task_params": format_params(cell.task.config),
        "estimator": estimator.name,
        "estimator_params": format_params(est_params),
        "tau": estimator.config.get("tau", ""),
        "seed": spec.seed,
        "n_samples": n,
        "draws_per_estimate": contract.guarded(
            (estimator,), estimator, "draws_per_estimate", lambda: estimator.evals_on(cell.task)
        ),
        "D": D,
        "K": K,
        "exact_value": problem.exact_value,
        **vars(metrics),
        "seconds": seconds,
        "estimates_per_sec": n / seconds if seconds > 0 else math.inf,
        "device": str(device),
        "dtype": spec.dtype,
        "threads": torch.get_num_threads(),
        "gradbench_version": gradbench.__version__,
        "torch_version": torch.__version__,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    row.update(cost_columns({**row, "evals_per_estimate": estimator.evals_per_estimate}))
    row["nonfinite_fraction"] = nonfinite / n
    row["code_fingerprint"] = class_fingerprint(type(estimator), type(cell.task))
    return row
