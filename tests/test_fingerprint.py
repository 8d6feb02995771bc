"""Issue 16, results tied to the code that made them: the ``code_fingerprint`` column (gradbench/fingerprint.py).

The fingerprint follows the estimator's and task's source (their modules and what those import), not module
names or paths; ``sweep --resume`` re-runs a cell whose row was made by other code and keeps the others; ``check``
names changed code in a note; ``plot`` and ``report`` warn once when a line mixes code versions; files of an
earlier gradbench are read with an empty fingerprint and are not appended to.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

from gradbench.aggregate import load_results, mixed_fingerprints
from gradbench.fingerprint import UNKNOWN, class_fingerprint, class_sources, code_fingerprint
from gradbench.registry import get_estimator, get_task, load_plugin
from gradbench.results import COLUMNS, OLDER_FORMATS, format_rows
from gradbench.runner import CellSpec, run_cell
from tests.helpers import assert_one_line_error, registry_snapshot

PLUGIN = '''
import gradbench
from gradbench.estimators.reinforce import Reinforce


@gradbench.register_estimator
class Probe(Reinforce):
    """REINFORCE times SCALE (the test edits SCALE: the estimator's code changes)."""

    name = "fingerprint-probe"
    summary = "REINFORCE times a constant"

    def estimate(self, problem, rng):
        return super().estimate(problem, rng) * SCALE


SCALE = 1.0
'''


def _load_as(path: Path, module_name: str) -> type:
    """A copy of ``path`` imported under ``module_name`` (registered only for the while): its Probe class."""
    copy = path.with_name(f"{module_name}.py")
    copy.write_bytes(path.read_bytes())
    spec = importlib.util.spec_from_file_location(module_name, copy)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    with registry_snapshot():
        spec.loader.exec_module(module)
    return module.Probe


def test_fingerprint_follows_the_source_not_module_names(tmp_path):
    bernoulli = get_task("bernoulli")
    (tmp_path / "p.py").write_text(PLUGIN)
    one = class_fingerprint(_load_as(tmp_path / "p.py", "fp_probe_a"), bernoulli)
    # the same file under another module name and path (a plug-in's module name differs in every process)
    same = class_fingerprint(_load_as(tmp_path / "p.py", "fp_probe_b"), bernoulli)
    (tmp_path / "p.py").write_text(PLUGIN.replace("SCALE = 1.0", "SCALE = 2.0"))
    other = class_fingerprint(_load_as(tmp_path / "p.py", "fp_probe_c"), bernoulli)
    assert one == same != other and len(one) == 16
    assert code_fingerprint("reinforce", "bernoulli") != code_fingerprint("reinforce", "quadratic")
    assert code_fingerprint("reinforce", "bernoulli") != code_fingerprint("gumbel", "bernoulli")
    import torch

    assert Path(torch.__file__).read_bytes() not in class_sources(get_estimator("reinforce"))  # third party


def test_fingerprint_covers_the_helpers_an_estimator_imports(tmp_path, monkeypatch):
    """An estimator's numbers depend on the helpers it imports (at the top or inside a method), not only on its
    class hierarchy: e.g. gapped-st uses estimators/reinforce.py's one_hot."""
    from gradbench.estimators import reinforce

    assert Path(reinforce.__file__).read_bytes() in class_sources(get_estimator("gapped-st"))
    package = tmp_path / "fphelpers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "top.py").write_text("SCALE = 1.0\n")
    (package / "lazy.py").write_text("def shift(g):\n    return g\n")
    (package / "probe.py").write_text(
        "from fphelpers.top import SCALE\n"
        "from gradbench.estimators.reinforce import Reinforce\n\n\n"
        "class Probe(Reinforce):\n"
        "    def estimate(self, problem, rng):\n"
        "        from fphelpers.lazy import shift\n\n"
        "        return shift(super().estimate(problem, rng) * SCALE)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import fphelpers.lazy  # noqa: F401  (what a first call of estimate would have imported)
    import fphelpers.probe

    task = get_task("bernoulli")

    def fingerprint() -> str:
        class_sources.cache_clear()
        class_fingerprint.cache_clear()
        return class_fingerprint(fphelpers.probe.Probe, task)

    try:
        first = fingerprint()
        assert fingerprint() == first
        (package / "top.py").write_text("SCALE = 2.0\n")
        second = fingerprint()
        (package / "lazy.py").write_text("def shift(g):\n    return g + 1\n")
        third = fingerprint()
        assert len({first, second, third}) == 3
    finally:
        for name in [m for m in sys.modules if m.startswith("fphelpers")]:
            del sys.modules[name]
        class_sources.cache_clear()
        class_fingerprint.cache_clear()


def test_row_carries_the_fingerprint_last():
    row = run_cell(CellSpec("bernoulli", "reinforce", n_samples=100))
    assert tuple(row) == COLUMNS and COLUMNS[-1] == "code_fingerprint"
    assert row["code_fingerprint"] == code_fingerprint("reinforce", "bernoulli")


SWEEP = ("sweep", "-t", "bernoulli", "--taus", "0.5", "--seeds", "2", "-n", "400", "-w", "1")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_resume_reruns_the_cells_whose_code_changed_and_keeps_the_others(cli, tmp_path):
    plugin, out = tmp_path / "probe.py", tmp_path / "s.csv"
    plugin.write_text(PLUGIN)
    args = (*SWEEP, "-e", "reinforce,fingerprint-probe", "--plugin", plugin, "--out", out)
    with registry_snapshot():
        made = cli(*args)
        assert made.exit_code == 0, made.output
        unchanged = cli(*args, "--resume")  # nothing changed: nothing runs, nothing is rewritten
        assert unchanged.exit_code == 0, unchanged.output
        assert "made by other code" not in unchanged.stderr
    before = _rows(out)
    assert len(before) == 4 and "0 to run" in " ".join((unchanged.stdout + unchanged.stderr).split())
    plugin.write_text(PLUGIN.replace("SCALE = 1.0", "SCALE = 2.0"))  # the estimator's code changes
    with registry_snapshot():
        resumed = cli(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "2 cells of" in resumed.stderr and "made by other code" in resumed.stderr
    after = _rows(out)
    assert len(after) == 4  # each re-run cell keeps only its new row
    for old, new in zip(before, after, strict=True):
        if old["estimator"] == "reinforce":  # unchanged code: the row is kept as it was (not even re-timed)
            assert new == old
        else:
            assert new["code_fingerprint"] != old["code_fingerprint"]
            assert float(new["variance"]) == pytest.approx(4 * float(old["variance"]), rel=1e-5)
    assert mixed_fingerprints(load_results(out)) == []


def test_plot_and_report_warn_once_when_a_line_mixes_code(cli, tmp_path):
    out = tmp_path / "s.csv"
    made = cli(*SWEEP, "-e", "reinforce,gumbel", "--out", out)
    assert made.exit_code == 0, made.output
    plotted = cli("plot", out, "--out", tmp_path / "clean")
    assert plotted.exit_code == 0 and "warning" not in plotted.stderr, plotted.output
    rows = _rows(out)
    rows[0]["code_fingerprint"] = "0123456789abcdef"  # seed 0 of reinforce: made by other code
    out.write_text(format_rows(rows, header=True))
    for command in (("plot", out, "--out", tmp_path / "figs"), ("report", out, "--out", tmp_path / "r.html")):
        result = cli(*command)
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.stderr.splitlines() if line.startswith("gradbench: warning: ")]
        assert len(warnings) == 1, result.stderr
        assert "reinforce on bernoulli (2 code versions)" in warnings[0] and "gumbel" not in warnings[0]


def test_check_notes_cells_whose_code_changed(tmp_path):
    import torch

    from gradbench.baseline import current_environment, format_baseline, read_baseline
    from gradbench.check import CheckOptions, run_check

    cells = []
    for estimator in ("reinforce", "rloo"):
        details: dict = {}
        row = run_cell(CellSpec("bernoulli", estimator, n_samples=1000), details=details)
        cells.append((row, details))
    env = current_environment("float32", "cpu", torch.get_num_threads())
    path = tmp_path / "b.csv"
    path.write_text(format_baseline(cells, env, {}))
    assert not any("code changed" in n for n in run_check(read_baseline(path), CheckOptions()).notes)
    cells[0] = ({**cells[0][0], "code_fingerprint": "0123456789abcdef"}, cells[0][1])
    path.write_text(format_baseline(cells, env, {}))
    result = run_check(read_baseline(path), CheckOptions())
    assert result.exit_code == 0  # a note, not a failure: the numbers are compared as usual (and equal here)
    noted = [n for n in result.notes if n.startswith("code changed since the baseline")]
    assert len(noted) == 1 and "reinforce on bernoulli" in noted[0] and "rloo" not in noted[0], result.notes


def _older_file(path: Path, columns: tuple[str, ...]) -> Path:
    """A results file as the gradbench that wrote ``columns`` (a prefix of today's) did."""
    row = run_cell(CellSpec("bernoulli", "reinforce", n_samples=100))
    path.write_text(format_rows([row], header=True, columns=columns))
    return path


@pytest.mark.parametrize("columns", OLDER_FORMATS, ids=lambda c: f"{len(c)}-columns")
def test_older_files_are_read_with_an_unknown_fingerprint(tmp_path, columns):
    df = load_results(_older_file(tmp_path / "old.csv", columns))
    assert list(df.columns) == list(COLUMNS) and df["code_fingerprint"].tolist() == [UNKNOWN]


@pytest.mark.parametrize(
    "command",
    [
        ("run", "-e", "reinforce", "-t", "bernoulli", "-n", "100", "--out"),
        ("sweep", "-e", "reinforce", "-t", "bernoulli", "--seeds", "1", "-n", "100", "--resume", "--out"),
    ],
    ids=["run", "sweep-resume"],
)
def test_rows_are_not_appended_to_a_file_of_an_earlier_gradbench(cli, tmp_path, command):
    old = _older_file(tmp_path / "old.csv", OLDER_FORMATS[-1])
    text = old.read_bytes()
    assert_one_line_error(cli(*command, old), "earlier gradbench", "without code_fingerprint", "another --out")
    assert old.read_bytes() == text and sorted(p.name for p in tmp_path.iterdir()) == ["old.csv"]


def test_a_baseline_older_than_the_column_is_read(tmp_path):
    import torch

    from gradbench.baseline import BASELINE_COLUMNS, current_environment, format_baseline, read_baseline

    details: dict = {}
    row = run_cell(CellSpec("bernoulli", "reinforce", n_samples=100), details=details)
    env = current_environment("float32", "cpu", torch.get_num_threads())
    text = format_baseline([(row, details)], env, {})
    # the same baseline without the column, with its checksum recomputed: what the previous gradbench wrote
    import hashlib
    import json

    first, _, body = text.partition("\n")
    drop = BASELINE_COLUMNS.index("code_fingerprint")
    body = "".join(",".join(fields[:drop] + fields[drop + 1 :]) + "\n" for fields in csv.reader(body.splitlines()))
    header = json.loads(first.split(" ", 2)[2])
    header["sha256"] = hashlib.sha256(body.encode()).hexdigest()
    path = tmp_path / "old-baseline.csv"
    path.write_text(f"# gradbench-baseline {json.dumps(header)}\n{body}")
    (cell,) = read_baseline(path).cells
    assert cell.row["code_fingerprint"] == UNKNOWN and cell.row["variance"] == row["variance"]
    assert cell.mean_dev == pytest.approx(details["mean_dev"].tolist(), rel=1e-9)


def test_plugins_get_one_fingerprint_in_every_process(tmp_path):
    """load_plugin names a plug-in's module after hash(path), which differs between processes: the row's
    fingerprint (made in a worker) and resume's (made in the main process) must agree all the same."""
    plugin = tmp_path / "probe.py"
    plugin.write_text(PLUGIN)
    with registry_snapshot():
        load_plugin(plugin)
        here = code_fingerprint("fingerprint-probe", "bernoulli")
    assert here == class_fingerprint(_load_as(plugin, "renamed_probe"), get_task("bernoulli"))
