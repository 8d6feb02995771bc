"""Comparisons at equal cost: the MSE of what a fixed budget of f evaluations (or of seconds) buys.

An estimator that costs c units per estimate (c = ``evals_per_estimate`` f evaluations, or ``seconds_per_estimate``)
fits B/c independent estimates into a budget of B units; their average has

    MSE(B) = ‖bias‖² + variance · c / B                                                   (1)

(bias unchanged by averaging, variance divided by the number averaged). This is the work-normalised comparison of
simulation estimators: Glynn & Whitt (1992), "The asymptotic efficiency of simulation estimators", Operations
Research 40(3), define the efficiency of an unbiased estimator as 1/(variance × cost per replication), which is
what (1) ranks when the bias is 0; with bias, (1) is the MSE at a finite budget (L'Ecuyer's efficiency
1/(MSE × cost) at that budget). It is also the convention of the estimator papers: RLOO with m samples is compared
with REINFORCE on m samples (Kool, van Hoof & Welling 2019, "Buy 4 REINFORCE samples, get a baseline for free!"),
and DisARM (two evaluations) with two-sample RLOO (Dong, Mnih & Tucker 2020).

From a row: ‖bias‖² is estimated by ``max(bias_sq, 0)`` (``bias_sq`` is the noise-corrected, unbiased estimate of
the squared bias; a negative value is noise around 0), ``variance`` is the trace of the covariance of one estimate.

Budgets (:data:`EVAL_BUDGET`, :data:`TIME_BUDGET`) and why: see their docstrings.

Crossover (:func:`crossover_budget`): a biased estimator's MSE(B) stops falling at ‖bias‖², an unbiased one's keeps
falling as 1/B; the budget beyond which the best unbiased estimator beats every biased one is where (1) of the
unbiased one with the smallest variance·c, V_u/B, falls below each biased j's b_j² + V_j/B:

    B* = max_j (V_u − V_j) / b_j²    over biased j with V_j < V_u   (0 when no such j: the unbiased one wins always),

and B* = ∞ when some biased j with V_j < V_u has no measurable bias (b_j² ≤ 0).
"""

from __future__ import annotations

import math

EVAL_BUDGET = 12
"""Default common budget B of f evaluations. 12 is the least common multiple of the built-in estimators' costs
(1, 2, 3 and 4 evaluations per estimate), so every one of them fits a whole number of estimates into it (12, 6, 4,
3): the averaged estimator that (1) describes can actually be run, with no fractional estimates. It is also the
few-evaluations-per-gradient-step regime the estimator papers compare in (m = 2 to 4 samples per step). An
estimator dearer than B (e.g. D·K evaluations) gets a fractional number of estimates: (1) is then an
extrapolation, and summaries say so."""

TIME_BUDGET = 1e-4
"""Default common budget T of estimating time, seconds (100 µs). About the time the dearest built-in estimators
(REBAR, RELAX, Gumbel-Rao: 30–50 µs per estimate) take for the evaluation budget's worth of estimates on the largest
built-in task (quadratic, D·K = 200) on this project's machine, so that on that task the two rankings describe a
comparable regime. Times are machine-dependent, so rankings at equal time are too; choose T with ``--budget``."""


def mse_at_budget(bias_sq: float, variance: float, cost: float, budget: float) -> float:
    """Equation (1): MSE of the average of budget/cost estimates (``cost`` and ``budget`` in the same unit)."""
    if not (cost > 0 and budget > 0) or math.isnan(variance):
        return math.nan
    return max(bias_sq, 0.0) + variance * cost / budget


def cost_columns(row: dict) -> dict:
    """The cost columns of a result row, from its ``bias_sq``, ``variance``, ``n_samples``, ``seconds`` and
    ``evals_per_estimate`` (see docs/columns.md)."""
    seconds = float(row["seconds"]) / int(row["n_samples"]) if int(row["n_samples"]) > 0 else math.nan
    evals = int(row["evals_per_estimate"])
    bias_sq, variance = float(row["bias_sq"]), float(row["variance"])
    return {
        "evals_per_estimate": evals,
        "seconds_per_estimate": seconds,
        "mse_at_equal_evals": mse_at_budget(bias_sq, variance, evals, EVAL_BUDGET),
        "mse_at_equal_time": mse_at_budget(bias_sq, variance, seconds, TIME_BUDGET),
    }


def crossover_budget(unbiased_work: list[float], biased: list[tuple[float, float]]) -> float:
    """B* (module docstring): ``unbiased_work`` the variance·cost of each unbiased estimator, ``biased`` the
    (‖bias‖², variance·cost) of each biased one. NaN when either side is empty; 0 when the best unbiased estimator
    wins at every budget; ∞ when a biased estimator with less work-normalised variance has no measurable bias."""
    unbiased_work = [v for v in unbiased_work if math.isfinite(v)]
    biased = [(b, v) for b, v in biased if math.isfinite(v) and not math.isnan(b)]
    if not unbiased_work or not biased:
        return math.nan
    best = min(unbiased_work)
    crossover = 0.0
    for bias_sq, work in biased:
        if work >= best:
            continue  # beaten at every budget
        if bias_sq <= 0:
            return math.inf
        crossover = max(crossover, (best - work) / bias_sq)
    return crossover


def with_budgets(df, eval_budget: float = EVAL_BUDGET, time_budget: float = TIME_BUDGET):
    """A copy of a results DataFrame with ``mse_at_equal_evals``/``mse_at_equal_time`` computed by (1) at the given
    budgets (the CSV holds them at the defaults), vectorized over rows."""
    out = df.copy()
    bias_sq = out["bias_sq"].clip(lower=0)
    out["mse_at_equal_evals"] = bias_sq + out["variance"] * out["evals_per_estimate"] / eval_budget
    out["mse_at_equal_time"] = bias_sq + out["variance"] * out["seconds_per_estimate"] / time_budget
    return out
