"""The throughput benchmark: what it reports is self-consistent, memory does not grow with n, bad input is refused.

No timing thresholds here (speed figures belong in benchmarks/throughput.py's output), only structure and sanity.
"""

from __future__ import annotations

import csv
import math

import pytest
import torch
from typer.testing import CliRunner

from gradbench.bench import COLUMNS, BenchConfig, peak_memory, run_benchmark
from gradbench.cli import app
from gradbench.runner import CellSpec
from tests.helpers import assert_one_line_error

QUICK = {
    "samples": 4096,
    "marginal_from": 1024,
    "repeats": 2,
    "naive_seconds": 0.02,
    "stock_samples": 2048,
    "memory_samples": None,
}


def test_default_is_the_three_headline_estimators():
    from gradbench.bench import DEFAULT_ESTIMATORS, select_estimators

    assert select_estimators(BenchConfig(**QUICK)) == (list(DEFAULT_ESTIMATORS), [])
    assert DEFAULT_ESTIMATORS == ("reinforce", "gumbel", "st-gumbel")


def test_every_builtin_estimator_is_measured_or_skipped_with_a_reason():
    from gradbench.bench import select_estimators
    from gradbench.registry import all_estimators

    chosen, notes = select_estimators(BenchConfig(**QUICK, all_estimators=True))
    skipped = {note.split(":")[0] for note in notes}
    assert set(chosen) | skipped == set(all_estimators())
    assert skipped == {  # quadratic has K = 10 and categorical latents
        n for n, c in all_estimators().items() if c.binary_only or "categorical" not in c.families
    }


def test_report_is_consistent_for_every_builtin_estimator():
    names = ("exact", "gumbel", "reinforce", "st-gumbel", "reinmax")
    rows, notes = run_benchmark(BenchConfig(**QUICK, estimators=names))
    assert notes == []
    assert [r["estimator"] for r in rows] == list(names)
    assert rows[-1]["tau"] == 1.0  # ReinMax's τ range starts at 1
    for row in rows:
        assert list(row) == list(COLUMNS)
        assert (row["task"], row["D"], row["K"], row["dtype"], row["threads"]) == ("quadratic", 20, 10, "float32", 1)
        for key in ("ours_cell_per_sec", "ours_estimate_per_sec", "naive_per_sec", "naive_gs_per_sec", "limit_per_sec"):
            assert math.isfinite(row[key]) and row[key] > 0, key
        assert row["ours_estimate_per_sec"] > row["ours_cell_per_sec"]  # the cell's time includes the estimates'
        assert row["nonfinite_fraction"] == 0.0 and row["marginal_from"] == 1024 and row["load_average"] >= 0
    by_name = {r["estimator"]: r for r in rows}
    assert by_name["exact"]["naive_kind"] == "gradbench estimator with n = 1 per draw"
    assert math.isnan(by_name["exact"]["stock_per_sec"]) and by_name["exact"]["stock_kind"] == ""
    assert by_name["exact"]["tau"] == "" and by_name["gumbel"]["tau"] == 0.5
    assert "gumbel_softmax" in by_name["gumbel"]["naive_kind"]
    assert "hard=True" in by_name["st-gumbel"]["stock_kind"]
    assert "Categorical" in by_name["reinforce"]["stock_kind"]
    for row in rows[1:4]:
        assert math.isfinite(row["stock_per_sec"]) and row["stock_per_sec"] > 0


def test_task_options_give_another_problem_of_the_same_kind():
    config = BenchConfig(**QUICK, estimators=("reinforce",), task_params={"dim": 100, "categories": 2})
    (row,), _ = run_benchmark(config)
    assert (row["task"], row["D"], row["K"]) == ("quadratic", 100, 2)


def test_one_repeat_ratios_are_the_ratios_of_the_rates():
    (row,), _ = run_benchmark(BenchConfig(**{**QUICK, "repeats": 1}, estimators=("gumbel",)))
    assert row["ours_vs_naive"] == pytest.approx(row["ours_per_sec"] / row["naive_per_sec"], rel=1e-12)
    assert row["ours_vs_naive_gs"] == pytest.approx(row["ours_per_sec"] / row["naive_gs_per_sec"], rel=1e-12)
    assert row["ours_vs_stock"] == pytest.approx(row["ours_per_sec"] / row["stock_per_sec"], rel=1e-12)
    assert row["ours_vs_limit"] == pytest.approx(row["ours_per_sec"] / row["limit_per_sec"], rel=1e-12)


def test_peak_memory_does_not_grow_with_the_number_of_estimates():
    # Keeping the estimates would cost 200 x 4 bytes each: 144 MiB more for the larger run.
    spec = CellSpec(task="quadratic", estimator="reinforce", n_samples=20_000)
    small, kind = peak_memory(spec, threads=1, plugins=())
    large, _ = peak_memory(CellSpec(task="quadratic", estimator="reinforce", n_samples=200_000), 1, ())
    assert kind == "process max RSS"
    assert small > 50 and large - small < 24, (small, large)


QUICK_ARGS = ["-n", "30000", "--repeats", "1", "--naive-seconds", "0.02", "--no-memory"]


def test_cli_writes_csv_and_markdown(tmp_path):
    out = tmp_path / "t.csv"
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["bench", "-e", "reinforce", "-e", "exact", *QUICK_ARGS, "--markdown", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [r["estimator"] for r in rows] == ["reinforce", "exact"]
    assert list(rows[0]) == list(COLUMNS)
    assert "| `reinforce` |" in result.stdout and "ours / limit" in result.stdout
    assert "naive F.gumbel_softmax loop" in result.stdout
    assert "1 torch thread(s)" in result.stdout
    assert "[1/4] reinforce: calibrated" in result.stderr and "s left" in result.stderr  # progress with an ETA


def test_rows_are_written_as_each_completes(tmp_path, monkeypatch):
    import gradbench.bench.command as command

    out = tmp_path / "t.csv"
    seen = []
    original = command.write_csv

    def spy(path, rows):
        original(path, rows)
        seen.append([r["estimator"] for r in csv.DictReader(path.open())])

    monkeypatch.setattr(command, "write_csv", spy)
    options = {**QUICK, "estimators": ("reinforce", "exact")}
    del options["memory_samples"]
    command.cli_main(
        memory_samples=None, memory=False, long=False, out=out, markdown=False, console=_quiet(), **options
    )
    assert seen == [["reinforce"], ["reinforce", "exact"]]


def _quiet():
    import io

    from rich.console import Console

    return Console(file=io.StringIO())


BAD_INPUT = [
    (["-n", "1"], ["--samples must be between 2 and"]),
    (["-n", "1000"], ["--samples must exceed 20,000"]),
    (["-n", "100000000000"], ["--samples must be between 2 and"]),
    (["--repeats", "0"], ["--repeats must be between 1 and 100"]),
    (["--threads", "1000"], ["--threads must be between 1 and"]),
    (["--tau", "0"], ["--tau must be a finite number > 0"]),
    (["--tau", "nan"], ["--tau must be a finite number > 0"]),
    (["-e", "nope"], ["unknown estimator 'nope'"]),
    (["-e", "arm"], ["binary"]),
    (["-e", "gumbel", "--all"], ["--estimator and --all exclude each other"]),
    (["--memory-samples", "lots"], ["--memory-samples 'lots'"]),
    (["--memory-samples", "1,100"], ["--memory-samples must be between 2 and"]),
    (["--memory-samples", "1e5,1e12"], ["--memory-samples must be between 2 and"]),
    (["--naive-seconds", "0"], ["--naive-seconds must be"]),
    (["--dtype", "float8"], ["unknown dtype"]),
    (["--task-opt", "categories=1"], ["categories must be ≥ 2"]),
    (["--task-opt", "colour=red"], ["unknown option 'colour'"]),
    (["--device", "tpu"], ["tpu"]),
]


@pytest.mark.parametrize(("args", "fragments"), BAD_INPUT)
def test_bad_input_is_one_line_and_touches_no_file(args, fragments, tmp_path):
    """Issue 16: validate first. A missing --out stays missing, an existing throughput CSV keeps its bytes."""
    result = CliRunner().invoke(app, ["bench", *args, "--out", str(tmp_path / "new" / "sub" / "t.csv")])
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "new").exists()  # not even the folder (the old code created it before validating)
    existing = tmp_path / "old.csv"
    existing.write_text(",".join(COLUMNS) + "\n")
    before = existing.read_bytes(), existing.stat().st_mtime_ns
    result = CliRunner().invoke(app, ["bench", *args, "--out", str(existing)])
    assert_one_line_error(result, *fragments)
    assert (existing.read_bytes(), existing.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.csv"]  # no temporary file left either


@pytest.mark.parametrize(
    "content",
    ["task,estimator,bias\nx,y,1\n", "my notes, not a CSV at all\n", "\udcff\udcfe binary"],
    ids=["other-csv", "text", "binary"],
)
def test_a_foreign_out_file_is_refused_and_kept(content, tmp_path):
    foreign = tmp_path / "foreign.csv"
    data = content.encode("utf-8", "surrogateescape")
    foreign.write_bytes(data)
    result = CliRunner().invoke(app, ["bench", "-e", "exact", *QUICK_ARGS, "--out", str(foreign)])
    assert_one_line_error(result, "not a gradbench throughput CSV", "refusing to overwrite")
    assert foreign.read_bytes() == data


def test_out_must_be_a_regular_file(tmp_path):
    import os

    assert_one_line_error(CliRunner().invoke(app, ["bench", "--out", str(tmp_path)]), "is a directory")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert_one_line_error(CliRunner().invoke(app, ["bench", "--out", str(fifo)]), "not a regular file")
    assert_one_line_error(CliRunner().invoke(app, ["bench", "--out", "/dev/full"]), "not a regular file")
    import socket

    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "sock"))
        assert_one_line_error(CliRunner().invoke(app, ["bench", "--out", str(tmp_path / "sock")]), "not a regular file")
    finally:
        sock.close()


def test_default_out_is_a_new_file_never_an_existing_one(tmp_path):
    from gradbench.bench.output import default_out

    first = default_out(tmp_path)
    assert first.parent == tmp_path and first.name.startswith("bench-") and not first.exists()
    first.write_text("x")
    second = default_out(tmp_path)
    assert second != first and not second.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_refused(tmp_path):
    result = CliRunner().invoke(app, ["bench", "--device", "cuda", "--out", str(tmp_path / "t.csv")])
    assert_one_line_error(result, "no CUDA GPU")


def test_sweep_scaling_times_the_same_grid_for_each_worker_count():
    from gradbench.bench import sweep_scaling, sweep_scaling_table

    rows = sweep_scaling(workers=(1, 2), estimators="reinforce,gumbel", tasks="bernoulli", taus="0.5,1", seeds="2")
    assert [r["workers"] for r in rows] == [1, 2]
    assert rows[0]["cells"] == rows[1]["cells"] == 2 + 4  # reinforce once per seed, gumbel per τ and seed
    assert rows[0]["speedup"] == 1.0 and rows[1]["speedup"] == rows[0]["seconds"] / rows[1]["seconds"]
    assert sweep_scaling_table(rows).row_count == 2


def test_low_precision_bench_runs_and_records_the_dtype():
    (row,), _ = run_benchmark(BenchConfig(**{**QUICK, "repeats": 1}, estimators=("st-gumbel",), dtype="bfloat16"))
    assert row["dtype"] == "bfloat16" and 0.0 <= row["nonfinite_fraction"] <= 1.0
    assert math.isfinite(row["ours_cell_per_sec"]) and row["ours_cell_per_sec"] > 0
