"""Wall time of the default sweep on ``local`` and ``dask`` executors, 1 and 2 workers, interleaved (issue 11).

    .venv/bin/python benchmarks/cluster_scaling.py [--rounds 2] [--workers 1,2] [--tasks all --estimators all]

Each round runs the four configurations back to back (local 1, dask 1, local 2, dask 2; the order rotates from
round to round), so that a machine shared with other work slows them alike; the load average is printed before and
after. Wall time counts everything a user waits for: starting the executor (a process pool's spawns, a Dask
LocalCluster's scheduler and workers), running the cells, writing and sorting the CSV. Every run's rows must equal
the first run's (timing columns aside), or the script fails. Reported per worker count: the medians over rounds,
Dask's start-up, and Dask's overhead per cell, (wall_dask − wall_local) / cells, in ms and in % of local's wall.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from gradbench import sweep as sw
from gradbench.executors import ExecutorOptions, open_executor
from gradbench.registry import default_sweep_estimators, default_sweep_tasks, get_estimator, get_task


def run_once(grid, engine: str, workers: int, folder: Path, tag: str) -> tuple[float, float, list[dict]]:
    """(wall seconds including start-up, start-up seconds, rows without timing columns)."""
    path = folder / f"{tag}.csv"
    t0 = time.perf_counter()
    todo, _ = sw.prepare_output(path, grid, resume=False, overwrite=False)
    with open_executor(ExecutorOptions(engine, workers, 1)) as executor:
        started = time.perf_counter() - t0
        outcome = sw.run_sweep(grid, path, todo, executor=executor)
    wall = time.perf_counter() - t0
    if outcome.failed or outcome.interrupted:
        raise SystemExit(f"{tag}: the sweep did not complete ({outcome.failed[:1]})")
    rows = [{k: v for k, v in r.items() if k not in sw.TIMING_COLUMNS} for r in sw.read_rows(path)]
    return wall, started, rows


def main() -> None:
    from gradbench.allocator import tune_allocator

    tune_allocator()  # as the CLI does
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--tasks", default="all")
    parser.add_argument("--estimators", default="all")
    args = parser.parse_args()
    grid = sw.expand_grid(
        tasks=sw.parse_names(args.tasks, "task", default_sweep_tasks(), get_task),
        estimators=sw.parse_names(args.estimators, "estimator", default_sweep_estimators(), get_estimator),
        taus=sw.parse_taus(sw.DEFAULT_TAUS),
        seeds=sw.parse_seeds(sw.DEFAULT_SEEDS),
    )
    counts = [int(w) for w in args.workers.split(",")]
    configs = [(engine, w) for w in counts for engine in ("local", "dask")]
    cells = len(grid.cells)
    print(f"default sweep: {cells} cells; {os.cpu_count()} CPUs; load average before {os.getloadavg()}")
    walls: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    starts: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    reference = None
    with tempfile.TemporaryDirectory() as folder:
        for r in range(args.rounds):
            order = configs[r % len(configs) :] + configs[: r % len(configs)]
            for engine, w in order:
                wall, started, rows = run_once(grid, engine, w, Path(folder), f"{engine}-{w}-{r}")
                if reference is None:
                    reference = rows
                elif rows != reference:
                    raise SystemExit(f"{engine} with {w} workers wrote different rows")
                walls[engine, w].append(wall)
                starts[engine, w].append(started)
                print(f"  round {r + 1}: {engine:5s} {w} worker(s): {wall:7.1f} s (start-up {started:.1f} s)")
    print(f"load average after {os.getloadavg()}; all {len(configs) * args.rounds} CSVs equal (timing aside)")
    print("| workers | local wall (s) | dask wall (s) | dask start-up (s) | dask overhead per cell | dask / local |")
    print("|---|---|---|---|---|---|")
    for w in counts:
        local, dask = statistics.median(walls["local", w]), statistics.median(walls["dask", w])
        start = statistics.median(starts["dask", w])
        per_cell = (dask - local) / cells * 1000
        print(f"| {w} | {local:.1f} | {dask:.1f} | {start:.1f} | {per_cell:+.1f} ms | {dask / local:.3f} |")


if __name__ == "__main__":
    main()
