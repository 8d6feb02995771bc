"""Throughput benchmark (``gradbench bench``, ``python benchmarks/throughput.py``).

On one fixed problem (task ``quadratic``: D = 20, K = 10; float32 unless ``--dtype``; τ = 0.5 where an estimator
has a temperature; 1 torch thread unless told otherwise; ``--task-opt dim=100 --task-opt categories=2`` gives a
binary problem of the same size for binary-only estimators), one estimator after the other, it measures estimates
per second of:

- **ours**: gradbench's runner for whole cells (``run_cell``: drawing, estimating, folding every estimate into the
  float64 streaming statistics, the final metrics), as the *marginal* rate between a cell of ``marginal_from``
  (2·10⁴) estimates and one of ``samples``: (n_large − n_small)/(t_large − t_small), the per-estimate cost without
  a cell's fixed cost. ``ours_cell_per_sec`` is the whole large cell's rate, ``ours_estimate_per_sec`` the runner's
  own ``estimates_per_sec`` (drawing and estimating only).
- **naive**: a Python loop of single-draw autograd calls written for the estimator: ``F.gumbel_softmax`` (with
  ``hard=True`` for st-gumbel) or ``Categorical.sample`` + ``log_prob`` (reinforce), then ``.backward()``, then
  running sums of g and g² (the cheapest statistics). For estimators without a hand-written loop, gradbench's own
  estimator called with n = 1 in a Python loop, with the same running sums.
- **naive F.gumbel_softmax loop** (``naive_gs``): the first loop a user writes, the same for every estimator: per
  draw ``F.gumbel_softmax(θ, τ)``, f, ``backward()``, no statistics (:func:`anchors.gumbel_softmax_loop`).
- **stock**: the best batched code with stock torch, estimates only: one autograd call over a batch of B copies
  of θ through ``RelaxedOneHotCategorical(...).rsample()`` or ``F.gumbel_softmax`` (gumbel),
  ``F.gumbel_softmax(hard=True)`` (st-gumbel), ``Categorical`` ``sample`` + ``log_prob`` (reinforce); the fastest
  variant and batch size of a calibration round. Empty for other estimators.
- **limit**: ``Tensor.uniform_()`` into a preallocated [chunk, D, K] tensor, repeated for n estimates: the rate at
  which the D·K uniforms per estimate can merely be generated and written.

Wall-clock time (``torch.cuda.synchronize`` around each timed region on a GPU). Each repeat measures limit, ours
(small then large cell), stock and both naive loops back to back; rates are medians over the repeats and each ratio
is the median of the ratios within a repeat, so that a machine shared with other work distorts them less; the row
records the 1-minute load average when it started. Peak memory: a fresh subprocess per (estimator, n) runs the cell
and reports its peak resident set size (CPU; it includes the Python interpreter and torch, about 300 MiB) or
``torch.cuda.max_memory_allocated`` (GPU), to show that memory does not grow with ``--samples``.

Modules: :mod:`.config` (settings, validation, selection), :mod:`.anchors` (limit, naive, stock),
:mod:`.memory` (peak memory in a subprocess), :mod:`.measure` (the loop), :mod:`.output` (CSV and tables),
:mod:`.scaling` (``--sweep-scaling``), :mod:`.command` (what ``gradbench bench`` does).
"""

from gradbench.bench.config import DEFAULT_ESTIMATORS, TASK, TASK_PARAMS, BenchConfig, select_estimators, validate
from gradbench.bench.measure import run_benchmark
from gradbench.bench.memory import peak_memory
from gradbench.bench.output import COLUMNS
from gradbench.bench.scaling import sweep_scaling, sweep_scaling_table

__all__ = [
    "COLUMNS",
    "DEFAULT_ESTIMATORS",
    "TASK",
    "TASK_PARAMS",
    "BenchConfig",
    "peak_memory",
    "run_benchmark",
    "select_estimators",
    "sweep_scaling",
    "sweep_scaling_table",
    "validate",
]
