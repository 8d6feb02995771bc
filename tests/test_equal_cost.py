"""Comparisons at equal cost: the cost columns, MSE at a budget, the crossover budget, and the summary that ranks
with them — pinned on a small grid whose answers are computed by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gradbench.aggregate import aggregate, load_results
from gradbench.cli import app
from gradbench.cost import EVAL_BUDGET, TIME_BUDGET, crossover_budget, mse_at_budget, with_budgets
from gradbench.registry import all_estimators
from gradbench.results import COLUMNS, COST_COLUMNS, LEGACY_COLUMNS, format_rows
from gradbench.summary import best_by_tau, margin_text

# --- the formulas --------------------------------------------------------------------------------------------------


def test_mse_at_budget_is_bias_squared_plus_variance_over_the_estimates_averaged():
    assert mse_at_budget(0.01, 0.1, 1, 12) == pytest.approx(0.01 + 0.1 / 12)
    assert mse_at_budget(0.0, 0.3, 4, 12) == pytest.approx(0.1)  # 3 estimates of 4 evaluations
    assert mse_at_budget(-0.5, 0.3, 4, 12) == pytest.approx(0.1)  # a negative bias_sq is noise around 0
    assert math.isnan(mse_at_budget(0.0, 1.0, 0, 12))


def test_crossover_budget_by_hand():
    # unbiased work (variance · cost) 1.0 and 1.2; biased (bias², work): (0.01, 0.1) crosses at 90,
    # (0.04, 0.05) at 23.75
    assert crossover_budget([1.0, 1.2], [(0.01, 0.1), (0.04, 0.05)]) == pytest.approx(90.0)
    assert crossover_budget([0.05], [(0.01, 0.1)]) == 0.0  # the unbiased one is cheaper-and-quieter: wins always
    assert crossover_budget([1.0], [(0.0, 0.1)]) == math.inf  # no measurable bias: never overtaken
    assert math.isnan(crossover_budget([], [(0.01, 0.1)]))
    # at B* the two MSEs are equal, before it the biased one is better, after it the unbiased one
    b = crossover_budget([1.0], [(0.01, 0.1)])
    assert mse_at_budget(0, 1.0, 1, b) == pytest.approx(mse_at_budget(0.01, 0.1, 1, b))
    assert mse_at_budget(0, 1.0, 1, b / 2) > mse_at_budget(0.01, 0.1, 1, b / 2)
    assert mse_at_budget(0, 1.0, 1, b * 2) < mse_at_budget(0.01, 0.1, 1, b * 2)


def test_every_estimator_declares_its_evaluations_per_estimate():
    from tests.helpers import default_hparams

    for name, cls in all_estimators().items():
        if not cls.__module__.startswith("gradbench.estimators."):
            continue  # a test plug-in another test registered (e.g. one with a required option)
        est = cls(**default_hparams(cls))
        assert isinstance(est.evals_per_estimate, int) and est.evals_per_estimate >= 1, name
    gumbel_rao = all_estimators()["gumbel-rao"]
    assert gumbel_rao(tau=1.0, k=10).evals_per_estimate == 1  # k conditional draws, one evaluation of f
    assert all_estimators()["rloo"](m=6).evals_per_estimate == 6


def test_run_writes_the_cost_columns(tmp_path):
    out = tmp_path / "r.csv"
    args = ["run", "-e", "rloo", "-t", "sum-target", "-n", "2000", "--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    (row,) = load_results(out).to_dict("records")
    assert row["evals_per_estimate"] == 4
    assert row["seconds_per_estimate"] == pytest.approx(row["seconds"] / row["n_samples"])
    bias_sq = max(row["bias_sq"], 0)
    assert row["mse_at_equal_evals"] == pytest.approx(bias_sq + row["variance"] * 4 / EVAL_BUDGET)
    assert row["mse_at_equal_time"] == pytest.approx(bias_sq + row["variance"] * row["seconds_per_estimate"] / 1e-4)
    assert TIME_BUDGET == 1e-4


# --- a small grid computed by hand ------------------------------------------------------------------------------

# (estimator, tau, evals per estimate, bias², variance). g* has norm 1; one seed, n = 1000.
GRID = [
    ("reinforce", "", 1, 0.0, 1.0),
    ("rloo", "", 4, 0.0, 0.3),
    ("gumbel", 0.5, 1, 0.01, 0.1),
    ("st-gumbel", 0.5, 1, 0.04, 0.05),
]
# per estimate (MSE = bias² + variance): st-gumbel 0.09 < gumbel 0.11 < rloo 0.3 < reinforce 1.
# at 12 evaluations (bias² + variance·evals/12): gumbel 0.01833 < st-gumbel 0.04417 < reinforce 0.08333 < rloo 0.1.
# crossover at equal evaluations: best unbiased work = min(1·1, 0.3·4) = 1 (reinforce);
#   gumbel (1 − 0.1)/0.01 = 90, st-gumbel (1 − 0.05)/0.04 = 23.75 → 90 evaluations, reinforce over gumbel.
# crossover per estimate (cost 1): best unbiased work = 0.3 (rloo); gumbel (0.3 − 0.1)/0.01 = 20,
#   st-gumbel (0.3 − 0.05)/0.04 = 6.25 → 20 estimates, rloo over gumbel.


def write_grid(path: Path, columns=COLUMNS) -> Path:
    rows = []
    for estimator, tau, evals, bias_sq, variance in GRID:
        n = 1000
        rows.append(
            {
                "task": "t", "task_params": "", "estimator": estimator,
                "estimator_params": "m=4" if estimator == "rloo" else "", "tau": tau, "seed": 0,
                "n_samples": n, "draws_per_estimate": evals, "D": 1, "K": 2, "exact_value": 0.5,
                "bias": math.sqrt(bias_sq + variance / n), "bias_sq": bias_sq, "bias_pvalue": 0.0 if bias_sq else 0.5,
                "variance": variance, "mse": bias_sq + variance, "cosine": 0.9, "snr": 1 / math.sqrt(variance),
                "grad_norm": 1.0, "variance_se": 0.01, "mse_se": 0.01, "seconds": 0.001 * evals,
                "estimates_per_sec": n / (0.001 * evals), "device": "cpu", "dtype": "float32", "threads": 1,
                "gradbench_version": "0", "torch_version": "0", "timestamp": "t", "evals_per_estimate": evals,
                "seconds_per_estimate": 0.001 * evals / n, "mse_at_equal_evals": math.nan,
                "mse_at_equal_time": math.nan, "nonfinite_fraction": 0.0, "code_fingerprint": "",
            }
        )  # fmt: skip
    text = format_rows(rows, header=True)
    if columns != COLUMNS:  # the legacy format: drop the cost columns
        lines = [line.split(",")[: len(columns)] for line in text.splitlines()]
        text = "\n".join(",".join(line) for line in lines) + "\n"
    path.write_text(text)
    return path


@pytest.fixture
def grid(tmp_path) -> Path:
    return write_grid(tmp_path / "grid.csv")


def test_winners_at_equal_evaluations_differ_from_per_estimate_winners(grid):
    agg = aggregate(with_budgets(load_results(grid)))
    per_estimate = best_by_tau(agg, "estimate").iloc[0]
    at_evals = best_by_tau(agg, "evals").iloc[0]
    assert (per_estimate.best, per_estimate.runner_up) == ("st-gumbel", "gumbel")
    assert per_estimate.best_mse == pytest.approx(0.09)
    assert (at_evals.best, at_evals.runner_up) == ("gumbel", "st-gumbel")
    assert at_evals.best_mse == pytest.approx(0.01 + 0.1 / 12)
    assert at_evals.margin == pytest.approx((0.04 + 0.05 / 12) / (0.01 + 0.1 / 12))
    assert at_evals.per_estimate_best == "st-gumbel"
    # the crossover budgets
    assert at_evals.crossover == pytest.approx(90.0)
    assert (at_evals.unbiased_best, at_evals.biased_best) == ("reinforce", "gumbel")
    assert per_estimate.crossover == pytest.approx(20.0)
    assert (per_estimate.unbiased_best, per_estimate.biased_best) == ("rloo (m=4)", "gumbel")


def test_a_larger_budget_moves_the_ranking_towards_the_unbiased(grid):
    agg = aggregate(with_budgets(load_results(grid), eval_budget=1000))
    row = best_by_tau(agg, "evals", 1000).iloc[0]
    # at 1000 evaluations: reinforce 0.001 < gumbel 0.0101 < st-gumbel 0.04005 (beyond the crossover of 90)
    assert (row.best, row.runner_up) == ("reinforce", "rloo (m=4)")


def test_the_summary_shows_the_budget_the_winners_and_the_crossover(grid, tmp_path):
    result = CliRunner().invoke(app, ["plot", str(grid), "--out", str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "f" / "summary.md").read_text()
    assert "at equal cost: 12 f evaluations" in text and "best @ 12 evals" in text
    assert "| 0.5 | gumbel | 0.0183 | ×2.41 | st-gumbel | st-gumbel | 90 evals (reinforce over gumbel) |" in text
    per = CliRunner().invoke(app, ["plot", str(grid), "--out", str(tmp_path / "g"), "--per", "estimate"])
    assert per.exit_code == 0, per.output
    text = (tmp_path / "g" / "summary.md").read_text()
    assert "| 0.5 | st-gumbel | 0.09 | ×1.22 | gumbel | 20 estimates (rloo (m=4) over gumbel) |" in text


def test_legacy_results_files_get_their_cost_columns(tmp_path):
    legacy = load_results(write_grid(tmp_path / "old.csv", LEGACY_COLUMNS))
    assert list(legacy.columns) == list(COLUMNS)
    assert list(legacy["evals_per_estimate"]) == [1, 4, 1, 1]
    assert legacy["mse_at_equal_evals"].iloc[1] == pytest.approx(0.3 * 4 / 12)


def test_files_without_the_nonfinite_column_read_as_all_finite(tmp_path):
    older = load_results(write_grid(tmp_path / "v2.csv", LEGACY_COLUMNS + COST_COLUMNS))
    assert list(older.columns) == list(COLUMNS)
    assert (older["nonfinite_fraction"] == 0.0).all()
    assert list(older["evals_per_estimate"]) == [1, 4, 1, 1]


def test_bad_per_and_budget_are_one_line_errors(grid):
    from tests.helpers import assert_one_line_error

    runner = CliRunner()
    assert_one_line_error(runner.invoke(app, ["plot", str(grid), "--per", "day"]), "--per 'day'")
    bad_budget = runner.invoke(app, ["plot", str(grid), "--budget", "-3"])
    assert_one_line_error(bad_budget, "--budget must be a positive number")
    assert_one_line_error(runner.invoke(app, ["plot", str(grid), "--per", "estimate", "--budget", "3"]), "--budget")


@pytest.mark.parametrize(
    ("margin", "text"),
    [
        (1.3, "×1.30"),
        (29.8, "×29.8"),
        (412.4, "×412"),
        (999.4, "×999"),
        (1000.0, "> ×1000"),
        (5251195947.74, "> ×1000"),
        (math.inf, "> ×1000"),
    ],
)
def test_margins_are_short(margin, text):
    assert margin_text(margin) == text
