"""The ``gradbench`` command line. Commands are thin: they parse, call library code, and print.

Heavy imports (torch, pandas, matplotlib) happen inside the commands so ``gradbench --help`` stays fast.
Every user error is one line on stderr and exit code 2 (see :class:`OneLineErrors`).
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from gradbench import __version__
from gradbench.errors import GradbenchError
from gradbench.executors import CONNECT_TIMEOUT
from gradbench.limits import check_count
from gradbench.sweep import DEFAULT_SEEDS, DEFAULT_TAUS

DEFAULT_OUT = Path("results") / "runs.csv"
DEFAULT_SAMPLES = 200_000
DEFAULT_SWEEP_OUT = Path("results") / "sweep.csv"

PerOpt = Annotated[
    str,
    typer.Option(
        "--per", help="Compare MSE per estimate, at equal f evaluations, or at equal time: estimate|evals|time."
    ),
]
BudgetOpt = Annotated[
    float | None,
    typer.Option(
        "--budget", help="The common budget: f evaluations (--per evals, default 12) or seconds (--per time, 1e-4)."
    ),
]
OnlyOpt = Annotated[str | None, typer.Option("--only", help="Only these estimators (comma list).")]
ExcludeOpt = Annotated[str | None, typer.Option("--exclude", help="Leave out these estimators (comma list).")]
FamilyOpt = Annotated[
    str | None, typer.Option("--family", help="Only estimators of these families (comma list; e.g. relaxation).")
]


DEBUG = False
"""``--debug`` (anywhere on the command line) or GRADBENCH_DEBUG=1: print the traceback behind a one-line error."""


class OneLineErrors(TyperGroup):
    """Print user errors (ours and the argument parser's) as one line on stderr with exit code 2; no traceback
    unless ``--debug`` is given (anywhere on the command line)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        global DEBUG
        args = list(sys.argv[1:] if args is None else args)
        end = args.index("--") if "--" in args else len(args)
        DEBUG = "--debug" in args[:end] or os.environ.get("GRADBENCH_DEBUG", "") not in ("", "0")
        args = [a for i, a in enumerate(args) if not (i < end and a == "--debug")]
        warnings.showwarning = _warning_line
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except GradbenchError as exc:
            if DEBUG:
                import traceback

                traceback.print_exception(exc.__cause__ or exc, file=sys.stderr)
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted", code=130)
        except MemoryError:
            _fail("out of memory: the work needs more memory than is available; give a smaller size or --samples")
        except OSError as exc:  # a safety net: file-system errors the up-front checks did not foresee
            where = f" ({exc.filename})" if exc.filename else ""
            _fail(f"{exc.strerror or exc}{where}; check the path and the free space")
        except Exception as exc:
            # The vendored click's UsageError/BadParameter and friends: duck-typed to avoid a private import.
            if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
                message = exc.format_message()
                if not message.strip() and type(exc).__name__ == "NoArgsIsHelpError":
                    message = "no command given; see the commands above or run `gradbench --help`"
                _fail(message or type(exc).__name__, code=2)
            if type(exc).__name__ == "Abort":
                _fail("aborted", code=1)
            if isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc):  # torch's allocator
                _fail("out of memory: " + str(exc).split("DefaultCPUAllocator: ")[-1])
            raise
        sys.exit(result if isinstance(result, int) else 0)


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"gradbench: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _fail(message: str, code: int = 2) -> None:
    """One line, always: whatever whitespace (newlines) a message holds is folded."""
    message = " ".join(str(message).split()) or "failed (no message)"
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
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback behind an error (may be given after the command).")
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


def load_plugins(plugins: list[Path] | None, surrogates: list[str] | None = None) -> list[str]:
    """--plugin FILE.py | pkg.mod[:Class] (repeatable), then --surrogate pkg.mod:fn[=NAME] (repeatable); returns
    the surrogates' estimator names."""
    from gradbench.api import load_plugins as load

    load([str(p) for p in plugins or []])
    if not surrogates:
        return []
    from gradbench.surrogate import register_cli_surrogate

    return [register_cli_surrogate(spec) for spec in surrogates]


def _estimator_or_surrogate(estimator: str | None, surrogates: list[str]) -> str:
    if estimator is not None:
        return estimator
    if len(surrogates) == 1:
        return surrogates[0]
    raise GradbenchError("Missing option '--estimator' / '-e' (or give exactly one --surrogate)")


def set_threads(threads: int | None) -> int:
    from gradbench.limits import check_count

    if threads is not None:
        check_count(threads, "--threads", "torch threads")
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


ForceOpt = Annotated[
    bool, typer.Option("--force", help="Run even when the estimated time exceeds a day (see docs/hardening.md).")
]
ExecutorOpt = Annotated[
    str,
    typer.Option("--executor", help="Where cells run: local (processes here) or dask (see docs/cluster.md)."),
]
AddressOpt = Annotated[
    str | None,
    typer.Option("--address", help="--executor dask: a running scheduler, tcp://HOST:PORT (default: a LocalCluster)."),
]
TimeoutOpt = Annotated[
    float, typer.Option("--connect-timeout", help="--address: seconds to wait for the scheduler and a worker.")
]


def executor_options(engine: str, workers: int | None, threads: int, address: str | None, timeout: float):
    """The executor the user chose (``--executor``, ``--workers``, ``--threads``, ``--address``), validated."""
    from gradbench.executors import ExecutorOptions

    if address is not None and workers is not None:
        raise GradbenchError("--workers does not apply with --address: the cluster's workers are used")
    if workers is None:
        from gradbench.sweep import default_workers

        workers = default_workers()
    options = ExecutorOptions(engine, workers, threads, address, timeout)
    options.validate()
    return options


PluginOpt = Annotated[
    list[Path] | None,
    typer.Option("--plugin", help="Python file (or pkg.mod[:Class]) registering tasks/estimators (repeatable)."),
]
SurrogateOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--surrogate", help="pkg.mod:fn (or file.py:fn) surrogate loss, registered as estimator fn (repeatable)."
    ),
]


@app.command()
def run(
    estimator: Annotated[
        str | None,
        typer.Option("--estimator", "-e", help="Estimator name (see `gradbench list`); default: the --surrogate."),
    ] = None,
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
    dtype: Annotated[
        str,
        typer.Option(
            "--dtype", help="float32, float64, float16 or bfloat16 for the estimates (statistics stay float64)."
        ),
    ] = "float32",
    threads: Annotated[
        int | None, typer.Option("--threads", help="torch intra-op threads (default 1, recorded in the CSV).")
    ] = 1,
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", help="Estimates per vectorized call (results do not depend on it).")
    ] = None,
    force: ForceOpt = False,
    plugin: PluginOpt = None,
    surrogate: SurrogateOpt = None,
    fmt: Annotated[
        str, typer.Option("--format", help="Output: table, or json (the row as one JSON object).")
    ] = "table",
) -> None:
    """Measure one estimator on one task: print the metrics and append a row to a CSV (or .jsonl)."""
    from gradbench import api
    from gradbench.allocator import tune_allocator

    if fmt not in ("table", "json"):
        raise GradbenchError(f"--format must be table or json, got {fmt!r}")
    names = load_plugins(plugin, surrogate)
    estimator = _estimator_or_surrogate(estimator, names)
    tune_allocator()
    row = _with_bar(
        f"{estimator} on {task}",
        samples,
        lambda advance: api.run(
            estimator,
            task,
            tau=tau,
            task_opts=parse_key_values(task_opt, "--task-opt"),
            est_opts=parse_key_values(est_opt, "--est-opt"),
            samples=samples,
            seed=seed,
            device=device,
            dtype=dtype,
            chunk_size=chunk_size,
            threads=set_threads(threads),
            out=out,
            on_progress=advance,
            force=force,
        ),
    )
    if fmt == "json":
        from gradbench.jsonrows import row_json

        print(row_json(row))
        return
    from gradbench.judge import verdict
    from gradbench.report import metrics_table

    console = _console()
    console.print(metrics_table(row))
    console.print(verdict(row), highlight=False, markup=False)
    console.print(f"[dim]row appended to[/dim] {out}")


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(width=int(os.environ.get("COLUMNS", "0")) or None, stderr=stderr)


def _with_bar(label: str, total: int, work):
    """``work(advance)`` under a transient progress bar on stderr (erased when done or on an error)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        bar = progress.add_task(label, total=total)
        return work(lambda k: progress.advance(bar, k))


@app.command()
def sweep(
    estimators: Annotated[
        list[str] | None, typer.Option("--estimators", "-e", help="Comma list of estimators, or all (repeatable).")
    ] = None,
    tasks: Annotated[
        list[str] | None, typer.Option("--tasks", "-t", help="Comma list of tasks, or all (repeatable).")
    ] = None,
    taus: Annotated[
        str, typer.Option("--taus", help="Temperatures: a comma list, or LOW:HIGH:COUNT log-spaced.")
    ] = DEFAULT_TAUS,
    seeds: Annotated[str, typer.Option("--seeds", help="A count N (seeds 0..N-1) or a comma list.")] = DEFAULT_SEEDS,
    samples: Annotated[
        str, typer.Option("--samples", "-n", help="Estimates per cell, or auto (a fixed budget per cell).")
    ] = "auto",
    task_opt: Annotated[
        list[str] | None,
        typer.Option("--task-opt", help="KEY=VALUE, KEY=V1,V2 or KEY=LOW:HIGH:COUNT[:log] for every task that has it."),
    ] = None,
    est_opt: Annotated[
        list[str] | None,
        typer.Option("--est-opt", help="KEY=VALUE or a list/range (as --task-opt) for every estimator that has it."),
    ] = None,
    vary: Annotated[
        list[str] | None,
        typer.Option("--vary", help="KEY=LOW:HIGH:COUNT[:log]: sweep a numeric task option or hyper-parameter."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV file of the sweep.")] = DEFAULT_SWEEP_OUT,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Parallel worker processes (default: CPU count).")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", help="torch threads per worker.")] = 1,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    connect_timeout: TimeoutOpt = CONNECT_TIMEOUT,
    resume: Annotated[
        bool, typer.Option("--resume", help="Run only the cells missing from --out (or made by other code).")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out.")] = False,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    dtype: Annotated[
        str,
        typer.Option(
            "--dtype", help="float32, float64, float16 or bfloat16 for the estimates (statistics stay float64)."
        ),
    ] = "float32",
    force: ForceOpt = False,
    plugin: PluginOpt = None,
) -> int:
    """Run a grid of cells (tasks × estimators × temperatures × seeds) into one CSV; see README, "Sweep"."""
    from gradbench import sweep as sw
    from gradbench.progress import SweepProgress, outcome_line, plan_line, skipped_table
    from gradbench.registry import default_sweep_estimators, default_sweep_tasks, get_estimator, get_task

    check_count(threads, "--threads", "torch threads")
    if workers is not None:
        check_count(workers, "--workers", "worker processes")
    load_plugins(plugin)
    set_threads(threads)
    options = executor_options(executor, workers, threads, address, connect_timeout)
    if resume and overwrite:
        raise GradbenchError("--resume and --overwrite exclude each other")
    grid = sw.expand_grid(
        tasks=sw.parse_names(",".join(tasks or ["all"]), "task", default_sweep_tasks(), get_task),
        estimators=sw.parse_names(
            ",".join(estimators or ["all"]), "estimator", default_sweep_estimators(), get_estimator
        ),
        taus=sw.parse_taus(taus),
        seeds=sw.parse_seeds(seeds),
        samples=sw.parse_samples(samples),
        task_opts=parse_key_values(task_opt, "--task-opt"),
        est_opts=parse_key_values(est_opt, "--est-opt"),
        device=device,
        dtype=dtype,
        vary=parse_key_values(vary, "--vary"),
    )
    console, status = _console(), _console(stderr=True)
    if not grid.cells:
        reasons = "; ".join(dict.fromkeys(f"{s.estimator}: {s.reason}" for s in grid.skipped))
        raise GradbenchError(f"nothing to run: every cell is skipped ({reasons})")
    from gradbench.executors import open_executor
    from gradbench.locking import output_lock
    from gradbench.results import check_writable
    from gradbench.runner import check_duration

    check_duration([c.spec for c in grid.cells], force, f"the sweep's {len(grid.cells):,} cells")
    check_writable(out)  # a path the lock file could not sit beside (FIFO, device, long name) is one clear line
    with output_lock(out, "sweep"):  # a second sweep on the same file is refused, naming this process
        todo, already = sw.prepare_output(out, grid, resume=resume, overwrite=overwrite)
        stale = len(sw.stale_cells(out, grid)) if resume else 0
        if stale:
            print(
                f"gradbench: note: {stale} cell{'s' * (stale != 1)} of {out} made by other code (code_fingerprint "
                "differs from the current estimator's and task's): run again, the new rows replace the old",
                file=sys.stderr,
            )
        options = replace(options, workers=max(1, min(options.workers, len(todo))))
        if not todo:  # nothing to run: no cluster to start or reach
            options = replace(options, engine="local", address=None)
        with open_executor(options, plugin or ()) as executor:  # an unreachable cluster: one line, file untouched
            status.print(plan_line(grid, len(todo), already, options), highlight=False)
            with SweepProgress(status, options.workers) as display:
                outcome = sw.run_sweep(grid, out, todo, listener=display, executor=executor, overwrite=overwrite)
    if outcome.interrupted:
        print(outcome_line(outcome, str(out)), file=sys.stderr)
        return 130
    table = skipped_table(grid.skipped)
    if table is not None:
        console.print(table)
    for label, reason in outcome.failed:
        console.print(f"[red]failed:[/red] {label}: {reason}", highlight=False, soft_wrap=True)
    console.print(outcome_line(outcome, str(out)), highlight=False)
    console.print(f"plot it:  gradbench plot {out}", highlight=False)
    return 1 if outcome.failed else 0


@app.command()
def plot(
    csv_file: Annotated[Path, typer.Argument(metavar="CSV", help="A gradbench results CSV (e.g. from sweep).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for the figures (default: CSV name + -figures).")
    ] = None,
    formats: Annotated[str, typer.Option("--format", "-f", help="Comma list of png, svg, pdf.")] = "png",
    metrics: Annotated[
        str, typer.Option("--metrics", "-m", help="Panels: comma list of bias, bias_sq, variance, mse, cosine, snr.")
    ] = "bias,variance,mse",
    per: PerOpt = "evals",
    budget: BudgetOpt = None,
    only: OnlyOpt = None,
    exclude: ExcludeOpt = None,
    family: FamilyOpt = None,
    x: Annotated[str, typer.Option("--x", help="x axis: tau, an option a sweep varied (e.g. k), or auto.")] = "auto",
) -> None:
    """Draw bias, variance and MSE against τ (or a varied option), one figure per task; print the best per point."""
    from gradbench.aggregate import load_results
    from gradbench.plots import check_out_dir, parse_formats, parse_metrics, plot_results, select
    from gradbench.summary import best_by_tau, nonfinite_lines, parse_budget, summary_markdown, summary_table
    from gradbench.xaxis import choose_axis

    fmts, panels = parse_formats(formats), parse_metrics(metrics)
    per, budget = parse_budget(per, budget)
    out = out if out is not None else csv_file.with_name(csv_file.stem + "-figures")
    if _is_train_csv(csv_file):  # training curves: their own module
        from gradbench.plots_train import plot_training

        check_out_dir(out)
        for path in plot_training(csv_file, out, fmts):
            _console().print(f"wrote {path}", highlight=False)
        return
    df = select(load_results(csv_file), only, exclude, family)
    _warn_mixed_code(df, csv_file)
    axis = choose_axis(df, x)
    check_out_dir(out)
    files, agg = plot_results(df, out, fmts, panels, per=per, budget=budget, axis=axis)
    best = best_by_tau(agg, per, budget)
    summary = out / "summary.md"
    from gradbench.results import write_atomic

    flagged = nonfinite_lines(df)
    write_atomic(summary, summary_markdown(best, str(csv_file), per, budget, flagged))
    console = _console()
    console.print(summary_table(best, str(csv_file), per, budget, flagged))
    for path in [*files, summary]:
        console.print(f"wrote {path}", highlight=False)


@app.command()
def report(
    csv_file: Annotated[Path, typer.Argument(metavar="CSV", help="A gradbench results CSV (e.g. from sweep).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write (one self-contained page).")] = Path(
        "report.html"
    ),
    per: PerOpt = "evals",
    budget: BudgetOpt = None,
    only: OnlyOpt = None,
    exclude: ExcludeOpt = None,
    family: FamilyOpt = None,
) -> None:
    """Write one self-contained HTML page: summary tables at equal cost and per estimate, figures, environment and
    the command lines."""
    from gradbench.aggregate import load_results
    from gradbench.html_report import build_report, check_out_file, write_report
    from gradbench.plots import select
    from gradbench.summary import parse_budget

    per, budget = parse_budget(per, budget)
    check_out_file(out)
    df = select(load_results(csv_file), only, exclude, family)
    _warn_mixed_code(df, csv_file)
    write_report(out, build_report(df, str(csv_file), per, budget, argv=sys.argv[1:]))
    _console().print(f"wrote {out}", highlight=False)


def _warn_mixed_code(df, csv_file: Path) -> None:
    """plot and report: one warning line on stderr when a line averages rows made by different code."""
    from gradbench.aggregate import mixed_code_warning

    warning = mixed_code_warning(df, csv_file)
    if warning:
        print(warning, file=sys.stderr)


DEFAULT_TRAIN_OUT = Path("results") / "train.csv"


@app.command()
def train(
    estimators: Annotated[
        list[str], typer.Option("--estimators", "-e", help="Comma list of estimators, or all (repeatable).")
    ],
    task: Annotated[str, typer.Option("--task", "-t", help="Task to train (a toy or a model task).")] = "bernoulli",
    task_opt: Annotated[
        list[str] | None, typer.Option("--task-opt", help="Task option KEY=VALUE (repeatable).")
    ] = None,
    est_opt: Annotated[
        list[str] | None, typer.Option("--est-opt", help="KEY=VALUE for every estimator that has it (repeatable).")
    ] = None,
    taus: Annotated[str, typer.Option("--taus", help="Temperatures (initial ones under a schedule).")] = "0.5",
    steps: Annotated[int, typer.Option("--steps", help="Optimizer steps per run.")] = 1000,
    seeds: Annotated[str, typer.Option("--seeds", help="A count N (seeds 0..N-1) or a comma list.")] = "3",
    lr: Annotated[float, typer.Option("--lr", help="Learning rate > 0.")] = 0.01,
    optimizer: Annotated[str, typer.Option("--optimizer", help="adam or sgd.")] = "adam",
    batch_estimates: Annotated[
        int, typer.Option("--batch-estimates", "-m", help="Estimates averaged per step (M).")
    ] = 1,
    eval_every: Annotated[int, typer.Option("--eval-every", help="Steps between evaluations.")] = 100,
    eval_samples: Annotated[
        int, typer.Option("--eval-samples", help="Estimates per gradient-quality evaluation.")
    ] = 1024,
    schedule: Annotated[
        str, typer.Option("--schedule", help="Temperature: constant or exponential (Jang et al. 2017).")
    ] = "constant",
    anneal_rate: Annotated[float, typer.Option("--anneal-rate", help="r in τ = max(τ_min, τ₀ e^(−r·step)).")] = 1e-4,
    tau_min: Annotated[float, typer.Option("--tau-min", help="Floor of the annealed temperature.")] = 0.5,
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV file of the training curves.")] = DEFAULT_TRAIN_OUT,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Parallel worker processes (default: CPU count).")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", help="torch threads per worker.")] = 1,
    resume: Annotated[bool, typer.Option("--resume", help="Run only the runs missing from --out.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out.")] = False,
    dtype: Annotated[str, typer.Option("--dtype", help="float32 or float64 for the estimates.")] = "float32",
    plugin: PluginOpt = None,
) -> int:
    """Optimise with each estimator's gradient; record the exact objective and the gradient quality along the way."""
    from gradbench import sweep as sw
    from gradbench import train as tr
    from gradbench.progress import TrainProgress
    from gradbench.registry import all_estimators, get_estimator

    load_plugins(plugin)
    set_threads(threads)
    if workers is None:
        workers = sw.default_workers()
    check_count(workers, "--workers", "worker processes")
    check_count(threads, "--threads", "torch threads")
    if resume and overwrite:
        raise GradbenchError("--resume and --overwrite exclude each other")
    settings = tr.TrainSettings(
        optimizer=optimizer,
        lr=lr,
        steps=steps,
        batch_estimates=batch_estimates,
        eval_every=eval_every,
        eval_samples=eval_samples,
        schedule=schedule,
        anneal_rate=anneal_rate,
        tau_min=tau_min,
        dtype=dtype,
    )
    settings.validate()
    runs = tr.plan_runs(
        task,
        sw.parse_names(",".join(estimators), "estimator", all_estimators(), get_estimator),
        sw.parse_taus(taus),
        sw.parse_seeds(seeds),
        settings,
        task_opts=parse_key_values(task_opt, "--task-opt"),
        est_opts=parse_key_values(est_opt, "--est-opt"),
        strict=",".join(estimators).strip() != "all",
    )
    todo, already = tr.prepare_output(out, runs, resume=resume, overwrite=overwrite)
    workers = max(1, min(workers, len(todo) or 1))
    status = _console(stderr=True)
    extra = f"; {already} already in the file" if already else ""
    status.print(
        f"train: {len(runs)} runs ({len(todo)} to do{extra}) × {steps} steps on {workers} worker(s)", highlight=False
    )
    with TrainProgress(status) as display:
        plugins = [str(p) for p in plugin or ()]
        outcome = tr.run_training(runs, out, todo, workers, threads, plugins, listener=display)
    console = _console()
    for label in outcome.diverged:
        console.print(f"[yellow]diverged:[/yellow] {label} (recorded; the other runs went on)", highlight=False)
    for label, reason in outcome.failed:
        console.print(f"[red]failed:[/red] {label}: {reason}", highlight=False)
    if outcome.interrupted:
        print(f"interrupted after {outcome.seconds:.1f} s; add --resume to the same command to finish", file=sys.stderr)
        return 130
    console.print(
        f"train done in {outcome.seconds:.1f} s: {outcome.done} runs written to {out}"
        + (f" ({already} were already there)" if already else ""),
        highlight=False,
    )
    console.print(f"plot it:  gradbench plot {out}", highlight=False)
    return 1 if outcome.failed else 0


def _is_train_csv(path: Path) -> bool:
    """A ``gradbench train`` CSV (told apart from run/sweep results by its header)."""
    from gradbench.results import read_header
    from gradbench.train import TRAIN_COLUMNS

    return path.is_file() and tuple(read_header(path) or ()) == TRAIN_COLUMNS


DEFAULT_BASELINE = Path("results") / "baseline.csv"


@app.command()
def check(
    baseline: Annotated[
        Path, typer.Option("--baseline", "-b", help="Baseline file (see README, 'Regression check and CI').")
    ] = DEFAULT_BASELINE,
    update: Annotated[
        bool, typer.Option("--update", help="Write/refresh the baseline from a fresh run of the default grid.")
    ] = False,
    fresh_seeds: Annotated[
        bool, typer.Option("--fresh-seeds", help="Re-run with new seeds: always the statistical tier.")
    ] = False,
    seed_base: Annotated[
        int | None, typer.Option("--seed-base", help="Fresh seeds derived from this number (implies --fresh-seeds).")
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Family-wise false-alarm rate (Holm).")] = 0.01,
    variance_ratio: Annotated[
        float, typer.Option("--variance-ratio", help="Practical threshold: variance ratio that fails a cell.")
    ] = 1.25,
    bias_threshold: Annotated[
        float, typer.Option("--bias-threshold", help="Practical threshold: bias change, in units of ‖g*‖.")
    ] = 0.1,
    power: Annotated[float, typer.Option("--power", help="Power of the 'detectable' figures.")] = 0.8,
    fail_on_speed: Annotated[
        float | None, typer.Option("--fail-on-speed", help="Fail cells slower than the baseline by this factor.")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Cells too weak to detect the thresholds, or not comparable: exit 2.")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="Report format: table, markdown or json.")] = "table",
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Table format: also list unchanged cells and every warning.")
    ] = False,
    estimator: Annotated[
        list[str] | None, typer.Option("--estimator", "-e", help="--update: only these estimators (repeatable).")
    ] = None,
    task: Annotated[
        list[str] | None, typer.Option("--task", "-t", help="--update: only these tasks (repeatable).")
    ] = None,
    tau: Annotated[
        list[float] | None,
        typer.Option("--tau", help="--update: temperatures for estimators with one (default 0.5, 1)."),
    ] = None,
    seeds: Annotated[
        int | None, typer.Option("--seeds", help="--update: seeds per cell, 0 .. N−1 (default 1).")
    ] = None,
    budget: Annotated[
        float | None, typer.Option("--budget", help="--update: seconds of estimating for the whole grid (default 15).")
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu or cuda (default: the baseline's; cpu).")] = None,
    dtype: Annotated[
        str | None,
        typer.Option("--dtype", help="float32, float64, float16 or bfloat16 (default: the baseline's; float32)."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="torch threads (default: the baseline's; 1 for --update).")
    ] = None,
    allow_missing: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-missing", help="Estimator or task whose cells may be not comparable (repeatable); else they fail."
        ),
    ] = None,
    executor: ExecutorOpt = "local",
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Re-run cells in N worker processes (default 1).")
    ] = None,
    address: AddressOpt = None,
    connect_timeout: TimeoutOpt = CONNECT_TIMEOUT,
    plugin: PluginOpt = None,
) -> None:
    """Re-run a baseline's cells and fail (exit 1) when an estimator got biased, noisier or (optionally) slower."""
    from gradbench.check import CheckOptions, GridSettings

    if fmt not in ("table", "markdown", "json"):
        raise GradbenchError(f"--format must be table, markdown or json, got {fmt!r}")
    load_plugins(plugin)
    if update:
        given = [
            f
            for f, v in (
                ("--fresh-seeds", fresh_seeds),
                ("--seed-base", seed_base is not None),
                ("--fail-on-speed", fail_on_speed is not None),
                ("--strict", strict),
                ("--allow-missing", allow_missing),
            )
            if v
        ]
        given += [f for f, v in (("--executor", executor != "local"), ("--workers", workers is not None)) if v]
        given += ["--address"] if address is not None else []
        if given:
            raise GradbenchError(f"{given[0]} does not apply to --update")
        set_threads(threads or 1)
        settings = GridSettings(
            estimators=tuple(estimator or ()),
            tasks=tuple(task or ()),
            taus=tuple(tau) if tau else GridSettings.taus,
            seeds=GridSettings.seeds if seeds is None else seeds,
            budget=GridSettings.budget if budget is None else budget,
            dtype=dtype or "float32",
            device=device or "cpu",
            alpha=alpha,
            variance_ratio=variance_ratio,
            bias_threshold=bias_threshold,
            power=power,
        )
        _update_baseline(baseline, settings)
        return
    given = [
        f
        for f, v in (
            ("--estimator", estimator),
            ("--task", task),
            ("--tau", tau),
            ("--seeds", seeds is not None),
            ("--budget", budget is not None),
        )
        if v
    ]
    if given:
        raise GradbenchError(f"{given[0]} only applies with --update")
    from gradbench.baseline import read_baseline
    from gradbench.check import run_check

    workers = 1 if workers is None and address is None else workers  # check: one process unless told
    chosen = executor_options(executor, workers, threads or 1, address, connect_timeout)
    options = CheckOptions(
        alpha=alpha,
        variance_ratio=variance_ratio,
        bias_threshold=bias_threshold,
        power=power,
        fail_on_speed=fail_on_speed,
        fresh_seeds=fresh_seeds or seed_base is not None,
        seed_base=seed_base,
        strict=strict,
        device=device,
        dtype=dtype,
        threads=threads,
        allow_missing=tuple(allow_missing or ()),
        executor=chosen.engine,
        workers=chosen.workers,
        address=chosen.address,
        connect_timeout=chosen.connect_timeout,
        plugins=tuple(str(p) for p in plugin or ()),
    )
    options.validate()
    base = read_baseline(baseline)
    result = _with_progress("checking", lambda progress: run_check(base, options, progress))
    from gradbench import check_report

    if fmt == "json":
        print(check_report.render_json(result))
    elif fmt == "markdown":
        print(check_report.render_markdown(result))
    else:
        check_report.render_rich(result, _console(), verbose=verbose)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _with_progress(label: str, work):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        bar = progress.add_task(label, total=None)

        def report(description: str, done: int, total: int) -> None:
            progress.update(bar, description=f"{label} {description}".strip(), completed=done, total=total)

        return work(report)


def _update_baseline(path: Path, settings) -> None:
    from gradbench.baseline import read_baseline, write_baseline
    from gradbench.check import build_baseline
    from gradbench.results import check_writable

    settings.validate()  # every argument before the file is looked at or any work is done
    check_writable(path, flag="--baseline", results=False)
    if path.exists() and path.stat().st_size:
        from gradbench.baseline import MAGIC

        with path.open("rb") as fh:
            start = fh.read(len(MAGIC))
        if start != MAGIC.encode():
            raise GradbenchError(f"refusing to overwrite {path}: it is not a gradbench baseline")
    text, notes, seconds = _with_progress("sizing and running", lambda p: build_baseline(settings, p))
    write_baseline(path, text)
    base = read_baseline(path)  # what was written must read back
    sizes = [c.row["n_samples"] for c in base.cells]
    console = _console()
    console.print(
        f"baseline written to {path}: {len(base.cells)} cells, {min(sizes):,} to {max(sizes):,} estimates each, "
        f"{seconds:.1f} s to run",
        markup=False,
        highlight=False,
    )
    for note in notes:
        console.print(f"note: {note}", markup=False, highlight=False)


@app.command()
def audit(
    name: Annotated[str, typer.Argument(help="Estimator or task to audit (a plug-in's, a surrogate's or a built-in).")],
    plugin: PluginOpt = None,
    surrogate: SurrogateOpt = None,
    kind: Annotated[str | None, typer.Option("--kind", help="estimator or task (default: looked up).")] = None,
    est_opt: Annotated[
        list[str] | None, typer.Option("--est-opt", help="Estimator hyper-parameter KEY=VALUE (repeatable).")
    ] = None,
    tau: Annotated[float | None, typer.Option("--tau", help="Temperature τ of the audited estimator.")] = None,
    task_opt: Annotated[list[str] | None, typer.Option("--task-opt", help="Option of the audited task.")] = None,
    tasks: Annotated[
        str | None, typer.Option("--tasks", "-t", help="Comma list of tasks to test an estimator on (default: all).")
    ] = None,
    samples: Annotated[int, typer.Option("--samples", "-n", help="f evaluations per bias-test cell.")] = 200_000,
    alpha: Annotated[
        float, typer.Option("--alpha", help="False-fail rate of the bias test (Holm across cells).")
    ] = 0.01,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bias test.")] = 11,
    fmt: Annotated[str, typer.Option("--format", help="table, markdown or json.")] = "table",
) -> None:
    """Run the contract battery on an estimator or task: one PASS/FAIL/SKIP row per property, exit 1 on a FAIL."""
    from gradbench import api
    from gradbench.audit_report import render_json, render_markdown, render_rich

    if fmt not in ("table", "markdown", "json"):
        raise GradbenchError(f"--format must be table, markdown or json, got {fmt!r}")
    load_plugins(plugin, surrogate)
    set_threads(1)
    est_opts: dict[str, Any] = dict(parse_key_values(est_opt, "--est-opt"))
    if tau is not None:
        est_opts["tau"] = tau
    status = _console(stderr=True)
    with status.status("auditing") as spinner:
        report = api.audit(
            name,
            kind=kind,
            est_opts=est_opts,
            task_opts=parse_key_values(task_opt, "--task-opt"),
            tasks=[t.strip() for t in tasks.split(",")] if tasks else None,
            samples=samples,
            alpha=alpha,
            seed=seed,
            plugins=[str(p) for p in plugin or []],
            surrogates=list(surrogate or []),
            progress=lambda what: spinner.update(f"auditing {name}: {what}"),
        )
    if fmt == "json":
        print(render_json(report))
    elif fmt == "markdown":
        print(render_markdown(report))
    else:
        render_rich(report, _console())
    if report.exit_code:
        raise typer.Exit(report.exit_code)


@app.command("list")
def list_(
    plugin: PluginOpt = None,
    format_: Annotated[
        str, typer.Option("--format", help="table (terminal) or markdown (the estimator table of docs/estimators.md).")
    ] = "table",
) -> None:
    """List estimators and tasks with their flags, hyper-parameters and options."""
    from gradbench.registry import all_estimators, all_tasks
    from gradbench.report import estimators_table, tasks_table

    load_plugins(plugin)
    if format_ not in ("table", "markdown"):
        raise GradbenchError(f"--format must be table or markdown, got {format_!r}")
    if format_ == "markdown":
        from gradbench.estimator_table import estimators_markdown

        sys.stdout.write(estimators_markdown(all_estimators()))
        return
    console = _console()
    console.print(estimators_table(all_estimators()))
    console.print(tasks_table(all_tasks()))


@app.command()
def bench(
    samples: Annotated[
        int, typer.Option("--samples", "-n", help="Estimates of the large timed cell (ours: marginal from 2·10⁴).")
    ] = 1_000_000,
    repeats: Annotated[int, typer.Option("--repeats", help="Interleaved repeats; medians are reported.")] = 3,
    threads: Annotated[int, typer.Option("--threads", help="torch intra-op threads (recorded).")] = 1,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    dtype: Annotated[str, typer.Option("--dtype", help="float32, float64, float16 or bfloat16.")] = "float32",
    tau: Annotated[float, typer.Option("--tau", help="Temperature of the relaxation estimators.")] = 0.5,
    estimator: Annotated[
        list[str] | None,
        typer.Option(
            "--estimator", "-e", help="Estimator to measure (repeatable; default reinforce, gumbel, st-gumbel)."
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Measure every registered estimator (long).")] = False,
    long: Annotated[
        bool, typer.Option("--long", help="Issue 15's measurement: n = 2·10⁶, 5 repeats, memory at 10⁵ and 10⁷ (long).")
    ] = False,
    task_opt: Annotated[
        list[str] | None, typer.Option("--task-opt", help="Option of the quadratic task, e.g. categories=2 dim=100.")
    ] = None,
    memory_samples: Annotated[
        str | None,
        typer.Option("--memory-samples", help="SMALL,LARGE sample counts of the peak-memory runs (default 1e5,1e6)."),
    ] = None,
    memory: Annotated[bool, typer.Option("--memory/--no-memory", help="Measure peak memory (subprocesses).")] = True,
    naive_seconds: Annotated[
        float, typer.Option("--naive-seconds", help="Seconds spent in each naive per-draw loop per repeat.")
    ] = 0.3,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="CSV, one row per estimator (default: a new results/bench-<time>.csv)."),
    ] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="Also print the table as Markdown.")] = False,
    sweep_scaling: Annotated[
        bool, typer.Option("--sweep-scaling", help="Also time the default sweep with 1 and 2 workers.")
    ] = False,
    plugin: PluginOpt = None,
) -> None:
    """Throughput: estimates/s against two naive loops, stock batched torch and the random-fill limit; peak memory."""
    from gradbench.allocator import tune_allocator
    from gradbench.bench.command import cli_main

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
        all_estimators=all_,
        long=long,
        task_params=parse_key_values(task_opt, "--task-opt"),
        memory_samples=memory_samples,
        memory=memory,
        naive_seconds=naive_seconds,
        out=out,
        markdown=markdown,
        scaling=sweep_scaling,
        plugins=tuple(str(p) for p in plugin or ()),
        console=_console(),
    )


def main() -> None:
    """Console-script entry point (also ``python -m gradbench``): drop the implicit import-path entry, run the app."""
    from gradbench.isolation import strip_implicit_entry

    strip_implicit_entry()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
