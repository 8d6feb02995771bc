"""The ``gradbench`` command line. Commands are thin: they parse, call library code, and print.

Heavy imports (torch, pandas, matplotlib) happen inside the commands so ``gradbench --help`` stays fast.
Every user error is one line on stderr and exit code 2 (see :class:`OneLineErrors`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from gradbench import __version__
from gradbench.errors import GradbenchError

DEFAULT_OUT = Path("results") / "runs.csv"
DEFAULT_SAMPLES = 200_000


class OneLineErrors(TyperGroup):
    """Print user errors (ours and the argument parser's) as one line on stderr with exit code 2; no traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except GradbenchError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted", code=130)
        except Exception as exc:
            # The vendored click's UsageError/BadParameter and friends: duck-typed to avoid a private import.
            if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
                _fail(" ".join(exc.format_message().split()), code=2)
            if type(exc).__name__ == "Abort":
                _fail("aborted", code=1)
            raise
        sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str, code: int = 2) -> None:
    print(f"gradbench: error: {message}", file=sys.stderr)
    sys.exit(code)


app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure gradient estimators for discrete variables against exact gradients.",
)


def _version(value: bool) -> None:
    if value:
        print(f"gradbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """gradbench: bias, variance, MSE and cost of discrete gradient estimators, against the exact gradient."""


def parse_key_values(items: list[str] | None, flag: str) -> dict[str, str]:
    """['a=1', 'b=2'] -> {'a': '1', 'b': '2'}; malformed or repeated keys are errors."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise GradbenchError(f"{flag} {item!r}: expected KEY=VALUE")
        if key in out:
            raise GradbenchError(f"{flag} {key} given twice")
        out[key] = value
    return out


def load_plugins(plugins: list[Path] | None) -> None:
    from gradbench.registry import load_builtins, load_plugin

    load_builtins()
    for path in plugins or []:
        load_plugin(path)


def set_threads(threads: int | None) -> int:
    import torch

    if threads is not None:
        if threads < 1:
            raise GradbenchError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


PluginOpt = Annotated[
    list[Path] | None,
    typer.Option("--plugin", help="Python file that registers extra tasks/estimators (repeatable)."),
]


@app.command()
def run(
    estimator: Annotated[str, typer.Option("--estimator", "-e", help="Estimator name (see `gradbench list`).")],
    task: Annotated[str, typer.Option("--task", "-t", help="Task name (see `gradbench list`).")] = "bernoulli",
    task_opt: Annotated[
        list[str] | None, typer.Option("--task-opt", help="Task option KEY=VALUE (repeatable).")
    ] = None,
    est_opt: Annotated[
        list[str] | None, typer.Option("--est-opt", help="Estimator hyper-parameter KEY=VALUE (repeatable).")
    ] = None,
    tau: Annotated[float | None, typer.Option("--tau", help="Temperature τ > 0 (relaxation estimators).")] = None,
    samples: Annotated[int, typer.Option("--samples", "-n", help="Number of gradient estimates.")] = DEFAULT_SAMPLES,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the cell's random numbers.")] = 0,
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV file the result row is appended to.")] = DEFAULT_OUT,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    dtype: Annotated[str, typer.Option("--dtype", help="float32 or float64 for the estimates.")] = "float32",
    threads: Annotated[
        int | None, typer.Option("--threads", help="torch intra-op threads (default 1, recorded in the CSV).")
    ] = 1,
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", help="Estimates per vectorized call (results do not depend on it).")
    ] = None,
    plugin: PluginOpt = None,
) -> None:
    """Measure one estimator on one task: print the metrics and append a row to a CSV."""
    from gradbench.allocator import tune_allocator
    from gradbench.results import append_rows, check_writable
    from gradbench.runner import CellSpec, prepare, run_cell

    load_plugins(plugin)
    set_threads(threads)
    tune_allocator()
    params: dict[str, Any] = dict(parse_key_values(est_opt, "--est-opt"))
    if tau is not None:
        if "tau" in params:
            raise GradbenchError("give the temperature once: --tau or --est-opt tau=…")
        params["tau"] = tau
    spec = CellSpec(
        task=task,
        estimator=estimator,
        task_params=parse_key_values(task_opt, "--task-opt"),
        estimator_params=params,
        seed=seed,
        n_samples=samples,
        device=device,
        dtype=dtype,
        chunk_size=chunk_size,
    )
    prepare(spec)  # every input error before the output file is touched or any work is done
    check_writable(out)
    row = _run_with_progress(spec, run_cell)
    append_rows(out, [row])

    from gradbench.report import metrics_table

    console = _console()
    console.print(metrics_table(row))
    console.print(f"[dim]row appended to[/dim] {out}")


def _console():
    from rich.console import Console

    return Console(width=int(os.environ.get("COLUMNS", "0")) or None)


def _run_with_progress(spec, run_cell):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        bar = progress.add_task(f"{spec.estimator} on {spec.task}", total=spec.n_samples)
        return run_cell(spec, on_progress=lambda k: progress.advance(bar, k))


@app.command("list")
def list_(plugin: PluginOpt = None) -> None:
    """List estimators and tasks with their flags, hyper-parameters and options."""
    from gradbench.registry import all_estimators, all_tasks
    from gradbench.report import estimators_table, tasks_table

    load_plugins(plugin)
    console = _console()
    console.print(estimators_table(all_estimators()))
    console.print(tasks_table(all_tasks()))


@app.command()
def bench(
    samples: Annotated[int, typer.Option("--samples", "-n", help="Estimates per timed cell.")] = 1_000_000,
    repeats: Annotated[int, typer.Option("--repeats", help="Interleaved repeats; medians are reported.")] = 3,
    threads: Annotated[int, typer.Option("--threads", help="torch intra-op threads (recorded).")] = 1,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    dtype: Annotated[str, typer.Option("--dtype", help="float32 or float64.")] = "float32",
    tau: Annotated[float, typer.Option("--tau", help="Temperature of the relaxation estimators.")] = 0.5,
    estimator: Annotated[
        list[str] | None, typer.Option("--estimator", "-e", help="Estimator to measure (repeatable; default all).")
    ] = None,
    task_opt: Annotated[
        list[str] | None, typer.Option("--task-opt", help="Option of the quadratic task, e.g. categories=2 dim=100.")
    ] = None,
    memory_samples: Annotated[
        str, typer.Option("--memory-samples", help="SMALL,LARGE sample counts of the peak-memory runs.")
    ] = "100000,10000000",
    memory: Annotated[bool, typer.Option("--memory/--no-memory", help="Measure peak memory (subprocesses).")] = True,
    naive_seconds: Annotated[
        float, typer.Option("--naive-seconds", help="Seconds spent in each naive per-draw loop.")
    ] = 0.5,
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV file written with one row per estimator.")] = Path(
        "results"
    )
    / "throughput.csv",
    markdown: Annotated[bool, typer.Option("--markdown", help="Also print the table as Markdown.")] = False,
    plugin: PluginOpt = None,
) -> None:
    """Throughput: estimates/s of each estimator against a naive loop, stock batched torch and the random-fill limit."""
    from gradbench.allocator import tune_allocator
    from gradbench.bench import cli_main

    load_plugins(plugin)
    tune_allocator()
    cli_main(
        samples=samples,
        repeats=repeats,
        threads=threads,
        device=device,
        dtype=dtype,
        tau=tau,
        estimators=tuple(estimator or ()),
        task_params=parse_key_values(task_opt, "--task-opt"),
        memory_samples=memory_samples if memory else None,
        naive_seconds=naive_seconds,
        out=out,
        markdown=markdown,
        plugins=tuple(str(p) for p in plugin or ()),
        console=_console(),
    )


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
