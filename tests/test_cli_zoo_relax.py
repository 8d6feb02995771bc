"""The relaxation and control-variate estimators through the CLI: hyper-parameters, ranges, listing."""

from __future__ import annotations

import csv

from typer.testing import CliRunner

from gradbench.cli import app


def invoke(*args):
    return CliRunner(env={"COLUMNS": "250"}).invoke(app, [str(a) for a in args])


def test_list_shows_family_flags_and_hyper_parameters():
    out = invoke("list").stdout
    for fragment in ("gumbel-rao", "k (default 10", "gapped-st", "gap (default 1.0", "reinmax", "tau (required, ≥ 1)",
                     "rebar", "eta (default 1.0)", "relax", "steps (default 100", "control-variate"):  # fmt: skip
        assert fragment in out, fragment


def test_est_opt_reaches_the_estimator_and_the_csv(tmp_path):
    out = tmp_path / "r.csv"
    for args in (("-e", "gumbel-rao", "--est-opt", "k=3"), ("-e", "relax", "--est-opt", "steps=5")):
        result = invoke("run", *args, "--tau", "0.5", "-n", "2000", "--out", out)
        assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [r["estimator_params"] for r in rows] == ["k=3", "hidden=16;steps=5;train_seed=0"]
    assert [r["draws_per_estimate"] for r in rows] == ["1", "3"]


def test_out_of_range_hyper_parameters_are_one_line_errors(tmp_path):
    out = tmp_path / "r.csv"
    for args, fragment in (
        (("-e", "reinmax", "--tau", "0.5"), "tau must be ≥ 1, got 0.5"),
        (("-e", "gumbel-rao", "--tau", "0.5", "--est-opt", "k=0"), "k must be ≥ 1"),
        (("-e", "gapped-st", "--tau", "0.5", "--est-opt", "gap=-1"), "gap must be ≥ 0"),
        (("-e", "rebar", "--tau", "0.5", "--est-opt", "eta=x"), "eta must be float"),
        (("-e", "rebar", "--tau", "0.5", "-t", "quadratic", "--est-opt", "k=2"), "unknown option 'k'"),
    ):
        result = invoke("run", *args, "-n", "100", "--out", out)
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("gradbench: error: ") and fragment in line, line
    assert not out.exists()
