"""Concurrent writers (issue 11): advisory lock on outputs; two runs both append whole rows, a second sweep is
refused naming the first."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

from gradbench.locking import lock_path, output_lock
from gradbench.results import COLUMNS
from tests.helpers import assert_one_line_error

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = Path(__file__).parent / "plugins" / "sweep_extras.py"
SLOW = ["--plugin", str(EXTRAS), "-t", "bernoulli", "-e", "slow", "--taus", "0.5,1,2,4", "--seeds", "10"]
SLOW += ["-n", "100", "--workers", "1"]


def rows_of(path: Path) -> list[list[str]]:
    rows = list(csv.reader(path.read_text().splitlines()))
    assert tuple(rows[0]) == COLUMNS and all(len(r) == len(COLUMNS) for r in rows)
    return rows[1:]


def gradbench(*args: str, cwd: Path = ROOT, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gradbench", *args], cwd=cwd, text=True, **kwargs)


def test_two_runs_on_one_file_both_append_whole_rows(tmp_path):
    """Both start while the file is locked (and does not exist yet: the creation is the racy part); both wait,
    then each adds its row: one header, two whole rows."""
    out = tmp_path / "runs.csv"
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    with output_lock(out, "run"):
        procs = [
            gradbench("run", "-e", "reinforce", "-n", "500", "--seed", s, "--out", str(out), **pipes) for s in "07"
        ]
        time.sleep(0.5)
        assert not out.exists()
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    rows = rows_of(out)
    assert sorted(r[COLUMNS.index("seed")] for r in rows) == ["0", "7"]
    assert out.read_text().count("task,task_params") == 1
    assert not lock_path(out).exists()


def test_a_second_sweep_on_a_held_file_is_refused_naming_the_first(cli, tmp_path):
    out = tmp_path / "s.csv"
    first = gradbench("sweep", *SLOW, "--out", str(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 2):
            time.sleep(0.05)
        assert out.exists(), "the first sweep did not start"
        second = cli("sweep", *SLOW, "--out", out, "--resume")
        assert_one_line_error(second, f"--out {out} is being written by gradbench sweep (pid {first.pid})")
        run = cli("run", "-e", "reinforce", "-n", "100", "--out", out)  # a run is refused too, at once
        assert_one_line_error(run, f"gradbench sweep (pid {first.pid})")
    finally:
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert len(rows_of(out)) == 40 and not lock_path(out).exists()


def test_a_lock_left_by_a_dead_process_does_not_block(cli, tmp_path):
    out = tmp_path / "s.csv"
    lock_path(out).write_text(f"{os.getpid() + 10**6} elsewhere sweep\n")  # a sidecar nobody holds
    result = cli("sweep", "-t", "bernoulli", "-e", "reinforce", "--seeds", "1", "-n", "100", "--workers", "1",
                 "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(rows_of(out)) == 1 and not lock_path(out).exists()


APPENDER = """
import sys, time
from pathlib import Path
from gradbench.locking import output_lock
from gradbench.results import COLUMNS, append_rows
out, start, i = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
row = {c: i for c in COLUMNS}
while time.time() < start:
    pass
for _ in range(5):
    with output_lock(out, "run"):
        append_rows(out, [row])
"""


def test_many_writers_at_once_keep_one_header_and_every_row(tmp_path):
    """8 processes append 5 rows each to a file that does not exist yet, all starting at the same instant, each
    append under the lock as `gradbench run` does: one header, 40 whole rows. (Without the lock, the creation
    race loses rows: two processes each write header + row to a temporary file and rename it into place.)"""
    out = tmp_path / "many.csv"
    start = time.time() + 3.0
    procs = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(out), str(start), str(i)], cwd=tmp_path) for i in range(8)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    rows = rows_of(out)
    assert sorted(int(r[0]) for r in rows) == sorted(i for i in range(8) for _ in range(5))
    assert not lock_path(out).exists()
