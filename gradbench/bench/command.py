"""What ``gradbench bench`` does: check every input, then measure, writing each row as it completes.

Order (issue 16): every argument is validated, the estimators are prepared and ``--out`` is checked (a foreign or
non-regular file is refused) before anything is written; the CSV is then rewritten atomically after each estimator,
so an interrupted run keeps its finished rows. Without ``--out`` the rows go to a new file
``results/bench-<UTC time>.csv``: an existing (say, committed) file is only ever replaced when ``--out`` names it.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from gradbench.bench.config import BenchConfig, select_estimators, validate
from gradbench.bench.measure import run_benchmark, steps_per_estimator
from gradbench.bench.output import check_out, default_out, describe, markdown_table, rich_table, write_csv
from gradbench.errors import GradbenchError

LONG = {"samples": 2_000_000, "repeats": 5, "memory_samples": (100_000, 10_000_000)}
"""``--long``: the measurement of issue 15 (ours marginal from 2·10⁴ to 2·10⁶, memory at 10⁵ and 10⁷)."""


def parse_memory_samples(text: str) -> tuple[int, int]:
    try:
        small, large = (int(float(part)) for part in text.split(","))
    except (ValueError, OverflowError):
        raise GradbenchError(f"--memory-samples {text!r}: expected SMALL,LARGE, e.g. 100000,10000000") from None
    return small, large


def cli_main(
    *,
    memory_samples: str | None,
    memory: bool,
    long: bool,
    out: Path | None,
    markdown: bool,
    console,
    scaling: bool = False,
    **options: Any,
) -> None:
    from rich.console import Console

    err = Console(stderr=True)
    config = BenchConfig(log=lambda text: None, **options)
    if long:
        config = replace(config, **LONG)
    if memory_samples is not None:
        config = replace(config, memory_samples=parse_memory_samples(memory_samples))
    if not memory:
        config = replace(config, memory_samples=None)
    validate(config)
    path = out if out is not None else default_out()
    check_out(path)
    names, notes = select_estimators(config)

    rows: list[dict[str, Any]] = []
    total = len(names) * steps_per_estimator(config)
    started = time.perf_counter()
    done = 0

    def advance(text: str) -> None:
        nonlocal done
        done += 1
        elapsed = time.perf_counter() - started
        eta = elapsed / done * (total - done)
        err.print(
            f"[dim][{done}/{total}] {text} · {elapsed:.0f} s elapsed, about {eta:.0f} s left[/dim]", highlight=False
        )

    def on_row(row: dict[str, Any]) -> None:
        rows.append(row)
        write_csv(path, rows)

    err.print(
        f"[dim]gradbench bench: {', '.join(names)}; {total} steps; rows written to {path} as they complete[/dim]",
        highlight=False,
    )
    run_benchmark(config, on_row=on_row, advance=advance, names=names)
    wide = console if console.is_terminal or os.environ.get("COLUMNS") else Console(width=max(console.width, 160))
    wide.print(rich_table(rows))  # piped or redirected: 12 columns need more than rich's default 80
    for note in notes:
        console.print(f"[yellow]{note}[/yellow]")
    if markdown:
        print(describe(rows))
        print()
        print(markdown_table(rows))
    console.print(f"[dim]written to[/dim] {path} [dim]in {time.perf_counter() - started:.0f} s[/dim]")
    if scaling:
        from gradbench.bench.scaling import sweep_scaling, sweep_scaling_table

        err.print("[dim]timing the default sweep with 1 and then 2 workers …[/dim]")
        console.print(sweep_scaling_table(sweep_scaling(plugins=tuple(str(p) for p in config.plugins))))
