"""Sweeps over any option: list-valued and range-valued --task-opt/--est-opt, and --vary."""

from __future__ import annotations

import csv

import pytest

from gradbench.errors import GradbenchError
from gradbench.grid import expand_grid, parse_values
from tests.helpers import assert_one_line_error


def test_parse_values_lists_and_ranges():
    assert parse_values("2", "f") == ["2"]
    assert parse_values("2,4, 8", "f") == ["2", "4", "8"]
    assert parse_values("-3:3:5", "f") == ["-3", "-1.5", "0", "1.5", "3"]
    assert parse_values("0.1:10:3:log", "f") == ["0.1", "1", "10"]
    assert parse_values("2:8:4", "f") == ["2", "4", "6", "8"]  # integral points read as integers
    for bad in ("1:1:3", "1:2:1", "0:1:3:log", "a:2:3", "1:2:x", "1:2:3:ln", "1,1", ","):
        with pytest.raises(GradbenchError):
            parse_values(bad, "f")


def test_a_list_valued_est_opt_gives_one_estimator_per_value():
    grid = expand_grid(["bernoulli"], ["rloo", "reinforce"], [], [0, 1], est_opts={"m": "2,4,8"})
    ms = [c.spec.estimator_params.get("m") for c in grid.cells]
    assert ms == ["2", "2", "4", "4", "8", "8", None, None]  # grid order: estimator, its options, seed
    assert len({c.key for c in grid.cells}) == len(grid.cells)
    assert {c.key[3] for c in grid.cells if c.spec.estimator == "rloo"} == {"m=2", "m=4", "m=8"}
    assert "rloo m=4 on bernoulli, seed 1" in [c.label for c in grid.cells]


def test_vary_sweeps_a_task_option_and_keeps_cells_distinct():
    grid = expand_grid(["gauss-cos", "bernoulli"], ["pathwise", "gumbel"], [1.0], [0], vary={"k": "-3:3:25"})
    ks = [c.spec.task_params["k"] for c in grid.cells if c.spec.task == "gauss-cos"]
    assert len(ks) == 25 and ks[0] == -3.0 and ks[12] == 0.0 and ks[-1] == 3.0 and ks == sorted(ks)
    assert [(c.spec.task, c.spec.estimator) for c in grid.cells[25:]] == [("bernoulli", "gumbel")]  # no k there
    assert len({c.key for c in grid.cells}) == 26
    skipped = {(s.task.split(" ")[0], s.estimator): s for s in grid.skipped}  # one line per task, not per k value
    assert {key: s.cells for key, s in skipped.items()} == {("gauss-cos", "gumbel"): 25, ("bernoulli", "pathwise"): 1}
    assert skipped["gauss-cos", "gumbel"].task == "gauss-cos"  # no options: they vary
    assert skipped["bernoulli", "pathwise"].task.startswith("bernoulli (dim=1;")  # one variant: its options


def test_vary_routes_to_estimators_and_to_temperatures():
    grid = expand_grid(["bernoulli"], ["rloo"], [], [0], vary={"m": "2:5:4"})
    assert [c.spec.estimator_params["m"] for c in grid.cells] == ["2", "3", "4", "5"]
    grid = expand_grid(["bernoulli"], ["gumbel"], [0.5], [0], vary={"tau": "0.1:10:3:log"})
    assert [c.spec.estimator_params["tau"] for c in grid.cells] == [0.1, 1.0, 10.0]


@pytest.mark.parametrize(
    ("vary", "message"),
    [
        ({"nope": "1:2:3"}, "no selected task or estimator has this option"),
        ({"wrt": "1:2:3"}, "not a numeric option"),
        ({"k": "1:2"}, "a range is LOW:HIGH:COUNT"),
    ],
)
def test_vary_errors(vary, message):
    with pytest.raises(GradbenchError, match=message):
        expand_grid(["gauss-cos"], ["pathwise"], [], [0], vary=vary)


def test_vary_and_task_opt_of_the_same_key_is_an_error():
    with pytest.raises(GradbenchError, match="also given"):
        expand_grid(["gauss-cos"], ["pathwise"], [], [0], task_opts={"k": "1"}, vary={"k": "1:2:3"})


def test_list_valued_bad_value_is_found_before_any_work():
    with pytest.raises(GradbenchError, match="m must be ≥ 2"):
        expand_grid(["bernoulli"], ["rloo"], [], [0], est_opts={"m": "2,1"})


def test_cli_sweep_with_lists_resumes_without_rerunning(cli, tmp_path):
    out = tmp_path / "grid.csv"
    args = ("sweep", "-t", "gauss-cos", "-e", "pathwise,score-function", "--vary", "k=0.5:2:3:log",
            "--est-opt", "baseline=none,optimal", "--seeds", "1", "--samples", "2000", "--workers", "1",
            "--out", out)  # fmt: skip
    first = cli(*args)
    assert first.exit_code == 0, first.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3 * (1 + 2)
    again = cli(*args, "--resume")
    assert again.exit_code == 0, again.output
    assert "0 of 9" in again.output or "9 of 9" in again.output
    assert list(csv.DictReader(out.open()))[0]["timestamp"] == rows[0]["timestamp"]  # nothing re-run


def test_cli_vary_error_is_one_line(cli, tmp_path):
    assert_one_line_error(cli("sweep", "-t", "gauss-cos", "--vary", "wrt=1:2:3", "--out", tmp_path / "x.csv"), "--vary")


# --- plot: the varied option on the x axis ----------------------------------------------------------------------


def test_plot_axis_is_the_varied_option_log_or_linear(tmp_path):
    from pathlib import Path

    from gradbench.aggregate import load_results
    from gradbench.xaxis import TAU, choose_axis, move_to_x

    docs = Path(__file__).parent.parent / "docs" / "gaussian"
    cos, square = load_results(docs / "gauss-cos.csv"), load_results(docs / "gauss-square.csv")
    axis = choose_axis(cos)
    assert (axis.name, axis.log) == ("k", True)  # 0.5 … 5: positive, a factor 10
    assert choose_axis(square).log is False  # −3 … 3
    moved = move_to_x(cos, axis)
    assert sorted(moved["tau"].unique())[0] == 0.5 and len(moved["tau"].unique()) == 25
    assert not any("k=" in t for t in moved["task_params"].unique())  # one figure per wrt, not per k
    assert set(moved["task_params"].str.extract(r"wrt=(\w+)")[0]) == {"mu", "sigma"}
    assert choose_axis(load_results(docs.parent / "sweep" / "sweep.csv")) == TAU
    with pytest.raises(GradbenchError, match="no row has the option"):
        choose_axis(cos, "m")
    with pytest.raises(GradbenchError, match="not numeric"):
        choose_axis(cos, "wrt")


def test_plot_draws_points_at_the_varied_values(cli, tmp_path):
    out = tmp_path / "g.csv"
    assert cli("sweep", "-t", "gauss-square", "-e", "pathwise,exact", "--vary", "k=-1:1:3", "--seeds", "1",
               "--samples", "1000", "--workers", "1", "--out", out).exit_code == 0  # fmt: skip
    result = cli("plot", out, "--metrics", "variance", "--format", "svg", "--out", tmp_path / "fig")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fig" / "gauss-square.svg").stat().st_size > 0
    from gradbench.aggregate import aggregate, load_results
    from gradbench.plots import build_figure
    from gradbench.xaxis import choose_axis, move_to_x

    df = load_results(out)
    axis = choose_axis(df)
    moved = move_to_x(df, axis)
    agg = aggregate(moved)
    key = {"task": "gauss-square", "task_params": moved["task_params"].iloc[0], "dtype": "float32", "device": "cpu"}
    fig = build_figure(key, agg, moved, ["variance"], axis=axis)
    (ax,) = fig.axes
    (line,) = [a for a in ax.get_lines() if a.get_gid() and a.get_gid().startswith("variance|pathwise")]
    assert list(line.get_xdata()) == [-1.0, 0.0, 1.0] and ax.get_xscale() == "linear" and ax.get_xlabel() == "k"
