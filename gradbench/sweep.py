"""``gradbench sweep``: run a grid of cells (see :mod:`gradbench.grid`) on an executor, write one CSV.

Execution. The cells go to an executor (:mod:`gradbench.executors`: ``local`` runs them in this process or in
``workers`` spawned processes, ``dask`` on a Dask cluster), each worker with ``threads`` torch threads; the sweep
does not know which one it talks to. Only this process writes the file: every finished cell is appended to the CSV
at once (one ``write`` of a whole line, then fsync; see :func:`gradbench.results.append_rows`), in completion
order; when the sweep completes, the file is rewritten atomically in grid order. The rows (timing columns aside)
are therefore identical for any executor and number of workers, and a sweep killed at any moment leaves a CSV
holding only whole rows; ``resume`` runs only the cells whose identity (:data:`IDENTITY_COLUMNS`) is not in the
file yet, or whose row there was made by other code (its ``code_fingerprint`` differs from the current
estimator's and task's: :mod:`gradbench.fingerprint`); such a cell's new row replaces the old one. While a sweep
runs, it holds the output's advisory lock (:mod:`gradbench.locking`): a second sweep on the same file is refused.
"""

from __future__ import annotations

import csv
import io
import random
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradbench.errors import GradbenchError
from gradbench.executors import CONNECT_TIMEOUT, Executor, ExecutorOptions, one_line, open_executor
from gradbench.grid import (  # noqa: F401  (re-exported: the grid was part of this module)
    AUTO_BUDGET,
    AUTO_MAX,
    AUTO_MIN,
    DEFAULT_SEEDS,
    DEFAULT_TAUS,
    CellKey,
    Grid,
    GridCell,
    Skip,
    _text,
    auto_samples,
    expand_grid,
    parse_names,
    parse_samples,
    parse_seeds,
    parse_taus,
    round_sig,
)
from gradbench.results import (
    COLUMNS,
    IDENTITY_COLUMNS,
    append_rows,
    check_writable,
    format_rows,
    older_file_message,
    older_format,
    read_header,
    write_atomic,
)
from gradbench.results import TIMING_COLUMNS as RESULT_TIMING_COLUMNS

_one_line = one_line  # the name gradbench.train imports

TIMING_COLUMNS = RESULT_TIMING_COLUMNS
"""The only columns allowed to differ between two runs of the same sweep (any executor, worker count, resumed or
not): defined once in gradbench.results."""

# ---------------------------------------------------------------------------------------------------------------
# The output file
# ---------------------------------------------------------------------------------------------------------------


def read_rows(path: Path, columns: tuple[str, ...] = COLUMNS) -> list[dict[str, str]]:
    """The rows of an existing gradbench CSV (text values), after checking its header and that every row is whole."""
    header = read_header(path)
    if header is None:
        return []
    if columns == COLUMNS and older_format(header):
        raise GradbenchError(older_file_message(path, header))
    if tuple(header) != columns:
        raise GradbenchError(
            f"--out {path} exists with a different header (not a gradbench {len(columns)}-column results file); "
            "choose another --out"
        )
    data = path.read_bytes()
    if b"\0" in data:
        raise GradbenchError(f"{path} is not a text CSV file (it holds NUL bytes); choose another --out")
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
    """Rewrite ``path`` (atomically) in grid order: rows outside the grid first, in their order, then the grid's.
    A grid cell with several rows (re-run by ``--resume`` because its code changed) keeps only its last one."""
    rows = read_rows(path)
    position = {cell.key: cell.index for cell in grid.cells}
    last = {row_key(r): i for i, r in enumerate(rows)}
    kept = [(i, r) for i, r in enumerate(rows) if row_key(r) not in position or last[row_key(r)] == i]
    ordered = sorted(kept, key=lambda ir: (position.get(row_key(ir[1]), -1), ir[0]))
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


def run_one(cell: GridCell) -> tuple[dict[str, Any] | None, str | None]:
    """Run one cell, on whichever worker the executor chose: (row, None) or (None, why it failed)."""
    from gradbench.runner import run_cell

    try:
        return run_cell(cell.spec), None
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a failing cell (e.g. NaN estimates) is reported, and the sweep goes on
        return None, one_line(exc)


def _raise_interrupt(signum, frame):  # SIGTERM behaves like Ctrl-C: stop, keep what is saved, say so
    raise KeyboardInterrupt


def prepare_output(path: Path, grid: Grid, resume: bool, overwrite: bool) -> tuple[list[GridCell], int]:
    """Check ``path`` and return (cells still to run, cells already in the file). Writes nothing: the file is
    created (or, with ``overwrite``, emptied) by :func:`run_sweep` once its executor has started."""
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
    made_by = {row_key(r): r["code_fingerprint"] for r in rows}  # a cell's last row counts
    todo = [c for c in grid.cells if made_by.get(c.key) != cell_fingerprint(c)]
    return todo, len(grid.cells) - len(todo)


def cell_fingerprint(cell: GridCell) -> str:
    """The code fingerprint a row of ``cell`` made now would carry (:mod:`gradbench.fingerprint`)."""
    from gradbench.fingerprint import code_fingerprint

    return code_fingerprint(cell.spec.estimator, cell.spec.task)


def stale_cells(path: Path, grid: Grid) -> list[GridCell]:
    """The grid's cells that have a row in ``path`` made by other code (another ``code_fingerprint``):
    ``--resume`` runs them again, and the new row replaces the old one."""
    made_by = {row_key(r): r["code_fingerprint"] for r in read_rows(path)} if path_has_header(path) else {}
    return [c for c in grid.cells if c.key in made_by and made_by[c.key] != cell_fingerprint(c)]


def run_sweep(
    grid: Grid,
    out: Path,
    todo: list[GridCell],
    workers: int = 1,
    threads: int = 1,
    plugins: Sequence[str | Path] = (),
    listener: Listener | None = None,
    executor: str | Executor = "local",
    address: str | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
    overwrite: bool = False,
) -> SweepOutcome:
    """Run ``todo`` (cells of ``grid``) on ``executor``, appending each row to ``out`` as soon as it is done.

    ``executor`` is an engine name (``local``, ``dask``; started here with ``workers``, ``threads``, ``plugins``,
    ``address`` and stopped at the end) or an :class:`~gradbench.executors.Executor` already open (left open).
    ``out`` is created (or emptied, with ``overwrite``) only once the executor has started, so a cluster that
    cannot be reached leaves it untouched. When every cell has been attempted, ``out`` is rewritten in grid order.
    Ctrl-C (or SIGTERM) stops the sweep: the rows saved so far stay, and the outcome says ``interrupted``.
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

    # A fixed shuffle: the cells' costs vary a lot along the grid, and a mixed order keeps the ETA honest.
    # The file is put back in grid order at the end, so the order of execution does not show in the result.
    shuffled = list(todo)
    random.Random(0).shuffle(shuffled)
    listener.start(todo)
    try:
        if isinstance(executor, str):
            options = ExecutorOptions(executor, workers, threads, address, connect_timeout)
            opened = open_executor(options, [str(p) for p in plugins])
        else:
            opened = executor
        try:
            if overwrite or not path_has_header(out):
                write_atomic(out, format_rows([], header=True))
            for done in opened.map_unordered(run_one, shuffled, started=listener.cell_started):
                row, error = done.value if done.error is None else (None, done.error)
                finish(done.item, row, error)
        finally:
            if opened is not executor:
                opened.close()
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        outcome.seconds = time.perf_counter() - t0
    if not outcome.interrupted:
        sort_file(out, grid)
    keys = {cell.key for cell in grid.cells}
    outcome.saved = sum(row_key(r) in keys for r in read_rows(out)) if out.exists() else 0
    return outcome


def path_has_header(path: Path) -> bool:
    return path.exists() and read_header(path) is not None


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def default_workers() -> int:
    """The CPUs this process may use."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1
