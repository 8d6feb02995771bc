"""gradbench's public Python API: the library the ``gradbench`` command is a thin layer over.

    import gradbench
    row = gradbench.run("reinforce", "bernoulli", samples=100_000, seed=3)      # dict: every CSV column
    df = gradbench.sweep(["reinforce", "gumbel"], ["sum-target"], taus=[0.5, 1]) # pandas DataFrame, one row per cell
    report = gradbench.audit("my-estimator", plugins=["my_plugin.py"])          # verdicts, report.passed
    df = gradbench.load_results("results/sweep.csv")                            # CSV or JSON Lines -> DataFrame

Registration: :func:`register_task`, :func:`register_estimator` (class decorators), :func:`load_plugin` (a file
or ``pkg.mod[:Class]``) and :func:`register_surrogate` (a surrogate loss as an estimator, see
:mod:`gradbench.surrogate`). Every user error raises :class:`gradbench.GradbenchError` with a one-line message (the
CLI prints it as ``gradbench: error: …`` and exits 2).

Heavy imports (torch, pandas) happen inside the functions, so ``import gradbench`` stays fast.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradbench.errors import GradbenchError
from gradbench.limits import check_count
from gradbench.registry import load_builtins, register_estimator, register_task
from gradbench.registry import load_plugin as _load_plugin

if TYPE_CHECKING:
    import pandas as pd

    from gradbench.battery import AuditReport

__all__ = [
    "audit",
    "load_plugin",
    "load_results",
    "register_estimator",
    "register_surrogate",
    "register_task",
    "run",
    "sweep",
]

DEFAULT_SAMPLES = 200_000


def load_plugin(spec: str | Path) -> None:
    """Register the tasks/estimators of a plug-in: a file ``my_plugin.py``, a module ``pkg.mod``, or one class
    ``pkg.mod:Class``. Loading the same plug-in twice is a no-op."""
    load_builtins()
    _load_plugin(spec)


def load_plugins(specs: Iterable[str | Path] | None) -> None:
    load_builtins()
    for spec in specs or ():
        _load_plugin(spec)


def register_surrogate(
    name: str, surrogate: Callable[..., Any], *, unbiased: bool, needs_relaxation: bool = False, **declared: Any
) -> type:
    """Make ``surrogate(logits, f, rng) -> n losses`` a registered estimator named ``name`` (see
    :mod:`gradbench.surrogate` for the exact signature); returns the estimator class."""
    from gradbench.surrogate import surrogate_estimator

    cls = surrogate_estimator(name, surrogate, unbiased=unbiased, needs_relaxation=needs_relaxation, **declared)
    return register_estimator(cls)


def _set_threads(threads: int | None) -> None:
    if threads is None:
        return
    import torch

    check_count(threads, "--threads", "torch threads")
    torch.set_num_threads(threads)


def run(
    estimator: str,
    task: str = "bernoulli",
    *,
    tau: float | None = None,
    task_opts: dict[str, Any] | None = None,
    est_opts: dict[str, Any] | None = None,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    chunk_size: int | None = None,
    threads: int | None = None,
    plugins: Sequence[str | Path] = (),
    out: str | Path | None = None,
    on_progress: Callable[[int], None] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Measure one cell; return its row (a dict with every CSV column, see README "Result columns").

    ``out``: also append the row to a CSV (``.csv``) or JSON Lines file (``.jsonl``). Every input is validated
    before anything is drawn or written; a cell estimated (from a pilot block) to take more than a day is refused
    unless ``force`` (see docs/hardening.md).
    """
    from gradbench.runner import CellSpec, check_duration, prepare, run_cell

    load_plugins(plugins)
    _set_threads(threads)
    params: dict[str, Any] = dict(est_opts or {})
    if tau is not None:
        if "tau" in params:
            raise GradbenchError("give the temperature once: --tau or --est-opt tau=…")
        params["tau"] = tau
    spec = CellSpec(
        task=task,
        estimator=estimator,
        task_params=dict(task_opts or {}),
        estimator_params=params,
        seed=seed,
        n_samples=samples,
        device=device,
        dtype=dtype,
        chunk_size=chunk_size,
    )
    prepare(spec)  # every input error before the output file is touched or any work is done
    check_duration([spec], force, f"--samples {samples:,}")
    write = _writer(Path(out)) if out is not None else None
    row = run_cell(spec, on_progress=on_progress)
    if write is not None:
        write([row])
    return row


def _writer(out: Path) -> Callable[[list[dict[str, Any]]], None]:
    """Check ``out`` now; return the function that appends rows to it (CSV, or JSON Lines for .jsonl)."""
    from gradbench import jsonrows, results
    from gradbench.locking import output_lock

    if jsonrows.is_jsonl(out):
        results.check_path_length(out, "--out")
        results.check_regular(results.target(out), "--out")  # a FIFO or device is refused before it is opened
        jsonrows.check_jsonl_writable(out)
        append = jsonrows.append_jsonl
    else:
        results.check_writable(out)
        append = results.append_rows

    def write(rows: list[dict[str, Any]]) -> None:
        with output_lock(out, "run"):  # another run on the same file waits; a sweep holding it refuses us
            append(out, rows)

    return write


def _names(value: str | Sequence[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)


def _numbers(value: str | int | Sequence[float]) -> str:
    return value if isinstance(value, str) else str(value) if isinstance(value, int) else ",".join(map(str, value))


def sweep(
    estimators: str | Sequence[str] = "all",
    tasks: str | Sequence[str] = "all",
    *,
    taus: str | Sequence[float] | None = None,
    seeds: str | int | Sequence[int] | None = None,
    samples: str | int = "auto",
    task_opts: dict[str, Any] | None = None,
    est_opts: dict[str, Any] | None = None,
    out: str | Path | None = None,
    workers: int = 1,
    threads: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    device: str = "cpu",
    dtype: str = "float32",
    plugins: Sequence[str | Path] = (),
    executor: str = "local",
    address: str | None = None,
) -> pd.DataFrame:
    """Run a grid (tasks × estimators × τ × seeds) like ``gradbench sweep``; return its rows as a DataFrame.

    Arguments take the CLI's text (``taus="0.1:10:9"``, ``seeds=3``) or Python lists. Without ``out`` the rows
    go to a temporary CSV that is removed afterwards. Skipped cells are in ``df.attrs["skipped"]`` as
    (task, estimator, reason), failed cells in ``df.attrs["failed"]`` as (label, reason). ``executor``: ``local``
    (``workers`` processes) or ``dask`` (a LocalCluster of ``workers`` processes, or the scheduler at ``address``);
    see docs/cluster.md. ``out`` is locked while the sweep runs (a second sweep on it is refused).
    """
    from gradbench import sweep as sw
    from gradbench.aggregate import load_results as _load
    from gradbench.registry import all_estimators, default_sweep_tasks, get_estimator, get_task

    load_plugins(plugins)
    _set_threads(threads)
    check_count(workers, "--workers", "worker processes")
    if resume and overwrite:
        raise GradbenchError("resume and overwrite exclude each other")
    grid = sw.expand_grid(
        tasks=sw.parse_names(_names(tasks), "task", default_sweep_tasks(), get_task),
        estimators=sw.parse_names(_names(estimators), "estimator", all_estimators(), get_estimator),
        taus=sw.parse_taus(_numbers(taus if taus is not None else sw.DEFAULT_TAUS)),
        seeds=sw.parse_seeds(_numbers(seeds if seeds is not None else sw.DEFAULT_SEEDS)),
        samples=sw.parse_samples(str(samples)),
        task_opts={k: str(v) for k, v in (task_opts or {}).items()},
        est_opts={k: str(v) for k, v in (est_opts or {}).items()},
        device=device,
        dtype=dtype,
    )
    if not grid.cells:
        reasons = "; ".join(dict.fromkeys(f"{s.estimator}: {s.reason}" for s in grid.skipped))
        raise GradbenchError(f"nothing to run: every cell is skipped ({reasons})")
    from gradbench.executors import ExecutorOptions
    from gradbench.locking import output_lock

    ExecutorOptions(executor, workers, threads, address).validate()
    with tempfile.TemporaryDirectory(prefix="gradbench-sweep-") as tmp:
        path = Path(out) if out is not None else Path(tmp) / "sweep.csv"
        with output_lock(path, "sweep"):
            todo, _ = sw.prepare_output(path, grid, resume=resume, overwrite=overwrite)
            outcome = sw.run_sweep(
                grid,
                path,
                todo,
                workers=max(1, min(workers, len(todo) or 1)),
                threads=threads,
                plugins=[str(p) for p in plugins],
                executor=executor,
                address=address,
                overwrite=overwrite,
            )
        if outcome.interrupted:
            raise KeyboardInterrupt
        if outcome.saved == 0:
            reasons = "; ".join(f"{label}: {why}" for label, why in outcome.failed[:3])
            raise GradbenchError(f"every cell failed ({reasons})")
        df = _load(path)
    df.attrs["skipped"] = [(s.task, s.estimator, s.reason) for s in grid.skipped]
    df.attrs["failed"] = list(outcome.failed)
    return df


def load_results(path: str | Path) -> pd.DataFrame:
    """A results file as a DataFrame: a gradbench CSV (validated, see :func:`gradbench.aggregate.load_results`) or
    JSON Lines written by ``run --out x.jsonl`` (null = non-finite)."""
    from gradbench import jsonrows

    path = Path(path)
    if jsonrows.is_jsonl(path):
        import pandas as pd

        if not path.is_file():
            raise GradbenchError(f"{path} does not exist")
        import json

        records = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                records.append(json.loads(line))
            except ValueError:
                raise GradbenchError(
                    f"{path}, line {number}: not a JSON object (not a JSON Lines results file)"
                ) from None
        return pd.DataFrame.from_records(records)
    from gradbench.aggregate import load_results as _load

    return _load(path)


def audit(name: str, **options: Any) -> AuditReport:
    """Run the audit battery on the estimator or task ``name``; see :func:`gradbench.battery.audit`."""
    from gradbench.battery import audit as _audit

    return _audit(name, **options)
