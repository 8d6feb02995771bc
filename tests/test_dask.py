"""``--executor dask`` on a real Dask LocalCluster (issue 11): same CSV as local, plug-ins shipped, failures.

One LocalCluster (2 worker processes) serves the module, reached through ``--address`` like a remote scheduler.
It is started in a folder holding planted ``multiprocessing.py``/``torch.py`` with '' on ``sys.path`` (as a
notebook would), and the last test checks that no worker ran them (issue 18).
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

from gradbench.executors import ExecutorOptions, open_executor  # noqa: E402
from gradbench.fingerprint import code_fingerprint  # noqa: E402
from gradbench.registry import all_estimators, all_tasks, get_estimator, get_task, load_plugin  # noqa: E402
from gradbench.results import COLUMNS  # noqa: E402
from gradbench.sweep import (  # noqa: E402
    TIMING_COLUMNS,
    Listener,
    expand_grid,
    parse_names,
    prepare_output,
    read_rows,
    run_sweep,
)
from tests.helpers import as_in_a_terminal, assert_one_line_error  # noqa: E402
from tests.test_isolation import plant, ran  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = Path(__file__).parent / "plugins" / "sweep_extras.py"
SMALL = ["--tasks", "bernoulli,sum-target", "--estimators", "exact,reinforce,gumbel", "--taus", "0.5,2"]
SMALL += ["--seeds", "2", "--samples", "600"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return plant(tmp_path_factory.mktemp("planted"), ["multiprocessing", "torch", "estimators"])


@pytest.fixture(scope="module")
def cluster(planted):
    """A LocalCluster of 2 single-threaded worker processes, started from the planted folder."""
    from gradbench.isolation import isolated_children

    here = os.getcwd()
    saved = list(sys.path)
    os.chdir(planted)
    sys.path.insert(0, "")
    try:
        with isolated_children():
            cluster = distributed.LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # not 8787: other clusters may hold it
                silence_logs=40,
            )
    finally:
        os.chdir(here)
        sys.path[:] = saved
    yield cluster
    cluster.close()


def grid_of(tasks: str, estimators: str, taus, seeds, samples: int):
    return expand_grid(
        parse_names(tasks, "task", all_tasks(), get_task),
        parse_names(estimators, "estimator", all_estimators(), get_estimator),
        taus,
        seeds,
        samples=samples,
    )


def without_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


def sweep(grid, out: Path, **kwargs):
    todo, _ = prepare_output(out, grid, resume=False, overwrite=False)
    return run_sweep(grid, out, todo, **kwargs)


def test_dask_and_local_write_the_same_csv_with_1_and_2_workers(cli, tmp_path):
    """The acceptance test: `sweep --executor dask --workers 2` equals `sweep --workers 2` (and 1 worker each)."""
    files = {}
    for executor in ("dask", "local"):
        for workers in ("1", "2"):
            out = tmp_path / f"{executor}-{workers}.csv"
            result = cli("sweep", *SMALL, "--executor", executor, "--workers", workers, "--out", out)
            assert result.exit_code == 0, result.output
            files[executor, workers] = without_timing(read_rows(out))
            if executor == "dask":
                assert f"on a Dask LocalCluster of {workers} worker" in result.stderr
    reference = files["local", "1"]
    assert len(reference) == 16
    assert all(rows == reference for rows in files.values())


def test_plugins_are_shipped_to_workers_that_do_not_have_the_file(cluster, tmp_path):
    """The plug-in file is deleted after the client read it: the workers load the source the client sent."""
    plugin = tmp_path / "shipped_plugin.py"
    plugin.write_text(
        "import gradbench\nfrom gradbench.estimators.reinforce import Reinforce\n\n"
        "@gradbench.register_estimator\nclass Shipped(Reinforce):\n    name = 'shipped'\n"
    )
    load_plugin(plugin)
    fingerprint = code_fingerprint("shipped", "bernoulli")  # what --resume in this process would expect
    grid = grid_of("bernoulli", "shipped,reinforce", [1.0], [0, 1], 300)
    options = ExecutorOptions("dask", threads=1, address=cluster.scheduler_address)
    with open_executor(options, [str(plugin)]) as executor:
        plugin.unlink()
        outcome = sweep(grid, tmp_path / "s.csv", executor=executor)
    assert not outcome.failed and outcome.saved == 4
    rows = read_rows(tmp_path / "s.csv")
    assert [r["estimator"] for r in rows] == ["shipped", "shipped", "reinforce", "reinforce"]
    # the workers ran a private copy of the file: the same code, so the same code fingerprint as here
    assert [r["code_fingerprint"] for r in rows[:2]] == [fingerprint] * 2 != [r["code_fingerprint"] for r in rows[2:]]
    # an unbiased copy of REINFORCE gives REINFORCE's numbers
    same = [{**r, "estimator": "shipped", "code_fingerprint": fingerprint} for r in without_timing(rows[2:])]
    assert without_timing(rows[:2]) == same


def test_a_cell_raising_on_a_worker_is_one_line_and_the_others_are_saved(cli, cluster, tmp_path):
    out = tmp_path / "f.csv"
    args = ["--plugin", EXTRAS, "-t", "bernoulli", "-e", "crash-cold", "--taus", "0.5,2", "--seeds", "2", "-n", "64"]
    result = cli("sweep", *args, "--executor", "dask", "--address", cluster.scheduler_address, "--out", out)
    assert result.exit_code == 1, result.output
    assert result.stdout.count("failed: crash-cold τ=0.5 on bernoulli") == 2 and "too cold" in result.stdout
    assert "2 of 4 cells" in result.stdout and "2 failed" in result.stdout
    assert [r["tau"] for r in read_rows(out)] == ["2.0", "2.0"]


def test_unreachable_scheduler_is_one_line_within_the_timeout(cli, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "u.csv"
    started = time.monotonic()
    result = cli("sweep", *SMALL, "--executor", "dask", "--address", f"tcp://127.0.0.1:{port}",
                 "--connect-timeout", "1", "--out", out)  # fmt: skip
    assert_one_line_error(result, f"--address tcp://127.0.0.1:{port}: no Dask scheduler answered within 1 s")
    assert time.monotonic() - started < 15
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--executor", "ray"], "--executor 'ray': choose one of local, dask"),
        (["--address", "tcp://127.0.0.1:1"], "--address needs --executor dask"),
        (["--executor", "dask", "--address", "tcp://127.0.0.1:1", "--workers", "2"], "--workers does not apply"),
        (["--executor", "dask", "--workers", "0"], "--workers must be at least 1"),
        (["--executor", "dask", "--connect-timeout", "0"], "--connect-timeout must be > 0"),
    ],
)
def test_bad_executor_options(cli, tmp_path, args, fragment):
    assert_one_line_error(cli("sweep", *SMALL, *args, "--out", tmp_path / "x.csv"), fragment)
    assert not (tmp_path / "x.csv").exists()


def test_ctrl_c_with_dask_saves_whole_rows_and_says_so(tmp_path):
    out = tmp_path / "c.csv"
    args = ["sweep", "--plugin", str(EXTRAS), "-t", "bernoulli", "-e", "slow", "--taus", "0.5,1,2,4"]
    # 200 cells of 0.1 s: far more than run before the interrupt, even on a loaded machine
    args += ["--seeds", "50", "-n", "100", "--executor", "dask", "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(  # its own process group, so Ctrl-C reaches the workers too, as in a terminal
        [sys.executable, "-m", "gradbench", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=as_in_a_terminal,  # SIGINT not ignored, even when the test run is a background job
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    last = stderr.decode().strip().splitlines()[-1]
    saved = len(read_rows(out))
    assert last.startswith("interrupted after") and f"{saved} of 200 cells saved in {out}" in last
    assert "Traceback" not in stderr.decode() and "warning" not in stderr.decode()
    assert 2 <= saved < 200


class KillOneWorker(Listener):
    """Kills a worker process (SIGKILL) as soon as the first cell is finished, while others are running."""

    def __init__(self, client):
        self.pids = client.run(os.getpid)
        self.killed: int | None = None

    def cell_finished(self, cell, error):
        if self.killed is None:
            self.killed = next(iter(self.pids.values()))
            os.kill(self.killed, signal.SIGKILL)


def test_a_worker_killed_mid_sweep_loses_no_cell_and_duplicates_none(cluster, tmp_path):
    load_plugin(EXTRAS)
    grid = grid_of("bernoulli", "slow,reinforce", [0.5, 1.0, 2.0], [0, 1, 2, 3], 200)
    options = ExecutorOptions("dask", threads=1, address=cluster.scheduler_address)
    with open_executor(options, [str(EXTRAS)]) as executor:
        listener = KillOneWorker(executor.client)
        outcome = sweep(grid, tmp_path / "k.csv", executor=executor, listener=listener)
    assert listener.killed is not None
    assert not outcome.failed and not outcome.interrupted and outcome.saved == len(grid.cells) == 16
    rows = read_rows(tmp_path / "k.csv")
    assert len({tuple(r[c] for c in COLUMNS[:7]) for r in rows}) == 16  # no duplicate
    local = tmp_path / "l.csv"
    sweep(grid, local, workers=1)
    assert without_timing(rows) == without_timing(read_rows(local))
    cluster.wait_for_workers(2)  # the nanny restarted it


def test_the_cluster_workers_ran_nothing_from_the_planted_folder(cluster, planted):
    assert ran(planted) == []
    # the planted folder is live: a plain `python -c 'import torch'` there runs the planted file
    subprocess.run([sys.executable, "-c", "import torch"], cwd=planted, capture_output=True, timeout=60)
    assert ran(planted) == ["torch.ran"]


# --- gradbench check on an executor ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline_file(tmp_path_factory):
    from tests.test_check import baseline_text

    path = tmp_path_factory.mktemp("check") / "baseline.csv"
    path.write_text(baseline_text())
    return path


@pytest.mark.parametrize("where", ["local 2 workers", "dask cluster"])
def test_check_reruns_a_baseline_bit_for_bit_on_other_processes(cli, cluster, baseline_file, where):
    """The exact tier (same environment and seeds: every number must match) passes when the cells are re-run by
    worker processes, so they compute exactly what the client would."""
    if where == "dask cluster":
        args = ["--executor", "dask", "--address", cluster.scheduler_address]
    else:
        args = ["--workers", "2"]
    result = cli("check", "--baseline", baseline_file, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["tier"] == "exact" and report["passed"] is True


def test_check_executor_options_do_not_apply_to_update(cli, tmp_path):
    result = cli("check", "--update", "--baseline", tmp_path / "b.csv", "--workers", "2")
    assert_one_line_error(result, "--workers does not apply to --update")


def test_batch_sizes_follow_guided_self_scheduling():
    from gradbench.executors.dask import MAX_BATCH, batch_size

    assert batch_size(10_000, 2) == MAX_BATCH and batch_size(40, 2) == 5 and batch_size(3, 2) == 1
    left, sizes = 999, []
    while left:
        sizes.append(batch_size(left, 2))
        left -= min(sizes[-1], left)
    assert sizes == sorted(sizes, reverse=True) and sizes[-8:] == [1] * 8  # single cells at the end
    assert len(sizes) < 999 / 10  # the round trips are paid per batch


def test_a_raising_item_is_reported_alone_and_its_batch_mates_are_kept(cluster):
    from gradbench.executors import ExecutorOptions, open_executor

    items = [float(i) if i % 5 else -1.0 for i in range(1, 41)]  # math.sqrt(-1) raises; batches of several
    with open_executor(ExecutorOptions("dask", 1, 1, cluster.scheduler_address)) as executor:
        done = list(executor.map_unordered(math.sqrt, items))
    assert sorted(d.item for d in done) == sorted(items)  # one result per item, none twice
    failed = [d for d in done if d.error is not None]
    assert len(failed) == 8 and {d.item for d in failed} == {-1.0}
    assert all("math domain error" in d.error for d in failed)
    assert all(d.value == math.sqrt(d.item) for d in done if d.error is None)
