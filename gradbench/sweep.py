"""``gradbench sweep``: expand a grid of cells, run it (optionally in parallel processes), write one CSV.

Grid. The grid is tasks × estimators × temperatures × seeds, expanded in that order (the *grid order*):

- an estimator without a temperature gets one cell per (task, seed), not one per τ;
- a pair that cannot run (the estimator needs a relaxation the task lacks, binary-only on K > 2, a τ outside the
  estimator's declared range, a required hyper-parameter not given, a task too large to enumerate) is *skipped*
  with its reason, reported in the summary; it is not an error;
- ``--task-opt``/``--est-opt`` apply to every selected task/estimator that declares that option; other
  hyper-parameters take their defaults;
- ``--samples auto`` picks, per (task, estimator), the largest power of two n with n · D · K · c ≤
  :data:`AUTO_BUDGET` (c = ``Estimator.relative_cost``), clamped to [:data:`AUTO_MIN`, :data:`AUTO_MAX`]: a
  cell's cost stays about constant whatever the task's size, so the default grid's time is bounded by its number
  of cells.

Execution. Cells run in the main process (``workers=1``) or in ``workers`` spawned processes, each with ``threads``
torch threads. Every finished cell is appended to the CSV at once (one ``write`` of a whole line, then fsync; see
:func:`gradbench.results.append_rows`), in completion order; when the sweep completes, the file is rewritten
atomically in grid order. The rows (timing columns aside) are therefore identical for any number of workers, and a
sweep killed at any moment leaves a CSV holding only whole rows; ``resume`` runs only the cells whose identity
(:data:`IDENTITY_COLUMNS`) is not in the file yet.
"""

from __future__ import annotations

import csv
import io
import math
import random
import re
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradbench.core import Estimator, Task, format_params
from gradbench.errors import GradbenchError
from gradbench.results import (
    COLUMNS,
    IDENTITY_COLUMNS,
    append_rows,
    check_writable,
    format_rows,
    read_header,
    write_atomic,
)

TIMING_COLUMNS = ("seconds", "estimates_per_sec", "timestamp")
"""The only columns allowed to differ between two runs of the same sweep (any worker count, resumed or not)."""

DEFAULT_TAUS = "0.05:5:11"
DEFAULT_SEEDS = "3"
AUTO_BUDGET = 1 << 18
"""``--samples auto``: gradient entries × relative cost per cell (n · D · K · Estimator.relative_cost)."""
AUTO_MIN, AUTO_MAX = 1 << 10, 1 << 16

CellKey = tuple[str, ...]


# ---------------------------------------------------------------------------------------------------------------
# Parsing the grid's axes
# ---------------------------------------------------------------------------------------------------------------


def _float(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise GradbenchError(f"{flag}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise GradbenchError(f"{flag}: every temperature must be a finite number > 0, got {text.strip()!r}")
    return value


def round_sig(x: float, digits: int = 3) -> float:
    """``x`` rounded to ``digits`` significant digits (temperatures of a log-spaced range read as typed)."""
    return float(f"{x:.{digits}g}")


def parse_taus(text: str) -> list[float]:
    """'0.1,0.5,1' (a list) or '0.05:5:11' (11 log-spaced values from 0.05 to 5, 3 significant digits).

    Returns the distinct temperatures in increasing order.
    """
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise GradbenchError(f"--taus {text!r}: a range is LOW:HIGH:COUNT, e.g. 0.05:5:11")
        low, high = _float(parts[0], "--taus"), _float(parts[1], "--taus")
        try:
            count = int(parts[2])
        except ValueError:
            raise GradbenchError(f"--taus {text!r}: COUNT must be an integer, got {parts[2]!r}") from None
        if count < 1 or (count == 1 and low != high):
            raise GradbenchError(f"--taus {text!r}: COUNT must be ≥ 2 (or 1 when LOW = HIGH)")
        if low > high:
            raise GradbenchError(f"--taus {text!r}: LOW must not exceed HIGH")
        if count == 1:
            values = [low]
        else:
            step = (math.log(high) - math.log(low)) / (count - 1)
            values = [round_sig(math.exp(math.log(low) + i * step)) for i in range(count)]
            values[0], values[-1] = low, high
        if len(set(values)) != count:
            raise GradbenchError(f"--taus {text!r}: too many points for the range at 3 significant digits")
    else:
        items = [t for t in text.split(",") if t.strip()]
        if not items:
            raise GradbenchError("--taus: give a comma list (0.1,0.5,1) or a range LOW:HIGH:COUNT (0.05:5:11)")
        values = [_float(t, "--taus") for t in items]
    return sorted(set(values))


def parse_seeds(text: str) -> list[int]:
    """'3' (a count: seeds 0, 1, 2) or '0,5,7' (a list; '7,' is seed 7 alone)."""
    text = text.strip()
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
            if not seeds:
                raise ValueError
        else:
            count = int(text)
            if count < 1:
                raise GradbenchError(f"--seeds {text}: a count must be at least 1")
            seeds = list(range(count))
    except ValueError:
        raise GradbenchError(f"--seeds {text!r}: give a count (3) or a comma list of integers (0,5,7)") from None
    if any(s < 0 for s in seeds):
        raise GradbenchError(f"--seeds {text!r}: seeds must be ≥ 0")
    if len(set(seeds)) != len(seeds):
        raise GradbenchError(f"--seeds {text!r}: a seed is repeated")
    return seeds


def parse_names(text: str, kind: str, known: dict[str, Any], lookup: Callable[[str], Any]) -> list[str]:
    """'all' (every registered name, sorted) or a comma list of names (order kept, repeats dropped)."""
    text = text.strip()
    if text == "all":
        return list(known)
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise GradbenchError(f"--{kind}s: give 'all' or a comma list of names")
    for name in names:
        lookup(name)  # unknown names: one line with a suggestion
    return names


def parse_samples(text: str) -> int | None:
    """'auto' (None: per-cell budget, see :func:`auto_samples`) or a number of estimates ≥ 2."""
    if text.strip() == "auto":
        return None
    try:
        n = int(text.replace("_", ""))
    except ValueError:
        raise GradbenchError(f"--samples {text!r}: give a number of estimates or 'auto'") from None
    if n < 2:
        raise GradbenchError(f"--samples must be at least 2 (variance needs two estimates), got {n}")
    return n


def auto_samples(task: Task, estimator: Estimator) -> int:
    """Largest power of two n with n · D · K · relative cost ≤ AUTO_BUDGET, within [AUTO_MIN, AUTO_MAX]."""
    cost = max(1, round(task.D * task.K * max(1.0, estimator.relative_cost, estimator.evals_on(task))))
    n = 1 << max(0, (AUTO_BUDGET // cost).bit_length() - 1)
    return min(AUTO_MAX, max(AUTO_MIN, n))


# ---------------------------------------------------------------------------------------------------------------
# Grid expansion
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridCell:
    index: int  # position in grid order
    spec: Any  # gradbench.runner.CellSpec
    key: CellKey  # identity, as the CSV writes it (IDENTITY_COLUMNS)
    label: str  # "gumbel τ=0.05 on bernoulli, seed 1"
    cost: float  # rough relative cost, for the progress bar's ETA


@dataclass(frozen=True)
class Skip:
    """Cells left out of the grid, and why (one entry per task, estimator and reason)."""

    task: str
    estimator: str
    reason: str
    taus: tuple[float, ...] = ()  # the temperatures concerned; empty: all of them (or none apply)
    cells: int = 0


@dataclass
class Grid:
    cells: list[GridCell]
    skipped: list[Skip]
    taus: list[float]
    seeds: list[int]


def _text(value: Any) -> str:
    """A value as :mod:`gradbench.results` writes it (floats by repr, which round-trips)."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def _short_reason(reason: str, estimator: str) -> str:
    """A skip reason without what the summary's columns already say (the estimator's name, the bad τ's value)."""
    for prefix in (f"estimator {estimator!r}: ", f"estimator {estimator!r} "):
        if reason.startswith(prefix):
            reason = reason[len(prefix) :]
    return re.sub(r", got [^,]*$", "", reason)


def _applicable(options: dict[str, str], params: Sequence[Any]) -> dict[str, str]:
    names = {p.name for p in params}
    return {k: v for k, v in options.items() if k in names}


def _check_options_apply(options: dict[str, str], classes: Iterable[type], flag: str, what: str) -> None:
    classes = list(classes)
    declared = {p.name for cls in classes for p in cls.params}
    for key in options:
        if flag == "--est-opt" and key == "tau":
            raise GradbenchError("--est-opt tau: give temperatures with --taus")
        if key not in declared:
            accepted = ", ".join(sorted(declared - {"tau"})) or "none"
            raise GradbenchError(f"{flag} {key}: no selected {what} has this option (accepted: {accepted})")
    for cls in classes:  # bad values are errors, found before any work
        for p in cls.params:
            if p.name in options:
                p.convert(f"{what} {cls.name!r}", options[p.name])


def expand_grid(
    tasks: Sequence[str],
    estimators: Sequence[str],
    taus: Sequence[float],
    seeds: Sequence[int],
    samples: int | None = None,
    task_opts: dict[str, str] | None = None,
    est_opts: dict[str, str] | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> Grid:
    """The cells of the sweep in grid order (task, estimator, τ, seed), and the skipped ones with their reasons.

    Every cell is validated here (as :func:`gradbench.runner.prepare` does for ``gradbench run``), so no input error
    can appear after the sweep has started.
    """
    from gradbench.registry import get_estimator, get_task
    from gradbench.runner import CellSpec, cached_exact_gradient, prepare

    task_opts, est_opts = task_opts or {}, est_opts or {}
    task_classes = [get_task(t) for t in tasks]
    est_classes = [get_estimator(e) for e in estimators]
    _check_options_apply(task_opts, task_classes, "--task-opt", "task")
    _check_options_apply(est_opts, est_classes, "--est-opt", "estimator")

    cells: list[GridCell] = []
    skipped: list[Skip] = []
    for task_cls in task_classes:
        task = task_cls(**_applicable(task_opts, task_cls.params))
        task_params = dict(task.config)
        try:
            cached_exact_gradient(task)
        except GradbenchError as exc:  # e.g. too many configurations to enumerate
            n_cells = sum((len(taus) if e.has_tau() else 1) * len(seeds) for e in est_classes)
            skipped.append(Skip(task.describe(), "*", str(exc), (), n_cells))
            continue
        for est_cls in est_classes:
            opts = _applicable(est_opts, est_cls.params)
            missing = [p.name for p in est_cls.params if p.required and p.name != "tau" and p.name not in opts]
            points: list[float | None] = list(taus) if est_cls.has_tau() else [None]
            if missing:
                reason = f"needs --est-opt {missing[0]}=… (no default)"
                skipped.append(Skip(task.describe(), est_cls.name, reason, (), len(points) * len(seeds)))
                continue
            if est_cls.has_tau() and not taus:
                skipped.append(Skip(task.describe(), est_cls.name, "no temperatures given (--taus)", (), 0))
                continue
            bad: dict[str, list[float]] = {}
            for tau in points:
                params: dict[str, Any] = dict(opts)
                if tau is not None:
                    params["tau"] = tau
                try:
                    estimator = est_cls(**params)
                    reason = estimator.incompatibility(task)
                except GradbenchError as exc:  # e.g. a τ outside the estimator's declared range
                    reason = str(exc)
                if reason:
                    bad.setdefault(_short_reason(reason, est_cls.name), []).append(tau)
                    continue
                n = samples if samples is not None else auto_samples(task, estimator)
                label = f"{est_cls.name}{'' if tau is None else f' τ={tau:g}'} on {task.name}"
                first = CellSpec(task_cls.name, est_cls.name, task_params, params, seeds[0], n, device, dtype)
                device_text = str(prepare(first).problem.theta.device)
                unit = max(1.0, estimator.relative_cost, estimator.evals_on(task))
                cost = n * task.D * task.K * unit + 20_000  # + per-cell overhead
                for seed in seeds:
                    spec = CellSpec(task_cls.name, est_cls.name, task_params, params, seed, n, device, dtype)
                    key = (
                        task.name,
                        format_params(task.config),
                        est_cls.name,
                        format_params({k: v for k, v in estimator.config.items() if k != "tau"}),
                        "" if tau is None else _text(estimator.config["tau"]),
                        str(seed),
                        str(n),
                        dtype,
                        device_text,
                    )
                    cells.append(GridCell(len(cells), spec, key, f"{label}, seed {seed}", float(cost)))
            for reason, bad_taus in bad.items():
                concerned = tuple(t for t in bad_taus if t is not None)
                if len(bad_taus) == len(points):
                    concerned = ()  # all of them
                skipped.append(Skip(task.describe(), est_cls.name, reason, concerned, len(bad_taus) * len(seeds)))
    return Grid(cells, skipped, list(taus), list(seeds))


# ---------------------------------------------------------------------------------------------------------------
# The output file
# ---------------------------------------------------------------------------------------------------------------


def read_rows(path: Path, columns: tuple[str, ...] = COLUMNS) -> list[dict[str, str]]:
    """The rows of an existing gradbench CSV (text values), after checking its header and that every row is whole."""
    header = read_header(path)
    if header is None:
        return []
    if tuple(header) != columns:
        raise GradbenchError(
            f"--out {path} exists with a different header (not a gradbench {len(columns)}-column results file); "
            "choose another --out"
        )
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        raise GradbenchError(f"{path} ends with a partial line; repair or move it before resuming")
    rows = []
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    next(reader)
    for number, values in enumerate(reader, start=2):
        if len(values) != len(columns):
            raise GradbenchError(f"{path}, line {number}: {len(values)} fields, expected {len(columns)}")
        rows.append(dict(zip(columns, values, strict=True)))
    return rows


def row_key(row: dict[str, Any]) -> CellKey:
    return tuple(_text(row[c]) for c in IDENTITY_COLUMNS)


def sort_file(path: Path, grid: Grid) -> None:
    """Rewrite ``path`` (atomically) in grid order: rows outside the grid first, in their order, then the grid's."""
    rows = read_rows(path)
    position = {cell.key: cell.index for cell in grid.cells}
    ordered = sorted(enumerate(rows), key=lambda ir: (position.get(row_key(ir[1]), -1), ir[0]))
    if [i for i, _ in ordered] != list(range(len(rows))):
        write_atomic(path, format_rows([r for _, r in ordered], header=True))


# ---------------------------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class SweepOutcome:
    total: int  # cells in the grid
    already: int  # found in the file (--resume)
    done: int = 0  # run and saved now
    failed: list[tuple[str, str]] = field(default_factory=list)  # (label, one-line reason)
    interrupted: bool = False
    seconds: float = 0.0
    saved: int = 0  # cells of the grid in the file at the end (counted in the file, not in memory)


class Listener:
    """Progress callbacks of :func:`run_sweep` (the CLI's rich display implements them)."""

    def start(self, todo: list[GridCell]) -> None: ...

    def cell_started(self, cell: GridCell) -> None: ...

    def cell_finished(self, cell: GridCell, error: str | None) -> None: ...


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, GradbenchError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _run_one(spec: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Run one cell, in a worker or in the main process: (row, None) or (None, why it failed)."""
    from gradbench.runner import run_cell

    try:
        return run_cell(spec), None
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a failing cell (e.g. NaN estimates) is reported, and the sweep goes on
        return None, _one_line(exc)


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent died (SIGKILL, OOM) stops at once instead of lingering as an orphan."""
    import os
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="gradbench-parent-watch").start()


def _init_worker(threads: int, plugins: list[str], parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _exit_with_parent(parent)
    import torch

    from gradbench.registry import load_builtins, load_plugin

    torch.set_num_threads(threads)
    load_builtins()
    for path in plugins:
        load_plugin(path)


def _raise_interrupt(signum, frame):  # SIGTERM behaves like Ctrl-C: stop, keep what is saved, say so
    raise KeyboardInterrupt


def prepare_output(path: Path, grid: Grid, resume: bool, overwrite: bool) -> tuple[list[GridCell], int]:
    """Check ``path`` and return (cells still to run, cells already in the file). Creates the file (header only)."""
    check_writable(path)
    rows = read_rows(path) if path.exists() else []
    if rows and not resume:
        if overwrite:
            rows = []
        else:
            raise GradbenchError(
                f"--out {path} already holds {len(rows)} rows: add --resume to run only the missing cells, "
                "--overwrite to replace it, or choose another --out"
            )
    if not path.exists() or read_header(path) is None or overwrite:
        write_atomic(path, format_rows([], header=True))
    present = {row_key(r) for r in rows}
    todo = [c for c in grid.cells if c.key not in present]
    return todo, len(grid.cells) - len(todo)


def run_sweep(
    grid: Grid,
    out: Path,
    todo: list[GridCell],
    workers: int = 1,
    threads: int = 1,
    plugins: Sequence[str | Path] = (),
    listener: Listener | None = None,
) -> SweepOutcome:
    """Run ``todo`` (cells of ``grid``), appending each row to ``out`` as soon as it is done.

    When every cell has been attempted, ``out`` is rewritten in grid order. Ctrl-C (or SIGTERM) stops the sweep:
    the rows saved so far stay, and the outcome says ``interrupted``.
    """
    listener = listener or Listener()
    outcome = SweepOutcome(total=len(grid.cells), already=len(grid.cells) - len(todo))
    t0 = time.perf_counter()
    previous = signal.getsignal(signal.SIGTERM)
    in_main = _is_main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _raise_interrupt)

    def finish(cell: GridCell, row: dict[str, Any] | None, error: str | None) -> None:
        if row is not None:
            append_rows(out, [row])
            outcome.done += 1
        else:
            outcome.failed.append((cell.label, error or "failed"))
        listener.cell_finished(cell, error)

    listener.start(todo)
    # A fixed shuffle: the cells' costs vary a lot along the grid, and a mixed order keeps the ETA honest.
    # The file is put back in grid order at the end, so the order of execution does not show in the result.
    todo = list(todo)
    random.Random(0).shuffle(todo)
    try:
        if workers <= 1:
            _run_serial(todo, threads, listener, finish)
        else:
            _run_parallel(todo, workers, threads, [str(p) for p in plugins], listener, finish)
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        outcome.seconds = time.perf_counter() - t0
    if not outcome.interrupted:
        sort_file(out, grid)
    keys = {cell.key for cell in grid.cells}
    outcome.saved = sum(row_key(r) in keys for r in read_rows(out))
    return outcome


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _run_serial(todo, threads, listener, finish) -> None:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for cell in todo:
            listener.cell_started(cell)
            row, error = _run_one(cell.spec)
            finish(cell, row, error)
    finally:
        torch.set_num_threads(previous)


def _run_parallel(todo, workers, threads, plugins, listener, finish, job=_run_one) -> None:
    """Run ``job(cell.spec)`` for every cell of ``todo`` in ``workers`` spawned processes; ``job`` returns
    (result, None) or (None, why it failed) and must be importable by the workers (``gradbench train`` passes its
    own)."""
    import multiprocessing
    import os
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")  # no fork of a process with threads (rich's refresh, torch)
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(threads, plugins, os.getpid())
    )
    pending: dict[Any, GridCell] = {}
    queue = iter(todo)
    try:
        for cell in queue:  # one cell per worker in flight, so the display shows what is really running
            pending[pool.submit(job, cell.spec)] = cell
            listener.cell_started(cell)
            if len(pending) >= workers:
                break
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: pending[f].index):
                cell = pending.pop(future)
                exc = future.exception()
                if isinstance(exc, BrokenProcessPool):
                    raise GradbenchError(f"a worker process died while running {cell.label} (out of memory?)")
                row, error = (None, _one_line(exc)) if exc is not None else future.result()
                finish(cell, row, error)
                nxt = next(queue, None)
                if nxt is not None:
                    pending[pool.submit(job, nxt.spec)] = nxt
                    listener.cell_started(nxt)
    except BaseException:
        for future in pending:
            future.cancel()
        for process in list(getattr(pool, "_processes", {}).values()):  # our own workers: stop them now
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def default_workers() -> int:
    """The CPUs this process may use."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1
