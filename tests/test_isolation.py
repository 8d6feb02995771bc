"""Issue 18: no process gradbench starts imports code from the current directory (or a script's folder).

Each test plants modules named like what gradbench imports (``multiprocessing.py``, ``torch.py``, ``gradbench.py``,
``estimators.py``) in a folder, runs gradbench there, and asserts that none of them ran: a planted module that is
imported writes ``<name>.ran`` next to itself (and then breaks the import, as a real attack might not).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gradbench.isolation import python_command, safe_sys_path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PLANTED = ("multiprocessing", "torch", "gradbench", "estimators")
GRID = ["--tasks", "bernoulli", "--estimators", "reinforce,exact", "--seeds", "2", "--samples", "200"]


def plant(folder: Path, names=PLANTED) -> Path:
    for name in names:
        (folder / f"{name}.py").write_text(
            textwrap.dedent(
                f"""
                import pathlib
                pathlib.Path(__file__).with_name("{name}.ran").write_text("planted module executed")
                raise ImportError("planted {name}.py was imported")
                """
            )
        )
    return folder


def ran(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.ran"))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    return {**env, "COLUMNS": "200"}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_console_script_sweep_runs_nothing_from_the_current_directory(tmp_path, workers):
    folder = plant(tmp_path)
    command = [str(BIN / "gradbench"), "sweep", *GRID, "--workers", workers, "--out", "s.csv"]
    result = subprocess.run(command, cwd=folder, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert ran(folder) == []
    assert (folder / "s.csv").read_text().count("\n") == 1 + 2 * 2


def test_python_m_gradbench_runs_nothing_from_the_current_directory(tmp_path):
    # No gradbench.py here: `python -m gradbench` would run that file instead of the package, by Python's own
    # rule, before gradbench has any say (README: use the console script or `python -P -m gradbench` then).
    folder = plant(tmp_path, [n for n in PLANTED if n != "gradbench"])
    command = [sys.executable, "-m", "gradbench", "sweep", *GRID, "--workers", "2", "--out", "s.csv"]
    result = subprocess.run(command, cwd=folder, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert ran(folder) == []


def test_library_use_from_a_notebook_keeps_worker_processes_clean(tmp_path, monkeypatch):
    """A notebook's process has '' (its folder) first on sys.path: the worker processes it starts must not."""
    from gradbench.registry import all_estimators, all_tasks, get_estimator, get_task
    from gradbench.sweep import expand_grid, parse_names, prepare_output, run_sweep

    folder = plant(tmp_path)
    grid = expand_grid(
        parse_names("bernoulli", "task", all_tasks(), get_task),
        parse_names("reinforce", "estimator", all_estimators(), get_estimator),
        [1.0],
        [0, 1, 2],
        samples=200,
    )
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend("")  # as in Jupyter; restored afterwards
    out = folder / "s.csv"
    todo, _ = prepare_output(out, grid, resume=False, overwrite=False)
    outcome = run_sweep(grid, out, todo, workers=2)
    assert outcome.saved == 3 and not outcome.failed
    assert "" in sys.path, "the user's own process keeps its path"
    assert ran(folder) == []


def test_bench_memory_child_runs_nothing_from_the_current_directory(tmp_path, monkeypatch):
    from gradbench.bench import peak_memory
    from gradbench.runner import CellSpec

    folder = plant(tmp_path)
    monkeypatch.chdir(folder)
    mib, kind = peak_memory(CellSpec(task="bernoulli", estimator="reinforce", n_samples=1000), 1, ())
    assert mib > 10 and kind == "process max RSS"
    assert ran(folder) == []


def test_safe_sys_path_drops_the_implicit_entries_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    other = str(tmp_path / "explicit")
    path = ["", str(tmp_path), ".", other, *sys.path[1:]]
    safe = safe_sys_path(path)
    assert "" not in safe and "." not in safe and str(tmp_path) not in safe
    assert other in safe and safe[-len(sys.path[1:]) :] == [p for p in sys.path[1:] if p in safe]
    # a child started with python_command imports nothing from its current directory
    plant(tmp_path, ["json"])
    result = subprocess.run(
        python_command("import json; print(json.__file__)"), cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and str(tmp_path) not in result.stdout
    assert ran(tmp_path) == []


def test_entry_points_run_installed_code_unless_turned_off(tmp_path):
    """README's plug-in section: entry points of installed packages are imported (their code runs) by every
    gradbench command; GRADBENCH_NO_ENTRY_POINTS=1 turns them off."""
    site = tmp_path / "site"
    dist = site / "fakeplug-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[gradbench.estimators]\nfake = fakeplug_mod\n")
    (site / "fakeplug_mod.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('entry.ran').write_text('x')\n"
    )
    code = "from gradbench.registry import load_builtins; load_builtins()"
    env = {**_env(), "PYTHONPATH": str(site)}  # an installed package, as far as importlib.metadata can tell
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    assert (site / "entry.ran").exists()
    (site / "entry.ran").unlink()
    env["GRADBENCH_NO_ENTRY_POINTS"] = "1"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    assert not (site / "entry.ran").exists()


def test_audit_second_process_runs_nothing_from_the_current_directory(tmp_path, monkeypatch):
    """`gradbench audit`'s reproducibility check starts a fresh Python process (gradbench.battery.two_processes)."""
    from gradbench.battery import two_processes

    folder = plant(tmp_path)
    monkeypatch.chdir(folder)
    verdict = two_processes("reinforce", {}, "bernoulli", n=64)
    assert verdict.status == "PASS", verdict
    assert ran(folder) == []
