"""Rich tables for the terminal: one cell's metrics, and the registry listings."""

from __future__ import annotations

import math
from typing import Any

from rich.markup import escape
from rich.table import Table

from gradbench.core import REQUIRED, Estimator, Param, Task
from gradbench.cost import EVAL_BUDGET
from gradbench.nonfinite import describe, is_flagged


def fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.{digits}g}"
    return str(value)


def _pm(value: float, se: float) -> str:
    return fmt(value) if math.isnan(se) else f"{fmt(value)} ± {fmt(se, 2)}"


def metrics_table(row: dict[str, Any]) -> Table:
    """The metrics of one cell (a CSV row), with the meaning of each and standard errors where known."""
    params = row["estimator_params"]
    est = row["estimator"] + (f" τ={fmt(row['tau'])}" if row["tau"] != "" else "") + (f" ({params})" if params else "")
    title = (
        f"{est} on {row['task']} ({row['task_params']})\n"
        f"{row['n_samples']:,} estimates · seed {row['seed']} · {row['device']} {row['dtype']} · "
        f"{row['threads']} thread{'s' if row['threads'] != 1 else ''}"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("meaning", style="dim")
    pvalue = row["bias_pvalue"]
    verdict = " (bias detected)" if pvalue < 0.01 else ""
    rows = [
        ("bias", fmt(row["bias"]), "‖mean estimate − exact‖₂"),
        ("bias_sq", fmt(row["bias_sq"]), "unbiased estimate of ‖bias‖² (noise removed; < 0 is noise)"),
        ("bias_pvalue", fmt(pvalue, 3) + verdict, "p of H0 'unbiased' (Bonferroni over components)"),
        ("variance", _pm(row["variance"], row["variance_se"]), "trace of the covariance of one estimate"),
        ("mse", _pm(row["mse"], row["mse_se"]), "mean ‖estimate − exact‖²"),
        ("cosine", fmt(row["cosine"]), "cos(mean estimate, exact)"),
        ("snr", fmt(row["snr"]), "‖mean estimate‖ / √variance"),
        ("grad_norm", fmt(row["grad_norm"]), "‖exact gradient‖₂"),
        ("exact_value", fmt(row["exact_value"]), "E f under p_θ"),
        ("estimates/s", f"{row['estimates_per_sec']:,.0f}", f"{fmt(row['seconds'], 3)} s drawing and estimating"),
        ("evals/estimate", fmt(row["evals_per_estimate"]), "f evaluations one estimate costs"),
        (
            f"mse @ {EVAL_BUDGET} evals",
            fmt(row["mse_at_equal_evals"]),
            f"MSE of the mean of {EVAL_BUDGET}/evals estimates: bias² + variance·evals/{EVAL_BUDGET}",
        ),
    ]
    fraction = float(row.get("nonfinite_fraction", 0.0))
    if fraction > 0:
        flag = " [bold red](flagged)[/bold red]" if is_flagged(fraction) else ""
        rows.append(("non-finite", f"{fraction:.3g}{flag}", "share of estimates with a NaN or ±inf, left out"))
    for r in rows:
        table.add_row(*r)
    if is_flagged(fraction):
        table.caption = f"[red]flagged: {describe(fraction)}[/red]"
    return table


def describe_param(p: Param) -> str:
    default = "required" if p.default is REQUIRED else f"default {p.default}"
    rng = p.describe_range()
    return f"{p.name} ({default}{', ' + rng if rng else ''})"


def estimators_table(estimators: dict[str, type[Estimator]]) -> Table:
    """One row per estimator: name over its one-line description; family and flags; hyper-parameters."""
    table = Table(title="Estimators", title_justify="left", show_lines=True)
    table.add_column("estimator", ratio=3)
    table.add_column("family · flags", ratio=1, min_width=14)
    table.add_column("hyper-parameters", ratio=2)
    for name, cls in estimators.items():
        flags = [cls.family, "unbiased" if cls.unbiased else "biased"]
        if cls.needs_relaxation:
            flags.append("needs relaxation")
        if cls.binary_only:
            flags.append("binary only")
        if tuple(cls.families) != ("categorical",):
            flags.append(" + ".join(cls.families) + " latents")
        params = "\n".join(describe_param(p) for p in cls.params) or "—"
        table.add_row(f"[bold]{name}[/bold]\n[dim]{escape(cls.summary)}[/dim]", "\n".join(flags), params)
    return table


def tasks_table(tasks: dict[str, type[Task]]) -> Table:
    """One row per task: name over its one-line description; default size; options with defaults."""
    table = Table(title="Tasks", title_justify="left", show_lines=True)
    table.add_column("task", ratio=3)
    table.add_column("D × K", no_wrap=True)
    table.add_column("options (--task-opt KEY=VALUE)", ratio=2)
    for name, cls in tasks.items():
        task = cls()
        options = "\n".join(describe_param(p) for p in cls.params) or "—"
        relax = "" if cls.relaxable or cls.family != "categorical" else " (no relaxation)"
        relax += "" if cls.family == "categorical" else f" ({cls.family} latents; K = parameters per variable)"
        table.add_row(f"[bold]{name}[/bold]\n[dim]{escape(cls.summary + relax)}[/dim]", f"{task.D} × {task.K}", options)
    return table
