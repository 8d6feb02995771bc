"""The one-page verdict of a sweep: for each task and τ, who has the lowest MSE at a common budget, and the budget
beyond which an unbiased estimator overtakes the best biased one.

**Per what.** ``per="evals"`` (the default) ranks ``mse_at_equal_evals``: the MSE of the average of as many
estimates as fit into a budget of B f-evaluations (:mod:`gradbench.cost`, default B = 12), since evaluations of f
are what a user pays for in a model; ``per="time"`` ranks ``mse_at_equal_time`` (a budget of T seconds);
``per="estimate"`` ranks the raw per-estimate ``mse`` (which favours estimators that average many draws inside one
estimate). The aggregate must have been computed from rows whose equal-cost columns are at the chosen budget
(:func:`gradbench.cost.with_budgets`).

Candidates at a temperature τ are the estimators measured at τ and every estimator without a temperature (its MSE
does not depend on τ). The ground truth (``exact``) is left out: it is the answer, not a contender (see
:func:`gradbench.aggregate.references`). ``margin`` is MSE(runner-up) / MSE(best) of the means over seeds; ``clear``
says whether the two 95% bands are disjoint; with one seed there are no bands and ``clear`` is unknown (None).

**Flags** of the winner (:mod:`gradbench.judge`): ``collapsed`` and ``noise-dominated`` at the ranking budget.

**Crossover** (:func:`gradbench.cost.crossover_budget`), in the unit of ``per`` (f evaluations, seconds, or
estimates): the budget beyond which the best unbiased estimator has a lower MSE than every biased one, from the mean
bias² (``max(bias_sq, 0)``; 0 for estimators declared unbiased) and variance · cost. Whether an estimator is unbiased
is its declaration (``Estimator.unbiased``) when it is registered, else the data: no bias detected (``bias_pvalue`` ≥
0.01 in the mean over seeds).
"""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table

from gradbench.aggregate import FIGURE_KEYS, GROUND_TRUTH, LINE_KEYS, references
from gradbench.cost import EVAL_BUDGET, TIME_BUDGET, crossover_budget
from gradbench.errors import GradbenchError
from gradbench.judge import flags
from gradbench.nonfinite import THRESHOLD, flagged_lines

PER = {"estimate": "mse", "evals": "mse_at_equal_evals", "time": "mse_at_equal_time"}
"""The metric ranked for each ``--per``."""
COST = {"estimate": None, "evals": "evals_per_estimate", "time": "seconds_per_estimate"}
DEFAULT_BUDGET = {"estimate": 1.0, "evals": float(EVAL_BUDGET), "time": TIME_BUDGET}
COLUMNS = [
    *FIGURE_KEYS, "tau", "best", "best_mse", "flags", "runner_up", "runner_up_mse", "margin", "clear", "zero_mse",
    "per_estimate_best", "crossover", "unbiased_best", "biased_best",
]  # fmt: skip


def parse_budget(per: str, budget: float | None) -> tuple[str, float]:
    """Validate ``--per`` and ``--budget``; the budget defaults to the unit's (:data:`DEFAULT_BUDGET`)."""
    if per not in PER:
        raise GradbenchError(f"--per {per!r}: choose from {', '.join(PER)}")
    if budget is None:
        return per, DEFAULT_BUDGET[per]
    if per == "estimate":
        raise GradbenchError("--budget applies with --per evals or --per time, not --per estimate")
    if not (math.isfinite(budget) and budget > 0):
        raise GradbenchError(f"--budget must be a positive number, got {budget:g}")
    return per, float(budget)


def budget_text(per: str, budget: float) -> str:
    """The budget as written in titles and headers."""
    if per == "evals":
        return f"{budget:g} f evaluations"
    if per == "time":
        return f"{budget * 1e6:g} µs" if budget < 1e-2 else f"{budget:g} s"
    return "one estimate"


def _label(row, multiple_n: bool) -> str:
    label = row.estimator + (f" ({row.estimator_params.replace(';', ', ')})" if row.estimator_params else "")
    return label + (f" n={row.n_samples:,}" if multiple_n else "")


def _declared() -> dict[str, bool]:
    from gradbench.registry import all_estimators

    return {name: bool(cls.unbiased) for name, cls in all_estimators().items()}


def best_by_tau(
    agg: pd.DataFrame, per: str = "evals", budget: float | None = None, declared: dict[str, bool] | None = None
) -> pd.DataFrame:
    """One row per (figure, τ) from an aggregate (:func:`gradbench.aggregate.aggregate`); see the module docstring.

    ``declared`` maps estimator names to their ``unbiased`` flag (default: the registry's)."""
    metric, cost_column = PER[per], COST[per]
    budget = DEFAULT_BUDGET[per] if budget is None else budget
    declared = _declared() if declared is None else declared
    wide = _wide(agg)
    out = []
    for key, whole in wide.groupby(FIGURE_KEYS, sort=True):
        exclude = {k for k in references(agg_of(agg, key)) if k[0] in GROUND_TRUTH}
        contenders = whole[[tuple(r) not in exclude for r in whole[LINE_KEYS].itertuples(index=False)]]
        norms = whole["grad_norm"]
        zero_mse = float(norms.iloc[0]) ** 2 if len(norms) else math.nan  # MSE of always answering 0: ‖g*‖²
        multiple_n = contenders.groupby("estimator")["n_samples"].nunique().max() > 1 if len(contenders) else False
        flat = contenders[contenders["tau"].isna()]
        taus = sorted(contenders["tau"].dropna().unique()) or [math.nan]
        for tau in taus:
            here = pd.concat([contenders[contenders["tau"] == tau], flat])
            here = here[here[metric].notna()].sort_values([metric, *LINE_KEYS])
            if here.empty:
                continue
            best = here.iloc[0]
            runner = here.iloc[1] if len(here) > 1 else None
            margin = runner[metric] / best[metric] if runner is not None and best[metric] > 0 else math.nan
            clear = None
            lo, hi = f"{metric}:lo", f"{metric}:hi"
            if runner is not None and not (math.isnan(best[hi]) or math.isnan(runner[lo])):
                clear = bool(best[hi] < runner[lo])
            cost = 1.0 if cost_column is None else float(best[cost_column])
            averaged = budget / cost if cost > 0 else math.inf
            per_estimate = here.sort_values(["mse", *LINE_KEYS]).iloc[0]
            crossover, unbiased_best, biased_best = _crossover(here, cost_column, declared)
            out.append(
                (
                    *key,
                    tau,
                    _label(best, multiple_n),
                    float(best[metric]),
                    ", ".join(flags(best, averaged)),
                    _label(runner, multiple_n) if runner is not None else "",
                    float(runner[metric]) if runner is not None else math.nan,
                    margin,
                    clear,
                    zero_mse,
                    _label(per_estimate, multiple_n),
                    crossover,
                    unbiased_best,
                    biased_best,
                )
            )
    return pd.DataFrame(out, columns=COLUMNS)


def agg_of(agg: pd.DataFrame, key: tuple) -> pd.DataFrame:
    return agg[(agg[FIGURE_KEYS] == pd.Series(dict(zip(FIGURE_KEYS, key, strict=True)))).all(axis=1)]


def _wide(agg: pd.DataFrame) -> pd.DataFrame:
    """One row per (figure, line, τ): every metric's mean as a column, and ``metric:lo``/``metric:hi`` bands."""
    keys = [*FIGURE_KEYS, *LINE_KEYS, "tau"]
    data = agg.copy()
    data["tau"] = data["tau"].fillna(-1.0)  # pivot drops NaN keys
    means = data.pivot_table(index=keys, columns="metric", values="mean", aggfunc="first", dropna=False)
    los = data.pivot_table(index=keys, columns="metric", values="lo", aggfunc="first", dropna=False)
    his = data.pivot_table(index=keys, columns="metric", values="hi", aggfunc="first", dropna=False)
    los.columns = [f"{c}:lo" for c in los.columns]
    his.columns = [f"{c}:hi" for c in his.columns]
    wide = pd.concat([means, los, his], axis=1).reset_index()
    wide = wide[wide["mse"].notna()] if "mse" in wide else wide
    wide["tau"] = wide["tau"].where(wide["tau"] >= 0)
    for column in ("bias", "bias_sq", "variance", "cosine", "snr", "grad_norm", "bias_pvalue", "mse"):
        if column not in wide:
            wide[column] = math.nan
    for metric in PER.values():
        for suffix in ("", ":lo", ":hi"):
            if metric + suffix not in wide:
                wide[metric + suffix] = math.nan
    return wide


def _crossover(here: pd.DataFrame, cost_column: str | None, declared: dict[str, bool]) -> tuple[float, str, str]:
    """(B*, the best unbiased estimator, the biased one it overtakes last) among the candidates ``here``."""
    unbiased, biased = [], []
    for r in here.to_dict("records"):
        cost = 1.0 if cost_column is None else float(r[cost_column])
        work = float(r["variance"]) * cost
        is_unbiased = declared.get(r["estimator"])
        if is_unbiased is None:  # not registered here (a plug-in's row): judged from the data
            is_unbiased = not float(r["bias_pvalue"]) < 0.01
        name = r["estimator"] + (f" ({r['estimator_params'].replace(';', ', ')})" if r["estimator_params"] else "")
        if is_unbiased:
            unbiased.append((work, name))
        else:
            biased.append((max(float(r["bias_sq"]), 0.0), work, name))
    if not unbiased or not biased:
        return math.nan, "", ""
    best_work, best_name = min(unbiased)
    crossover = crossover_budget([w for w, _ in unbiased], [(b, w) for b, w, _ in biased])
    rivals = [(math.inf if b <= 0 else (best_work - w) / b, name) for b, w, name in biased if w < best_work]
    return crossover, best_name, max(rivals)[1] if rivals else ""


def _g(x: float) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def _task(row) -> str:
    return row.task + (f" ({row.task_params.replace(';', ', ')})" if row.task_params else "")


def margin_text(margin: float) -> str:
    """×1.30, ×29.8, ×412, > ×1000: three significant digits at most, capped."""
    if math.isnan(margin):
        return "—"
    if math.isinf(margin) or margin >= 1000:
        return "> ×1000"
    if margin < 10:
        return f"×{margin:.2f}"
    if margin < 100:
        return f"×{margin:.1f}"
    return f"×{margin:.0f}"


def _short(label: str) -> str:
    return label.split(" (", 1)[0]


def crossover_text(row, per: str, short: bool = False) -> str:
    """B* with its unit and, unless ``short`` (terminal), the two estimators it is between."""
    if math.isnan(row.crossover):
        return "—"
    if row.crossover == 0:
        return "any budget" + ("" if short else f" ({row.unbiased_best} is best at every budget)")
    if math.isinf(row.crossover):
        return "none seen" + ("" if short else f" ({row.biased_best}: bias not measurable)")
    unit = {"evals": "evals", "time": "s", "estimate": "estimates"}[per]
    value = f"{row.crossover * 1e6:.3g} µs" if per == "time" and row.crossover < 1e-2 else f"{row.crossover:.3g} {unit}"
    return value + ("" if short else f" ({row.unbiased_best} over {row.biased_best})")


def _margin(row) -> str:
    """The margin; ≈ in front when the two 95% bands overlap (the win is not clear)."""
    return ("≈" if row.clear is False and not math.isnan(row.margin) else "") + margin_text(row.margin)


def budget_short(per: str, budget: float) -> str:
    if per == "evals":
        return f"{budget:g} evals"
    return "1 estimate" if per == "estimate" else budget_text(per, budget)


def headers(per: str, budget: float) -> tuple[str, ...]:
    out = ("τ", f"best @ {budget_short(per, budget)}", "MSE", "margin", "runner-up")
    if per != "estimate":
        out += ("best per estimate",)
    return out + ("unbiased wins beyond",)


RIGHT = {"τ", "MSE", "margin"}


def note(per: str, budget: float) -> str:
    at = {
        "estimate": "the MSE of one estimate",
        "evals": f"the MSE of the average of the estimates that fit into {budget_text(per, budget)} "
        "(bias² + variance · evals_per_estimate / B)",
        "time": f"the MSE of the average of the estimates that fit into {budget_text(per, budget)} of estimating "
        "(bias² + variance · seconds_per_estimate / T)",
    }[per]
    return (
        f"MSE: {at}, mean over seeds. margin: runner-up MSE / best MSE; ≈: the two 95% bands overlap, so the "
        "win is not clear. Estimators without τ compete at every τ; the ground truth (exact) is left out. "
        "‖g*‖² beside each task is the MSE of a zero gradient. Flags: collapsed = its mean carries ≤ 10% of g* "
        "along g* (measurably); noise-dominated = at this budget its noise exceeds ‖g*‖² and 10× its bias², so the "
        "ranking there is one of noise. Unbiased beats biased beyond: the budget from which the best unbiased "
        "estimator has a lower MSE than every biased one (biased MSE stops falling at bias²)."
    )


def _sections(best: pd.DataFrame, per: str, short: bool = False):
    """(title, rows of cell texts) per figure; ``short``: estimator names without hyper-parameters (terminal)."""
    name = _short if short else (lambda s: s)
    for _, group in best.groupby(FIGURE_KEYS, sort=True):
        first = group.iloc[0]
        title = _task(first) + f" · ‖g*‖² = {_g(first.zero_mse)}"
        if len(best[FIGURE_KEYS].drop_duplicates()) > len(best["task"].drop_duplicates()):
            title += f" · {first.dtype} on {first.device}"
        rows = []
        for row in group.itertuples(index=False):
            tau = "any" if math.isnan(row.tau) else f"{row.tau:g}"
            winner = name(row.best) + (f" ({row.flags})" if row.flags else "")
            values = (tau, winner, _g(row.best_mse), _margin(row), name(row.runner_up) or "—")
            if per != "estimate":
                values += ("same" if row.per_estimate_best == row.best else name(row.per_estimate_best),)
            rows.append(values + (crossover_text(row, per, short),))
        yield title, rows


NONFINITE_NOTE = (
    f"Cells with more than {THRESHOLD:g} of their estimates non-finite (NaN or ±inf); their metrics, and any win "
    "above, are over the finite estimates only:"
)


def nonfinite_lines(df: pd.DataFrame) -> list[str]:
    """The flagged cells of a results DataFrame (:func:`gradbench.aggregate.load_results`), one line each."""
    return flagged_lines(df.to_dict("records"))


def summary_table(
    best: pd.DataFrame, source: str, per: str = "evals", budget: float | None = None, flagged: list[str] | None = None
):
    """A rich renderable: one compact table per task, under a heading naming the source CSV and the budget;
    ``flagged``: the lines of :func:`nonfinite_lines`, listed under the tables when there are any."""
    from rich import box
    from rich.console import Group
    from rich.text import Text

    budget = DEFAULT_BUDGET[per] if budget is None else budget
    at = "per estimate" if per == "estimate" else f"at equal cost: {budget_text(per, budget)}"
    parts = [Text(f"Lowest MSE per task and temperature, {at} ({source})", style="bold")]
    for title, rows in _sections(best, per, short=True):
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))
        for header in headers(per, budget):
            numeric = header in RIGHT
            table.add_column(header, justify="right" if numeric else "left", no_wrap=numeric, overflow="fold")
        for values in rows:
            table.add_row(*values)
        parts.append(table)
    parts.append(Text(note(per, budget), style="dim"))
    if flagged:
        parts.append(Text(NONFINITE_NOTE, style="bold red"))
        parts.extend(Text(f"  {line}", style="red") for line in flagged)
    return Group(*parts)


def summary_markdown(
    best: pd.DataFrame, source: str, per: str = "evals", budget: float | None = None, flagged: list[str] | None = None
) -> str:
    budget = DEFAULT_BUDGET[per] if budget is None else budget
    at = "per estimate" if per == "estimate" else f"at equal cost: {budget_text(per, budget)}"
    lines = [f"# Lowest MSE per task and temperature, {at}", "", f"Source: `{source}`. {note(per, budget)}"]
    if flagged:
        lines += ["", f"**Non-finite estimates.** {NONFINITE_NOTE}", ""] + [f"- {line}" for line in flagged]
    heads = headers(per, budget)
    for title, rows in _sections(best, per):
        lines += ["", f"## {title}", ""]
        lines.append("| " + " | ".join(heads) + " |")
        lines.append("|" + "|".join("---:" if h in RIGHT else "---" for h in heads) + "|")
        for values in rows:
            lines.append("| " + " | ".join(v.replace("|", "\\|") for v in values) + " |")
    return "\n".join(lines) + "\n"


def summary_rows(agg: pd.DataFrame, per: str, budget: float, declared: dict[str, bool] | None = None):
    """([(title, rows of cell texts)], note) of the summary at a budget: what ``report`` renders as HTML tables."""
    return list(_sections(best_by_tau(agg, per, budget, declared), per)), note(per, budget)
