"""The terminal side of ``gradbench sweep``: a rich progress display and the closing summary."""

from __future__ import annotations

from collections import defaultdict

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from gradbench.executors import ExecutorOptions
from gradbench.sweep import Grid, GridCell, Listener, Skip, SweepOutcome


def _bar_with_eta(console: Console, *count_columns) -> Progress:
    """Spinner, bar, the given count columns, elapsed time, ETA and the description (sweep's and train's display)."""
    return Progress(
        SpinnerColumn(),
        BarColumn(),
        *count_columns,
        TimeElapsedColumn(),
        TextColumn("• ETA"),
        TimeRemainingColumn(),
        TextColumn("• {task.description}"),
        console=console,
        transient=False,
    )


class SweepProgress(Listener):
    """Overall bar (weighted by each cell's estimated cost, so the ETA is not fooled by cheap cells), done/total
    cells, elapsed, ETA, and the cell(s) in flight. Use as a context manager."""

    def __init__(self, console: Console, workers: int):
        self.workers = workers
        self.progress = _bar_with_eta(
            console, TextColumn("{task.fields[done]}/{task.fields[todo]} cells"), TextColumn("•")
        )
        self.bar = None
        self.in_flight: dict[int, GridCell] = {}
        self.done = 0

    def __enter__(self) -> SweepProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def start(self, todo: list[GridCell]) -> None:
        total = sum(c.cost for c in todo) or 1.0
        self.bar = self.progress.add_task("starting", total=total, done=0, todo=len(todo))

    def _describe(self) -> str:
        if not self.in_flight:
            return "done" if self.done else "starting"
        cells = sorted(self.in_flight.values(), key=lambda c: c.index)
        more = f" (+{len(cells) - 1} more)" if len(cells) > 1 else ""
        return cells[0].label + more

    def cell_started(self, cell: GridCell) -> None:
        self.in_flight[cell.index] = cell
        self.progress.update(self.bar, description=self._describe())

    def cell_finished(self, cell: GridCell, error: str | None) -> None:
        self.in_flight.pop(cell.index, None)
        self.done += 1
        self.progress.update(self.bar, advance=cell.cost, done=self.done, description=self._describe())


def _taus(taus: tuple[float, ...]) -> str:
    if not taus:
        return "all"
    if len(taus) <= 3:
        return ", ".join(f"{t:g}" for t in taus)
    return f"{taus[0]:g} … {taus[-1]:g} ({len(taus)} values)"


def skipped_table(skipped: list[Skip]) -> Table | None:
    """One row per (estimator, reason, temperatures), with the tasks concerned merged."""
    if not skipped:
        return None
    merged: dict[tuple[str, str, tuple[float, ...]], list[Skip]] = defaultdict(list)
    for s in skipped:
        merged[(s.estimator, s.reason, s.taus)].append(s)
    table = Table(title="Skipped (not run, not an error)", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("estimator", "task", "τ", "cells", "reason"):
        table.add_column(col, overflow="fold")
    for (estimator, reason, taus), items in merged.items():
        tasks = ", ".join(dict.fromkeys(s.task.split(" (")[0] for s in items))
        table.add_row(
            "all" if estimator == "*" else estimator, tasks, _taus(taus), str(sum(s.cells for s in items)), reason
        )
    return table


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def plan_line(grid: Grid, todo: int, already: int, options: ExecutorOptions) -> str:
    """'sweep: 234 cells (3 tasks, 4 estimators, 11 temperatures, 3 seeds) on 2 workers × 1 torch thread'"""
    tasks = len({c.spec.task for c in grid.cells})
    estimators = len({c.spec.estimator for c in grid.cells})
    extra = f"; {already} already in the file, {todo} to run" if already else ""
    threads = _plural(options.threads, "torch thread")
    if options.address is not None:
        where = f"the Dask scheduler {options.address}, {threads} per worker"
    elif options.engine == "dask":
        where = f"a Dask LocalCluster of {_plural(options.workers, 'worker')} × {threads}"
    else:
        where = f"{_plural(options.workers, 'worker')} × {threads}"
    return (
        f"sweep: {len(grid.cells)} cells ({tasks} tasks, {estimators} estimators, {len(grid.taus)} temperatures, "
        f"{len(grid.seeds)} seeds{extra}) on {where}"
    )


def outcome_line(outcome: SweepOutcome, out: str) -> str:
    saved = outcome.saved
    if outcome.interrupted:
        return (
            f"interrupted after {outcome.seconds:.1f} s: {saved} of {outcome.total} cells saved in {out} "
            f"({outcome.done} this run); add --resume to the same command to finish"
        )
    failed = f", {len(outcome.failed)} failed" if outcome.failed else ""
    return f"sweep done in {outcome.seconds:.1f} s: {saved} of {outcome.total} cells in {out}{failed}"


class TrainProgress:
    """``gradbench train``'s display: one bar over all the runs' steps (M/N steps, elapsed, ETA) and the run(s) in
    flight. Implements :class:`gradbench.train.TrainListener`; use as a context manager."""

    def __init__(self, console: Console):
        self.progress = _bar_with_eta(console, MofNCompleteColumn(), TextColumn("steps •"))
        self.bar = None
        self.in_flight: dict[int, str] = {}

    def __enter__(self) -> TrainProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def _describe(self) -> str:
        if not self.in_flight:
            return "done"
        labels = [self.in_flight[i] for i in sorted(self.in_flight)]
        return labels[0] + (f" (+{len(labels) - 1} more)" if len(labels) > 1 else "")

    def start(self, todo) -> None:
        self.bar = self.progress.add_task("starting", total=int(sum(r.cost for r in todo)) or 1)

    def cell_started(self, run) -> None:
        self.in_flight[run.index] = run.label
        self.progress.update(self.bar, description=self._describe())

    def advance(self, steps: int) -> None:
        self.progress.update(self.bar, advance=steps)

    def cell_finished(self, run, error) -> None:
        self.in_flight.pop(run.index, None)
        self.progress.update(self.bar, description=self._describe())
