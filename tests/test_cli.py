"""The CLI through typer's CliRunner: every command, and every bad input as one line on stderr with exit 2."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from gradbench import __version__
from tests.helpers import assert_one_line_error

PLUGINS = Path(__file__).parent / "plugins"


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"gradbench {__version__}"


def test_list_shows_estimators_tasks_flags_and_options(cli):
    result = cli("list")
    assert result.exit_code == 0
    for text in (
        "reinforce",
        "gumbel",
        "st-gumbel",
        "exact",
        "bernoulli",
        "quadratic",
        "sum-target",
        "unbiased",
        "needs relaxation",
        "tau",
        "target",
        "0.499",
        "categories",
    ):
        assert text in result.stdout, text


def test_run_prints_table_and_appends_rows(cli, tmp_csv):
    first = cli("run", "--estimator", "gumbel", "--tau", "0.5", "--samples", "2000", "--out", tmp_csv)
    assert first.exit_code == 0, first.output
    for text in ("bias_pvalue", "variance", "mse", "gumbel", "bernoulli"):
        assert text in first.stdout
    second = cli(
        "run",
        "--estimator",
        "reinforce",
        "--task",
        "bernoulli",
        "--task-opt",
        "target=0.45",
        "--samples",
        "2000",
        "--seed",
        "3",
        "--out",
        tmp_csv,
    )
    assert second.exit_code == 0, second.output
    rows = list(csv.DictReader(tmp_csv.open()))
    assert [r["estimator"] for r in rows] == ["gumbel", "reinforce"]
    assert rows[1]["task_params"] == "dim=1;logit=0.0;p=2.0;target=0.45"
    assert rows[1]["seed"] == "3" and rows[1]["n_samples"] == "2000"


def test_run_st_gumbel_on_sum_target(cli, tmp_csv):
    result = cli(
        "run", "--estimator", "st-gumbel", "--tau", "0.1", "--task", "sum-target", "--samples", "2000", "--out", tmp_csv
    )
    assert result.exit_code == 0, result.output


def test_same_seed_same_row(cli, tmp_csv):
    for _ in range(2):
        assert cli("run", "-e", "reinforce", "-n", "3000", "--seed", "9", "--out", tmp_csv).exit_code == 0
    a, b = list(csv.DictReader(tmp_csv.open()))
    assert a["variance"] == b["variance"] and a["bias_pvalue"] == b["bias_pvalue"]


def test_plugin_registers_task_and_estimator(cli, tmp_csv):
    result = cli(
        "run", "--plugin", PLUGINS / "discrete_only.py", "-e", "zero", "-t", "parity", "-n", "100", "--out", tmp_csv
    )
    assert result.exit_code == 0, result.output
    listing = cli("list", "--plugin", PLUGINS / "discrete_only.py")
    assert "parity" in listing.stdout and "zero" in listing.stdout


BAD_INPUTS = [
    (["-e", "gumbell", "--tau", "1"], ["unknown estimator 'gumbell'", "did you mean 'gumbel'"]),
    (["-e", "reinforce", "-t", "bernouli"], ["unknown task 'bernouli'", "did you mean 'bernoulli'"]),
    (["-e", "gumbel"], ["tau is required"]),
    (["-e", "gumbel", "--tau", "0"], ["tau must be > 0"]),
    (["-e", "gumbel", "--tau", "-0.5"], ["tau must be > 0"]),
    (["-e", "st-gumbel", "--tau", "inf"], ["tau must be a finite number"]),
    (["-e", "gumbel", "--tau", "nan"], ["tau must be a finite number"]),
    (["-e", "reinforce", "--tau", "0.5"], ["has no temperature"]),
    (["-e", "reinforce", "--samples", "1"], ["--samples must be at least 2"]),
    (["-e", "reinforce", "--samples", "lots"], ["--samples", "integer"]),
    (["-e", "reinforce", "--task-opt", "colour=red"], ["unknown option 'colour'", "dim, target, logit"]),
    (["-e", "reinforce", "--task-opt", "target"], ["--task-opt 'target': expected KEY=VALUE"]),
    (["-e", "reinforce", "--task-opt", "dim=two"], ["dim must be int"]),
    (["-e", "reinforce", "--task-opt", "dim=0"], ["dim must be ≥ 1"]),
    (["-e", "reinforce", "-t", "sum-target", "--task-opt", "dim=40"], ["4^40", "limited to 1,048,576"]),
    (["-e", "reinforce", "--est-opt", "m=3"], ["unknown option 'm'"]),
    (["-e", "reinforce", "--dtype", "float16"], ["unknown dtype"]),
    (["-e", "reinforce", "--threads", "0"], ["--threads must be at least 1"]),
    (["-e", "reinforce", "--plugin", "no/such/plugin.py"], ["plug-in file 'no/such/plugin.py' does not exist"]),
    (
        ["-e", "reinforce", "--plugin", str(PLUGINS / "broken_import.py")],
        ["failed to import", "ModuleNotFoundError", "gradbench_does_not_exist"],
    ),
    (
        ["-e", "gumbel", "--tau", "1", "-t", "parity", "--plugin", str(PLUGINS / "discrete_only.py")],
        ["needs f on the simplex", "parity"],
    ),
    (["--estimator"], ["--estimator", "requires an argument"]),
    ([], ["Missing option", "--estimator"]),
    (["-e", "reinforce", "--nonsense"], ["--nonsense"]),
]


@pytest.mark.parametrize(("args", "fragments"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_exit_2_and_no_file(cli, tmp_csv, args, fragments):
    result = cli("run", "--out", tmp_csv, *args)
    assert_one_line_error(result, *fragments)
    assert not tmp_csv.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu(cli, tmp_csv):
    assert_one_line_error(cli("run", "-e", "reinforce", "--device", "cuda", "--out", tmp_csv), "no CUDA GPU")


def test_unwritable_out(cli, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert_one_line_error(cli("run", "-e", "reinforce", "-n", "10", "--out", blocker / "r.csv"), "--out")


def test_existing_out_with_another_header_is_refused_untouched(cli, tmp_csv):
    tmp_csv.write_text("name,score\nx,1\n")
    assert_one_line_error(cli("run", "-e", "reinforce", "-n", "10", "--out", tmp_csv), "different header")
    assert tmp_csv.read_text() == "name,score\nx,1\n"


def test_unknown_command(cli):
    assert_one_line_error(cli("frobnicate"), "frobnicate")
