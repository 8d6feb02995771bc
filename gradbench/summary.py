"""The one-page verdict of a sweep: for each task and τ, the estimator with the lowest MSE and its margin.

Candidates at a temperature τ are the estimators measured at τ and every estimator without a temperature (its MSE
does not depend on τ). References (zero variance and no bias detected: ``exact``) are left out: they are the
answer, not a contender (see :func:`gradbench.aggregate.references`).
``margin`` is MSE(runner-up) / MSE(best) of the means over seeds; ``clear`` says whether the two 95% bands are
disjoint (best's upper edge below the runner-up's lower edge); with one seed there are no bands and ``clear`` is
unknown (None).
"""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table

from gradbench.aggregate import FIGURE_KEYS, GROUND_TRUTH, LINE_KEYS, references
from gradbench.nonfinite import THRESHOLD, flagged_lines

COLUMNS = [*FIGURE_KEYS, "tau", "best", "best_mse", "runner_up", "runner_up_mse", "margin", "clear", "zero_mse"]


def _label(row, multiple_n: bool) -> str:
    label = row.estimator + (f" ({row.estimator_params.replace(';', ', ')})" if row.estimator_params else "")
    return label + (f" n={row.n_samples:,}" if multiple_n else "")


def best_by_tau(agg: pd.DataFrame) -> pd.DataFrame:
    """One row per (figure, τ) from an aggregate (:func:`gradbench.aggregate.aggregate`) holding mse and variance."""
    out = []
    for key, whole in agg.groupby(FIGURE_KEYS, sort=True):
        fig = whole[whole.metric == "mse"]
        exclude = {key for key in references(whole) if key[0] in GROUND_TRUTH}
        norms = whole[whole.metric == "grad_norm"]["mean"]
        zero_mse = float(norms.iloc[0]) ** 2 if len(norms) else math.nan  # MSE of always answering 0: ‖g*‖²
        contenders = fig[[tuple(r) not in exclude for r in fig[LINE_KEYS].itertuples(index=False)]]
        multiple_n = contenders.groupby("estimator")["n_samples"].nunique().max() > 1 if len(contenders) else False
        flat = contenders[contenders["tau"].isna()]
        taus = sorted(contenders["tau"].dropna().unique()) or [math.nan]
        for tau in taus:
            here = pd.concat([contenders[contenders["tau"] == tau], flat]).sort_values(["mean", *LINE_KEYS])
            if here.empty:
                continue
            best = here.iloc[0]
            runner = here.iloc[1] if len(here) > 1 else None
            margin = runner["mean"] / best["mean"] if runner is not None and best["mean"] > 0 else math.nan
            clear = None
            if runner is not None and not (math.isnan(best["hi"]) or math.isnan(runner["lo"])):
                clear = bool(best["hi"] < runner["lo"])
            out.append(
                (
                    *key,
                    tau,
                    _label(best, multiple_n),
                    float(best["mean"]),
                    _label(runner, multiple_n) if runner is not None else "",
                    float(runner["mean"]) if runner is not None else math.nan,
                    margin,
                    clear,
                    zero_mse,
                )
            )
    return pd.DataFrame(out, columns=COLUMNS)


def _g(x: float) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def _task(row) -> str:
    return row.task + (f" ({row.task_params.replace(';', ', ')})" if row.task_params else "")


def _margin(row) -> str:
    if math.isnan(row.margin):
        return "—"
    return f"×{row.margin:.2f}" + (" (overlap)" if row.clear is False else "")


HEADERS = ("τ", "lowest MSE", "MSE", "runner-up", "its MSE", "margin")
RIGHT = {"τ", "MSE", "its MSE", "margin"}
NOTE = (
    "MSE: mean over seeds. margin: runner-up MSE / best MSE; (overlap): the two 95% bands overlap, so the "
    "win is not clear. Estimators without τ compete at every τ; the ground truth (exact) is left out. "
    "‖g*‖² beside each task is the MSE of a zero gradient: a winner marked (≈ zero gradient) has an MSE of at least "
    "0.9 ‖g*‖², so it wins by returning almost nothing."
)


def _sections(best: pd.DataFrame):
    """(title, rows of cell texts) per figure."""
    for _, group in best.groupby(FIGURE_KEYS, sort=True):
        first = group.iloc[0]
        title = _task(first) + f" · ‖g*‖² = {_g(first.zero_mse)}"
        if len(best[FIGURE_KEYS].drop_duplicates()) > len(best["task"].drop_duplicates()):
            title += f" · {first.dtype} on {first.device}"
        rows = []
        for row in group.itertuples(index=False):
            tau = "any" if math.isnan(row.tau) else f"{row.tau:g}"
            winner = row.best + (" (≈ zero gradient)" if row.best_mse >= 0.9 * row.zero_mse else "")
            rows.append((tau, winner, _g(row.best_mse), row.runner_up or "—", _g(row.runner_up_mse), _margin(row)))
        yield title, rows


NONFINITE_NOTE = (
    f"Cells with more than {THRESHOLD:g} of their estimates non-finite (NaN or ±inf); their metrics, and any win "
    "above, are over the finite estimates only:"
)


def nonfinite_lines(df: pd.DataFrame) -> list[str]:
    """The flagged cells of a results DataFrame (:func:`gradbench.aggregate.load_results`), one line each."""
    return flagged_lines(df.to_dict("records"))


def summary_table(best: pd.DataFrame, source: str, flagged: list[str] | None = None):
    """A rich renderable: one compact table per task, under a heading naming the source CSV; ``flagged``: the
    lines of :func:`nonfinite_lines`, listed under the tables when there are any."""
    from rich import box
    from rich.console import Group
    from rich.text import Text

    parts = [Text(f"Lowest MSE per task and temperature ({source})", style="bold")]
    for title, rows in _sections(best):
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))
        for header in HEADERS:
            table.add_column(header, justify="right" if header in RIGHT else "left")
        for values in rows:
            table.add_row(*values)
        parts.append(table)
    parts.append(Text(NOTE, style="dim"))
    if flagged:
        parts.append(Text(NONFINITE_NOTE, style="bold red"))
        parts.extend(Text(f"  {line}", style="red") for line in flagged)
    return Group(*parts)


def summary_markdown(best: pd.DataFrame, source: str, flagged: list[str] | None = None) -> str:
    lines = ["# Lowest MSE per task and temperature", "", f"Source: `{source}`. {NOTE}"]
    if flagged:
        lines += ["", f"**Non-finite estimates.** {NONFINITE_NOTE}", ""] + [f"- {line}" for line in flagged]
    for title, rows in _sections(best):
        lines += ["", f"## {title}", ""]
        lines.append("| " + " | ".join(HEADERS) + " |")
        lines.append("|" + "|".join("---:" if h in RIGHT else "---" for h in HEADERS) + "|")
        for values in rows:
            lines.append("| " + " | ".join(v.replace("|", "\\|") for v in values) + " |")
    return "\n".join(lines) + "\n"
