"""``gradbench bench --sweep-scaling``: wall time of the default sweep with 1 and 2 worker processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gradbench.errors import GradbenchError


def sweep_scaling(
    workers: tuple[int, ...] = (1, 2),
    plugins: tuple[str, ...] = (),
    estimators: str = "all",
    tasks: str = "all",
    taus: str | None = None,
    seeds: str | None = None,
) -> list[dict[str, Any]]:
    """Wall time of the default sweep (``gradbench sweep`` with no arguments) for each worker count, in one process.

    Each run writes to its own temporary CSV; the rows must agree (timing columns aside), which is checked here so
    a faster run is never a run that did less. Returns one dict per worker count: workers, cells, seconds, speed-up.
    """
    import tempfile

    from gradbench import sweep as sw
    from gradbench.registry import all_estimators, default_sweep_tasks, get_estimator, get_task

    grid = sw.expand_grid(
        tasks=sw.parse_names(tasks, "task", default_sweep_tasks(), get_task),
        estimators=sw.parse_names(estimators, "estimator", all_estimators(), get_estimator),
        taus=sw.parse_taus(taus or sw.DEFAULT_TAUS),
        seeds=sw.parse_seeds(seeds or sw.DEFAULT_SEEDS),
    )
    out, contents = [], []
    with tempfile.TemporaryDirectory() as folder:
        for count in workers:
            path = Path(folder) / f"sweep-{count}.csv"
            todo, _ = sw.prepare_output(path, grid, resume=False, overwrite=False)
            outcome = sw.run_sweep(grid, path, todo, workers=count, threads=1, plugins=plugins)
            if outcome.interrupted or outcome.failed:
                raise GradbenchError(f"default sweep with {count} workers did not complete")
            rows = sw.read_rows(path)
            contents.append([{k: v for k, v in r.items() if k not in sw.TIMING_COLUMNS} for r in rows])
            out.append({"workers": count, "cells": len(rows), "seconds": outcome.seconds})
    if any(c != contents[0] for c in contents[1:]):
        raise GradbenchError("the default sweep's rows differ between worker counts")
    for row in out:
        row["speedup"] = out[0]["seconds"] / row["seconds"]
    return out


def sweep_scaling_table(rows: list[dict[str, Any]]):
    from rich.table import Table

    table = Table(title=f"Default sweep wall time ({rows[0]['cells']} cells, 1 torch thread per worker)")
    for col in ("workers", "seconds", "speed-up vs 1 worker"):
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(str(row["workers"]), f"{row['seconds']:.1f}", f"×{row['speedup']:.2f}")
    return table
