"""gradbench sweep: grid expansion, skips, identical CSVs for any worker count, crash safety and resume, errors."""

from __future__ import annotations

import csv
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gradbench.errors import GradbenchError
from gradbench.registry import (
    all_estimators,
    all_tasks,
    default_sweep_estimators,
    default_sweep_tasks,
    get_estimator,
    get_task,
    load_plugin,
)
from gradbench.results import COLUMNS
from gradbench.sweep import (
    AUTO_BUDGET,
    AUTO_MAX,
    AUTO_MIN,
    DEFAULT_SEEDS,
    DEFAULT_TAUS,
    IDENTITY_COLUMNS,
    TIMING_COLUMNS,
    auto_samples,
    expand_grid,
    parse_names,
    parse_seeds,
    parse_taus,
    row_key,
)
from tests.helpers import as_in_a_terminal, assert_one_line_error

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = Path(__file__).parent / "plugins" / "sweep_extras.py"
SMALL = ["--tasks", "bernoulli,sum-target", "--estimators", "exact,reinforce,gumbel", "--taus", "0.5,2"]
SMALL += ["--seeds", "2", "--samples", "600", "--workers", "1"]  # one worker: no process start-up cost


def rows_of(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == COLUMNS
        return list(reader)


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


# --- the grid's axes ------------------------------------------------------------------------------------------


def test_parse_taus_lists_and_log_ranges():
    assert parse_taus("1, 0.5,0.5,2") == [0.5, 1.0, 2.0]
    taus = parse_taus("0.05:5:11")
    assert len(taus) == 11 and taus[0] == 0.05 and taus[-1] == 5.0 and 0.5 in taus
    ratios = [b / a for a, b in zip(taus, taus[1:], strict=False)]
    assert max(ratios) / min(ratios) < 1.02  # log-spaced (up to the 3-digit rounding)
    assert parse_taus("0.05:5:12")[1] == 0.076  # 0.05 · 100^(1/11) = 0.07599…
    assert parse_taus("2:2:1") == [2.0]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("0,1", "> 0"), ("-1", "> 0"), ("nan", "> 0"), ("inf", "> 0"), ("x", "not a number"), ("1:2", "LOW:HIGH:COUNT")]
    + [("1:2:1", "COUNT must be ≥ 2"), ("5:1:3", "LOW must not exceed HIGH"), ("1:2:x", "integer"), ("", "comma")],
)
def test_parse_taus_errors(text, fragment):
    with pytest.raises(GradbenchError, match=fragment):
        parse_taus(text)


def test_parse_seeds():
    assert parse_seeds("3") == [0, 1, 2]
    assert parse_seeds("4,0,9") == [4, 0, 9]
    assert parse_seeds("7,") == [7]
    for bad in ("0", "-1,2", "a", "1,1", ","):
        with pytest.raises(GradbenchError, match="--seeds"):
            parse_seeds(bad)


def test_auto_samples_is_a_power_of_two_within_the_budget():
    for task_name in ("bernoulli", "sum-target", "quadratic"):
        task = get_task(task_name)()
        for est_name in ("reinforce", "gumbel"):
            est = get_estimator(est_name)(**({"tau": 1.0} if est_name == "gumbel" else {}))
            n = auto_samples(task, est)
            assert n & (n - 1) == 0 and AUTO_MIN <= n <= AUTO_MAX
            assert n == AUTO_MIN or n * task.D * task.K <= AUTO_BUDGET
            assert n == AUTO_MAX or 2 * n * task.D * task.K > AUTO_BUDGET  # the largest that fits


# --- grid expansion -------------------------------------------------------------------------------------------


def test_estimators_without_temperature_run_once_per_task_and_seed():
    grid = expand_grid(["bernoulli", "sum-target"], ["reinforce", "gumbel", "exact"], [0.1, 0.5, 2.0], [0, 1])
    count = {}
    for cell in grid.cells:
        count[(cell.spec.task, cell.spec.estimator)] = count.get((cell.spec.task, cell.spec.estimator), 0) + 1
        assert ("tau" in cell.spec.estimator_params) == (cell.spec.estimator == "gumbel")
    assert count == {
        (t, e): (6 if e == "gumbel" else 2)
        for t in ("bernoulli", "sum-target")
        for e in ("reinforce", "gumbel", "exact")
    }
    assert not grid.skipped
    # grid order: task, estimator, τ, seed
    order = [(c.spec.task, c.spec.estimator, c.spec.estimator_params.get("tau"), c.spec.seed) for c in grid.cells]
    assert order[:8] == [("bernoulli", "reinforce", None, 0), ("bernoulli", "reinforce", None, 1)] + [
        ("bernoulli", "gumbel", tau, seed) for tau in (0.1, 0.5, 2.0) for seed in (0, 1)
    ]
    assert [c.index for c in grid.cells] == list(range(len(grid.cells)))
    assert len({c.key for c in grid.cells}) == len(grid.cells)


def test_incompatible_pairs_and_bad_taus_are_skipped_with_reasons():
    load_plugin(Path(__file__).parent / "plugins" / "discrete_only.py")
    load_plugin(EXTRAS)
    grid = expand_grid(["parity", "bernoulli"], ["gumbel", "reinforce", "warm", "needs-k"], [0.5, 1.0, 2.0], [0, 1, 2])
    ran = {(c.spec.task, c.spec.estimator, c.spec.estimator_params.get("tau")) for c in grid.cells}
    assert ("parity", "gumbel", 0.5) not in ran and ("parity", "reinforce", None) in ran
    assert ("bernoulli", "warm", 0.5) not in ran and ("bernoulli", "warm", 1.0) in ran
    assert not any(e == "needs-k" for _, e, _ in ran)
    skipped = {(s.task.split(" ")[0], s.estimator): s for s in grid.skipped}
    assert "needs f on the simplex" in skipped["parity", "gumbel"].reason and skipped["parity", "gumbel"].cells == 9
    warm = skipped["bernoulli", "warm"]
    assert warm.reason == "tau must be ≥ 1" and warm.taus == (0.5,) and warm.cells == 3
    assert "--est-opt k" in skipped["bernoulli", "needs-k"].reason
    # parity: reinforce, warm at 2 τ; bernoulli: gumbel at 3 τ, reinforce, warm at 2 τ; 3 seeds each
    assert len(grid.cells) == (3 + 2 * 3) + (3 * 3 + 3 + 2 * 3)


def test_a_task_too_large_to_enumerate_is_skipped_not_fatal():
    grid = expand_grid(["sum-target", "quadratic"], ["reinforce", "gumbel"], [1.0, 2.0], [0], task_opts={"dim": "40"})
    assert {c.spec.task for c in grid.cells} == {"quadratic"} and len(grid.cells) == 3
    (skip,) = grid.skipped
    assert skip.task.startswith("sum-target") and "limited to 1,048,576" in skip.reason and skip.cells == 3


def test_options_apply_where_declared_and_others_take_defaults():
    load_plugin(EXTRAS)
    grid = expand_grid(
        ["bernoulli", "quadratic"], ["warm", "reinforce"], [1.0], [0], task_opts={"target": "0.3"}, est_opts={"m": "5"}
    )
    for cell in grid.cells:
        assert ("target" in cell.spec.task_params) == (cell.spec.task == "bernoulli")
        assert cell.spec.estimator_params.get("m") == ("5" if cell.spec.estimator == "warm" else None)
    keys = {c.key[0]: c.key for c in grid.cells if c.spec.estimator == "warm"}
    assert keys["bernoulli"][1] == "dim=1;logit=0.0;p=2.0;target=0.3" and keys["quadratic"][1] == "categories=10;dim=20"
    assert keys["bernoulli"][3] == "m=5"
    with pytest.raises(GradbenchError, match="no selected estimator has this option"):
        expand_grid(["bernoulli"], ["reinforce"], [1.0], [0], est_opts={"m": "5"})
    with pytest.raises(GradbenchError, match="no selected task has this option"):
        expand_grid(["quadratic"], ["reinforce"], [1.0], [0], task_opts={"target": "0.3"})
    with pytest.raises(GradbenchError, match="m must be int"):
        expand_grid(["bernoulli"], ["warm"], [1.0], [0], est_opts={"m": "five"})
    with pytest.raises(GradbenchError, match="--taus"):
        expand_grid(["bernoulli"], ["gumbel"], [1.0], [0], est_opts={"tau": "1"})


def test_planned_keys_match_the_rows_written():
    from gradbench.runner import run_cell

    grid = expand_grid(["sum-target"], ["gumbel", "reinforce"], [0.05, 1 / 3], [4], samples=64)
    for cell in grid.cells:
        assert row_key(run_cell(cell.spec)) == cell.key
    assert len(IDENTITY_COLUMNS) == 9


def test_default_grid_is_everything_at_eleven_temperatures_and_three_seeds():
    taus, seeds = parse_taus(DEFAULT_TAUS), parse_seeds(DEFAULT_SEEDS)
    assert len(taus) >= 10 and taus[0] == 0.05 and taus[-1] == 5.0 and seeds == [0, 1, 2]
    tasks = parse_names("all", "task", all_tasks(), get_task)
    estimators = parse_names("all", "estimator", all_estimators(), get_estimator)
    grid = expand_grid(tasks, estimators, taus, seeds)
    assert {c.spec.task for c in grid.cells} == set(all_tasks())
    for e in ("exact", "reinforce", "gumbel", "st-gumbel"):
        assert e in {c.spec.estimator for c in grid.cells}
    # the default sample counts keep a cell's cost about constant: n · D · K within the budget
    assert all(c.spec.n_samples * c.cost > 0 for c in grid.cells)
    assert {c.spec.n_samples for c in grid.cells if c.spec.task == "quadratic"} == {AUTO_MIN}


def test_the_default_sweep_leaves_out_the_model_tasks_and_the_opt_in_estimators(cli, tmp_path):
    tasks = default_sweep_tasks()
    assert {"bernoulli", "quadratic", "sum-target", "gauss-cos"} <= set(tasks)
    assert not {"vae-digits", "sbn-digits"} & set(tasks)  # seconds per cell: by name only
    assert set(tasks) == {name for name, cls in all_tasks().items() if cls.default_sweep}
    assert "indecater" in all_estimators() and "indecater" not in default_sweep_estimators()
    out = tmp_path / "all.csv"  # a fresh process: plug-ins other tests registered here stay out
    args = ["sweep", "--tasks", "all", "-e", "exact", "--taus", "1", "--seeds", "1", "-n", "100", "--out", str(out)]
    result = subprocess.run([sys.executable, "-m", "gradbench.cli", *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    builtin = {name for name, cls in tasks.items() if cls.__module__.startswith("gradbench.tasks.")}
    assert {r["task"] for r in rows_of(out)} == builtin
    assert len(builtin) == 7
    named = cli("sweep", "-t", "vae-digits", "-e", "exact", "--seeds", "1", "-n", "100", "--out", tmp_path / "m.csv")
    assert named.exit_code == 0 and {r["task"] for r in rows_of(tmp_path / "m.csv")} == {"vae-digits"}


# --- running: workers, crash safety, resume -------------------------------------------------------------------


def test_workers_1_and_2_write_the_same_csv(cli, tmp_path):
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    first = cli("sweep", *SMALL, "--out", one)
    assert first.exit_code == 0, first.output
    second = cli("sweep", *SMALL[:-2], "--workers", "2", "--out", two)
    assert second.exit_code == 0, second.output
    a, b = rows_of(one), rows_of(two)
    assert len(a) == 2 * (2 + 2 + 2 * 2)
    assert without_timing(a) == without_timing(b)  # same rows, same order, same numbers
    assert {k for k in COLUMNS if any(x[k] != y[k] for x, y in zip(a, b, strict=True))} <= set(TIMING_COLUMNS)
    assert f"in {one}" in first.stdout and f"gradbench plot {one}" in first.stdout
    assert "2 workers" in second.stderr


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_resume_after_a_kill_equals_the_uninterrupted_sweep(cli, tmp_path):
    """SIGKILL a real 2-worker sweep mid-way: only whole rows remain, the workers do not linger, and --resume
    completes the file to the uninterrupted sweep's CSV."""
    args = ["--plugin", EXTRAS, "--tasks", "bernoulli", "--estimators", "slow,reinforce", "--taus", "0.5,1,2"]
    args += ["--seeds", "4", "--samples", "200"]
    killed = tmp_path / "killed.csv"
    command = [sys.executable, "-m", "gradbench.cli", "sweep", *map(str, args), "--workers", "2", "--out", str(killed)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not killed.exists() or killed.read_text().count("\n") < 4):
        time.sleep(0.02)
    workers = _children(proc.pid)
    proc.kill()
    proc.wait()
    text = killed.read_text()
    assert text.endswith("\n")
    partial = list(csv.reader(text.splitlines()))
    assert tuple(partial[0]) == COLUMNS and all(len(r) == len(COLUMNS) for r in partial)
    assert 3 <= len(partial) - 1 < 16, "the sweep was not killed mid-way"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    assert workers and not any(_alive(w) for w in workers), "orphaned workers"

    resumed = cli("sweep", *args, "--workers", "1", "--out", killed, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert f"{len(partial) - 1} already in the file" in resumed.stderr
    whole = tmp_path / "whole.csv"
    assert cli("sweep", *args, "--workers", "1", "--out", whole).exit_code == 0
    assert without_timing(rows_of(killed)) == without_timing(rows_of(whole))


def test_resume_restores_grid_order_from_any_subset(cli, tmp_path):
    """What a kill with several workers leaves: any subset of rows, in completion order."""
    whole = tmp_path / "whole.csv"
    assert cli("sweep", *SMALL, "--out", whole).exit_code == 0
    lines = whole.read_text().splitlines(keepends=True)
    body = lines[1:]
    random.Random(3).shuffle(body)
    partial = tmp_path / "partial.csv"
    partial.write_text(lines[0] + "".join(body[:7]))
    result = cli("sweep", *SMALL, "--out", partial, "--resume")
    assert result.exit_code == 0, result.output
    assert without_timing(rows_of(partial)) == without_timing(rows_of(whole))
    again = cli("sweep", *SMALL, "--out", partial, "--resume")  # nothing left to run: unchanged
    assert again.exit_code == 0 and "16 already in the file, 0 to run" in again.stderr
    assert without_timing(rows_of(partial)) == without_timing(rows_of(whole))


def test_resume_keeps_rows_from_outside_the_grid(cli, tmp_path):
    out = tmp_path / "r.csv"
    assert cli("run", "-e", "reinforce", "-t", "quadratic", "-n", "100", "--out", out).exit_code == 0
    result = cli("sweep", *SMALL, "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    rows = rows_of(out)
    assert len(rows) == 17 and rows[0]["task"] == "quadratic"


def test_ctrl_c_saves_whole_rows_and_says_so(tmp_path):
    out = tmp_path / "c.csv"
    args = ["sweep", "--plugin", str(EXTRAS), "-t", "bernoulli", "-e", "slow", "--taus", "0.5,1,2,4"]
    # 200 cells of 0.1 s: far more than run before the interrupt, even on a loaded machine
    args += ["--seeds", "50", "-n", "100", "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(  # its own process group, so Ctrl-C can reach the workers too, as in a terminal
        [sys.executable, "-m", "gradbench.cli", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=as_in_a_terminal,  # SIGINT not ignored, even when the test run is a background job
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    last = stderr.decode().strip().splitlines()[-1]
    saved = len(rows_of(out))
    assert last.startswith("interrupted after") and f"{saved} of 200 cells saved in {out}" in last
    assert "--resume" in last
    assert "Traceback" not in stderr.decode()
    assert 2 <= saved < 200


# --- errors ---------------------------------------------------------------------------------------------------


def test_out_with_another_header_is_refused_even_with_resume(cli, tmp_csv):
    tmp_csv.write_text("name,score\nx,1\n")
    for extra in ([], ["--resume"]):
        assert_one_line_error(cli("sweep", *SMALL, "--out", tmp_csv, *extra), "different header")
    assert tmp_csv.read_text() == "name,score\nx,1\n"


def test_existing_results_need_resume_or_overwrite(cli, tmp_csv):
    assert cli("sweep", *SMALL, "--out", tmp_csv).exit_code == 0
    before = tmp_csv.read_text()
    assert_one_line_error(cli("sweep", *SMALL, "--out", tmp_csv), "already holds 16 rows", "--resume", "--overwrite")
    assert tmp_csv.read_text() == before
    result = cli("sweep", *SMALL, "--seeds", "1", "--out", tmp_csv, "--overwrite")
    assert result.exit_code == 0 and len(rows_of(tmp_csv)) == 8


BAD = [
    (["--taus", "0,1"], ["--taus", "> 0"]),
    (["--taus", "1:2"], ["LOW:HIGH:COUNT"]),
    (["--seeds", "0"], ["--seeds"]),
    (["--samples", "1"], ["--samples must be at least 2"]),
    (["--samples", "many"], ["--samples"]),
    (["--estimators", "gumbell"], ["unknown estimator 'gumbell'", "did you mean 'gumbel'"]),
    (["--tasks", "bernouli"], ["unknown task 'bernouli'"]),
    (["--est-opt", "m=3"], ["--est-opt m: no selected estimator has this option"]),
    (["--est-opt", "tau=3"], ["--est-opt tau: give temperatures with --taus"]),
    (["--task-opt", "colour=red"], ["--task-opt colour: no selected task has this option"]),
    (["--task-opt", "dim=zero"], ["dim must be int"]),
    (["--workers", "0"], ["--workers must be at least 1"]),
    (["--resume", "--overwrite"], ["exclude each other"]),
    (["--dtype", "float8"], ["unknown dtype"]),
    (["--tasks", "quadratic", "--estimators", "nope"], ["unknown estimator"]),
]


@pytest.mark.parametrize(("args", "fragments"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_sweep_input_is_one_line_and_exit_2_and_no_file(cli, tmp_csv, args, fragments):
    # a small valid grid first; the bad option (given last) overrides its part of it
    assert_one_line_error(cli("sweep", *SMALL, "--out", tmp_csv, *args), *fragments)
    assert not tmp_csv.exists()


def test_nothing_to_run_is_an_error(cli, tmp_csv):
    load_plugin(Path(__file__).parent / "plugins" / "discrete_only.py")
    result = cli("sweep", "--tasks", "parity", "--estimators", "gumbel", "--out", tmp_csv)
    assert_one_line_error(result, "nothing to run", "needs f on the simplex")
    assert not tmp_csv.exists()


def test_skipped_pairs_are_shown_in_the_summary(cli, tmp_csv):
    args = ["--plugin", EXTRAS, "-t", "bernoulli", "-e", "warm,reinforce", "--taus", "0.5,1", "--seeds", "1"]
    result = cli("sweep", *args, "-n", "100", "--workers", "1", "--out", tmp_csv)
    assert result.exit_code == 0, result.output
    assert "Skipped" in result.stdout and "warm" in result.stdout and "tau must be ≥ 1" in result.stdout
    assert len(rows_of(tmp_csv)) == 2


def test_no_stray_files(cli, tmp_path):
    out = tmp_path / "s.csv"
    assert cli("sweep", *SMALL, "--out", out).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv"]
    assert not math.isnan(float(rows_of(out)[0]["variance"]))
    assert os.access(out, os.R_OK)


def test_docs_state_the_defaults_and_the_columns_excluded_from_equality():
    design = (ROOT / "docs" / "design.md").read_text()
    section = design[design.index("## Sweeps") : design.index("## RELAX")]
    paragraph = section[section.index("**Parallel and reproducible.**") : section.index("**Crash-safe")]
    quoted = [w.strip("`") for w in paragraph.split() if w.startswith("`") and w.strip("`,.") in COLUMNS]
    assert sorted(q.strip(",.`") for q in quoted) == sorted(TIMING_COLUMNS)
    assert f"`{DEFAULT_TAUS}`" in section and f"with {len(parse_seeds(DEFAULT_SEEDS))} seeds" in section
    assert AUTO_BUDGET == 2**18 and "2¹⁸" in section and f"[{AUTO_MIN:,}, {AUTO_MAX:,}]" in section
    assert ", ".join(IDENTITY_COLUMNS) in " ".join(section.split())


def test_a_failing_cell_is_reported_and_the_sweep_goes_on(cli, tmp_csv):
    args = ["--plugin", EXTRAS, "-t", "bernoulli", "-e", "crash-cold", "--taus", "0.5,2", "--seeds", "2", "-n", "64"]
    result = cli("sweep", *args, "--workers", "1", "--out", tmp_csv)
    assert result.exit_code == 1, result.output
    assert result.stdout.count("failed: crash-cold τ=0.5 on bernoulli") == 2 and "too cold" in result.stdout
    assert "2 of 4 cells" in result.stdout and "2 failed" in result.stdout
    assert [r["tau"] for r in rows_of(tmp_csv)] == ["2.0", "2.0"]


def test_nonfinite_cells_are_rows_not_failures(cli, tmp_csv):
    args = ["--plugin", EXTRAS, "-t", "bernoulli", "-e", "nan-cold", "--taus", "0.5,2", "--seeds", "2", "-n", "64"]
    result = cli("sweep", *args, "--workers", "1", "--out", tmp_csv)
    assert result.exit_code == 0, result.output
    fractions = {(r["tau"], r["seed"]): r["nonfinite_fraction"] for r in rows_of(tmp_csv)}
    assert fractions == {("0.5", "0"): "1.0", ("0.5", "1"): "1.0", ("2.0", "0"): "0.0", ("2.0", "1"): "0.0"}


def test_repeated_tasks_and_estimators_options_add_up(cli, tmp_path):
    out = tmp_path / "r.csv"
    args = ["-t", "bernoulli", "-t", "sum-target", "-e", "exact", "-e", "reinforce", "--taus", "1", "--seeds", "1"]
    result = cli("sweep", *args, "-n", "100", "--out", out)
    assert result.exit_code == 0, result.output
    assert {(r["task"], r["estimator"]) for r in rows_of(out)} == {
        (t, e) for t in ("bernoulli", "sum-target") for e in ("exact", "reinforce")
    }
