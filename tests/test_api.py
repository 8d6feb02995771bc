"""The public Python API (gradbench.run / sweep / load_results / load_plugin) and run's JSON output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import gradbench
from gradbench.results import COLUMNS
from tests.helpers import assert_one_line_error, registry_snapshot, run, without_timing


def test_import_gradbench_loads_neither_torch_nor_pandas():
    code = "import sys, gradbench; print('torch' in sys.modules, 'pandas' in sys.modules, callable(gradbench.sweep))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "True"]


def test_run_returns_every_csv_column_and_equals_the_runner():
    row = gradbench.run("reinforce", "sum-target", samples=2_000, seed=4)
    assert list(row) == list(COLUMNS)
    assert without_timing(row) == without_timing(run("sum-target", "reinforce", n=2_000, seed=4))


def test_run_writes_csv_or_json_lines_and_load_results_reads_both(tmp_path):
    rows = [
        gradbench.run("gumbel", "bernoulli", tau=0.5, samples=500, seed=s, out=tmp_path / "r.jsonl") for s in (1, 2)
    ]
    gradbench.run("gumbel", "bernoulli", tau=0.5, samples=500, seed=1, out=tmp_path / "r.csv")
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert [json.loads(line)["seed"] for line in lines] == [1, 2]
    df = gradbench.load_results(tmp_path / "r.jsonl")
    assert list(df["bias"]) == [r["bias"] for r in rows]
    assert gradbench.load_results(tmp_path / "r.csv")["bias"].iloc[0] == rows[0]["bias"]


def test_run_validates_before_writing(tmp_path):
    with pytest.raises(gradbench.GradbenchError, match="unknown estimator"):
        gradbench.run("no-such", out=tmp_path / "r.jsonl")
    assert not (tmp_path / "r.jsonl").exists()
    (tmp_path / "foreign.jsonl").write_text("not json\n")
    with pytest.raises(gradbench.GradbenchError, match="not a JSON Lines file"):
        gradbench.run("reinforce", samples=10, out=tmp_path / "foreign.jsonl")


def test_sweep_returns_a_dataframe_with_one_row_per_cell_and_the_skipped_cells():
    df = gradbench.sweep(["reinforce", "gumbel"], ["sum-target", "quadratic"], taus=[0.5, 1.0], seeds=1, samples=256)
    assert len(df) == 2 * (1 + 2)
    assert set(df["estimator"]) == {"reinforce", "gumbel"}
    assert df.attrs["failed"] == []
    assert gradbench.sweep.parse_seeds("2") == [0, 1]  # the module stays usable


def test_load_plugin_takes_a_module_and_class_spec():
    from gradbench.registry import ESTIMATORS

    with registry_snapshot():
        ESTIMATORS.pop("chatty", None)
        gradbench.load_plugin("tests.plugins.chatty:Chatty")
        assert gradbench.run("chatty", samples=10)["variance"] == 0


def test_cli_run_json_prints_the_row_and_appends_json_lines(cli, tmp_path):
    out = tmp_path / "rows.jsonl"
    for seed in ("1", "2"):
        result = cli("run", "-e", "reinforce", "-n", "300", "--seed", seed, "--format", "json", "--out", out)
        assert result.exit_code == 0, result.output
        row = json.loads(result.stdout)
        assert list(row) == list(COLUMNS) and row["seed"] == int(seed)
    assert [json.loads(x)["seed"] for x in out.read_text().splitlines()] == [1, 2]
    assert_one_line_error(cli("run", "-e", "reinforce", "--format", "yaml"), "--format")


def test_exact_estimators_infinite_snr_is_null_in_json(cli, tmp_path):
    result = cli("run", "-e", "exact", "-n", "10", "--format", "json", "--out", tmp_path / "o.csv")
    assert json.loads(result.stdout)["snr"] is None
