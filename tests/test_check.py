"""`gradbench check`: an unchanged tree passes (both tiers); planted regressions are caught and named; broken
baselines exit 2 with one clear line; the decision rules (Holm, thresholds, power, speed) do what they say."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from gradbench.baseline import MAGIC, BaselineCell, current_environment, format_baseline, read_baseline, write_baseline
from gradbench.check import (
    CellResult,
    CheckOptions,
    CheckResult,
    GridSettings,
    bias_change_test,
    compare,
    grid_cells,
    variance_test,
)
from gradbench.core import REQUIRED, Estimator, Param, Task
from gradbench.errors import GradbenchError
from gradbench.registry import ESTIMATORS as REGISTRY
from gradbench.registry import TASKS as TASK_REGISTRY
from gradbench.results import format_rows
from gradbench.runner import CellSpec, run_cell
from tests.helpers import ESTIMATORS, assert_one_line_error

Reinforce = ESTIMATORS["reinforce"]
Gumbel = ESTIMATORS["gumbel"]

# The small baseline every test checks against: an unbiased and a biased estimator, and the zero-variance one.
CELLS = [
    ("sum-target", "reinforce", {}, 200_000),
    ("sum-target", "gumbel", {"tau": 0.5}, 50_000),
    ("bernoulli", "exact", {}, 1_000),
]
REINFORCE_LABEL = "reinforce on sum-target"
GUMBEL_LABEL = "gumbel τ=0.5 on sum-target"


def baseline_text(cells=CELLS, env_changes=None, seed: int = 0) -> str:
    rows = []
    for task, estimator, params, n in cells:
        details: dict = {}
        spec = CellSpec(task=task, estimator=estimator, estimator_params=params, n_samples=n, seed=seed)
        rows.append((run_cell(spec, details=details), details))
    env = current_environment("float32", "cpu", torch.get_num_threads())
    env.update(env_changes or {})
    return format_baseline(rows, env, {})


@pytest.fixture(scope="module")
def good_text() -> str:
    return baseline_text()


@pytest.fixture
def baseline(tmp_path, good_text) -> Path:
    path = tmp_path / "baseline.csv"
    path.write_text(good_text)
    return path


def check_json(cli, baseline, *args) -> tuple[int, dict]:
    result = cli("check", "--baseline", baseline, "--format", "json", *args)
    assert result.exit_code in (0, 1, 2), result.output
    return result.exit_code, json.loads(result.stdout)


def cell(report: dict, label: str) -> dict:
    (found,) = [c for c in report["cells"] if c["cell"].startswith(label)]
    return found


# --- an unchanged tree passes ----------------------------------------------------------------------------------


def test_unchanged_tree_passes_the_exact_tier(cli, baseline):
    code, report = check_json(cli, baseline)
    assert code == 0 and report["passed"]
    assert report["tier"] == "exact"
    assert report["counts"]["unchanged"] == len(CELLS)
    assert all(not c["moved"] for c in report["cells"])


def test_unchanged_tree_passes_the_statistical_tier_with_fresh_seeds(cli, baseline):
    code, report = check_json(cli, baseline, "--seed-base", "1")
    assert code == 0, report
    assert report["tier"] == "statistical" and report["seed_base"] == 1
    assert report["tests"] == 2 * len(CELLS)
    for c in report["cells"]:
        assert c["seed"] != c["baseline_seed"]
        assert {t["metric"] for t in c["tests"]} == {"bias", "variance"}
        assert all(t["holm_pvalue"] >= t["pvalue"] for t in c["tests"])
    assert [t["against"] for t in cell(report, REINFORCE_LABEL)["tests"] if t["metric"] == "bias"] == ["exact"]
    assert [t["against"] for t in cell(report, GUMBEL_LABEL)["tests"] if t["metric"] == "bias"] == ["baseline"]


def test_another_environment_gets_the_statistical_tier_and_passes(cli, tmp_path):
    path = tmp_path / "b.csv"
    path.write_text(baseline_text(env_changes={"torch": "0.0.0", "platform": "elsewhere"}))
    result = cli("check", "--baseline", path)
    assert result.exit_code == 0, result.output
    assert "tier: statistical (environment differs: torch, platform)" in result.stdout
    assert "torch '0.0.0' →" in result.stdout


def test_table_report_shows_groups_thresholds_and_power(cli, baseline):
    result = cli("check", "--baseline", baseline, "--fresh-seeds", "--seed-base", "2", "--verbose")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("PASS", "unchanged (3)", "Holm at α = 0.01", "variance ×1.25", "0.1·‖g*‖", "detectable", "var ×"):
        assert text in out, text


# --- planted regressions ---------------------------------------------------------------------------------------


class PlantedBias(Reinforce):
    """REINFORCE + 0.002 on every component: ‖bias‖ = 0.002·√24 ≈ 1.1·‖g*‖ on sum-target."""

    def estimate(self, problem, rng):
        return super().estimate(problem, rng) + 0.002


class PlantedVariance(Reinforce):
    """REINFORCE with its noise scaled by √1.5 around its (exact) mean: same mean, 1.5× the variance."""

    def estimate(self, problem, rng):
        exact = problem.exact_grad.to(problem.theta.dtype)
        return exact + math.sqrt(1.5) * (super().estimate(problem, rng) - exact)


class PlantedSign(Reinforce):
    """REINFORCE with the sign flipped: mean −g*."""

    def estimate(self, problem, rng):
        return -super().estimate(problem, rng)


class PlantedGumbelBias(Gumbel):
    """Gumbel-Softmax + 0.001 on every component: its mean moves by 0.001·√24 ≈ 0.57·‖g*‖."""

    def estimate(self, problem, rng):
        return super().estimate(problem, rng) + 0.001


class PlantedGumbelSign(Gumbel):
    """Gumbel-Softmax with the sign flipped."""

    def estimate(self, problem, rng):
        return -super().estimate(problem, rng)


PLANTED = [
    (PlantedBias, REINFORCE_LABEL, "biased"),
    (PlantedVariance, REINFORCE_LABEL, "variance ×1."),
    (PlantedSign, REINFORCE_LABEL, "biased"),
    (PlantedGumbelBias, GUMBEL_LABEL, "bias grew"),
    (PlantedGumbelSign, GUMBEL_LABEL, "bias grew"),
]


@pytest.mark.parametrize(("planted", "label", "reason"), PLANTED, ids=[p[0].__name__ for p in PLANTED])
def test_planted_regression_is_caught_by_the_statistical_tier(cli, baseline, monkeypatch, planted, label, reason):
    monkeypatch.setitem(REGISTRY, planted.name, planted)
    code, report = check_json(cli, baseline, "--seed-base", "3")
    assert code == 1 and not report["passed"]
    worse = [c for c in report["cells"] if c["status"] == "worse"]
    assert [c["cell"].split(" (")[0] for c in worse] == [label]
    assert any(reason in r for r in worse[0]["reasons"]), worse[0]["reasons"]
    assert report["counts"]["unchanged"] == len(CELLS) - 1  # the other cells are not blamed
    table = cli("check", "--baseline", baseline, "--seed-base", "3")
    assert table.exit_code == 1
    assert "FAIL" in table.stdout and "worse (1)" in table.stdout and label in table.stdout


@pytest.mark.parametrize("planted", [PlantedVariance, PlantedGumbelBias], ids=lambda p: p.__name__)
def test_planted_regression_is_changed_behaviour_in_the_exact_tier(cli, baseline, monkeypatch, planted):
    monkeypatch.setitem(REGISTRY, planted.name, planted)
    result = cli("check", "--baseline", baseline)
    assert result.exit_code == 1, result.output
    assert "changed behaviour" in result.stdout and "variance" in result.stdout
    code, report = check_json(cli, baseline)
    (changed,) = [c for c in report["cells"] if c["status"] == "changed"]
    assert "variance" in changed["moved"] and "bias" in changed["moved"]


class Crash(Reinforce):
    def estimate(self, problem, rng):
        raise RuntimeError("boom")


class NaNs(Reinforce):
    def estimate(self, problem, rng):
        return super().estimate(problem, rng) * math.nan


@pytest.mark.parametrize(
    ("broken", "reason"),
    [(Crash, "estimate() raised RuntimeError: boom"), (NaNs, "produced non-finite estimates")],
)
def test_a_crashing_estimator_is_a_regression(cli, baseline, monkeypatch, broken, reason):
    monkeypatch.setitem(REGISTRY, "reinforce", broken)
    code, report = check_json(cli, baseline, "--seed-base", "1")
    assert code == 1
    (text,) = cell(report, REINFORCE_LABEL)["reasons"]
    assert reason in text and cell(report, REINFORCE_LABEL)["status"] == "worse"


def test_a_regression_within_the_threshold_passes(cli, baseline, monkeypatch):
    monkeypatch.setitem(REGISTRY, "reinforce", PlantedVariance)
    code, report = check_json(cli, baseline, "--seed-base", "3", "--variance-ratio", "2")
    assert code == 0
    (variance,) = [t for t in cell(report, REINFORCE_LABEL)["tests"] if t["metric"] == "variance"]
    assert variance["holm_pvalue"] <= 0.01 and 1.3 < variance["effect"] < 1.7 and variance["verdict"] == "unchanged"


def test_better_is_reported_and_passes(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, "reinforce", PlantedVariance)
    path = tmp_path / "b.csv"
    path.write_text(baseline_text(cells=CELLS[:1]))  # the baseline was made by the noisy variant
    monkeypatch.setitem(REGISTRY, "reinforce", Reinforce)
    code, report = check_json(cli, path, "--seed-base", "4")
    assert code == 0
    assert cell(report, REINFORCE_LABEL)["status"] == "better"


# --- unusable baselines and input: exit 2, one line ------------------------------------------------------------


def _rehash(text: str, edit) -> str:
    """Apply ``edit`` to the CSV part and recompute the checksum, so that the parser itself must object."""
    first, _, body = text.partition("\n")
    header = json.loads(first[len(MAGIC) :])
    body = edit(body)
    header["sha256"] = hashlib.sha256(body.encode()).hexdigest()
    return MAGIC + json.dumps(header) + "\n" + body


def _header_edit(text: str, **changes) -> str:
    first, _, body = text.partition("\n")
    header = json.loads(first[len(MAGIC) :])
    header.update(changes)
    return MAGIC + json.dumps(header) + "\n" + body


def _second_row(body: str, edit) -> str:
    lines = body.split("\n")
    lines[1] = edit(lines[1])
    return "\n".join(lines)


BROKEN = {
    "results CSV": (lambda t: format_rows([], header=True), ["not a gradbench baseline", "results CSV"]),
    "empty": (lambda t: "", ["not a gradbench baseline"]),
    "truncated": (lambda t: t[: len(t) // 2], ["corrupted", "checksum"]),
    "edited digit": (lambda t: t.replace("200000", "200001", 1), ["corrupted", "checksum"]),
    "newer format": (lambda t: _header_edit(t, format=2), ["format 2", "reads format 1"]),
    "malformed header": (lambda t: t.replace("{", "[", 1), ["line 1: malformed header"]),
    "no environment": (lambda t: _header_edit(t, environment={}), ["environment must record"]),
    "foreign columns": (lambda t: _rehash(t, lambda b: b.replace("mean_dev", "mean", 1)), ["line 2: columns"]),
    "short row": (lambda t: _rehash(t, lambda b: _second_row(b, lambda r: r[:50])), ["line 3", "fields"]),
    "not a number": (
        lambda t: _rehash(t, lambda b: _second_row(b, lambda r: r.replace(",200000,", ",many,", 1))),
        ["line 3, column n_samples", "'many' is not a number"],
    ),
    "short vector": (
        lambda t: _rehash(t, lambda b: _second_row(b, lambda r: r.rsplit(" ", 1)[0])),
        ["line 3, column component_var", "expected D·K = 24"],
    ),
    "no cells": (lambda t: _rehash(t, lambda b: b.split("\n")[0] + "\n"), ["has no cells"]),
    "duplicate cell": (
        lambda t: _rehash(t, lambda b: b + b.split("\n")[1] + "\n"),
        ["duplicate cell", "reinforce on sum-target"],
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_unusable_baseline_exits_2_with_a_clear_line(cli, tmp_path, good_text, case):
    transform, fragments = BROKEN[case]
    path = tmp_path / "b.csv"
    path.write_text(transform(good_text))
    assert_one_line_error(cli("check", "--baseline", path), *fragments)


def test_binary_and_missing_baselines_exit_2(cli, tmp_path):
    garbage = tmp_path / "g.csv"
    garbage.write_bytes(bytes(range(256)))
    assert_one_line_error(cli("check", "--baseline", garbage), "not a text file")
    assert_one_line_error(cli("check", "--baseline", tmp_path / "none.csv"), "does not exist", "--update")
    assert_one_line_error(cli("check", "--baseline", tmp_path), "is a directory")


def test_baseline_of_unknown_estimators_exits_2(cli, tmp_path, monkeypatch):
    class Renamed(Reinforce):
        name = "plugin-only"

    monkeypatch.setitem(REGISTRY, "plugin-only", Renamed)
    path = tmp_path / "b.csv"
    path.write_text(baseline_text(cells=[("sum-target", "plugin-only", {}, 1000)]))
    monkeypatch.delitem(REGISTRY, "plugin-only")
    assert_one_line_error(cli("check", "--baseline", path), "none of the 1 cells", "unknown estimator 'plugin-only'")


BAD_OPTIONS = [
    (["--alpha", "0"], ["--alpha"]),
    (["--variance-ratio", "1"], ["--variance-ratio"]),
    (["--bias-threshold", "-1"], ["--bias-threshold"]),
    (["--fail-on-speed", "0.5"], ["--fail-on-speed"]),
    (["--format", "xml"], ["--format"]),
    (["--estimator", "reinforce"], ["--estimator only applies with --update"]),
    (["--update", "--fresh-seeds"], ["--fresh-seeds does not apply to --update"]),
    (["--update", "--seeds", "0"], ["--seeds must be at least 1"]),
    (["--update", "--tau", "0"], ["--tau must be > 0"]),
    (["--update", "-e", "nope"], ["unknown estimator 'nope'"]),
]


@pytest.mark.parametrize(("args", "fragments"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_options_exit_2(cli, baseline, args, fragments):
    before = baseline.read_text()
    assert_one_line_error(cli("check", "--baseline", baseline, *args), *fragments)
    assert baseline.read_text() == before


# --- power, strictness, formats --------------------------------------------------------------------------------


def test_too_weak_cells_warn_and_fail_with_strict(cli, tmp_path):
    path = tmp_path / "b.csv"
    path.write_text(baseline_text(cells=[("bernoulli", "reinforce", {}, 2_000)]))  # the needle: hopeless for bias
    result = cli("check", "--baseline", path, "--seed-base", "1")
    assert result.exit_code == 0, result.output
    assert "warning: too weak to detect the threshold" in result.stdout
    strict = cli("check", "--baseline", path, "--seed-base", "1", "--strict")
    assert strict.exit_code == 2
    assert "FAIL (--strict)" in strict.stdout


def test_markdown_report(cli, baseline, monkeypatch):
    monkeypatch.setitem(REGISTRY, "reinforce", PlantedVariance)
    result = cli("check", "--baseline", baseline, "--seed-base", "3", "--format", "markdown")
    assert result.exit_code == 1
    out = result.stdout
    assert out.startswith("## gradbench check: FAIL")
    assert "### worse (1)" in out and "### unchanged (2)" in out
    assert "| cell | variance | bias | detectable | speed | why |" in out


# --- building a baseline ---------------------------------------------------------------------------------------


def test_update_writes_a_baseline_that_then_passes(cli, tmp_path):
    path = tmp_path / "sub" / "b.csv"
    args = ("check", "--update", "--baseline", path, "-e", "reinforce", "-e", "gumbel", "-t", "sum-target")
    result = cli(*args, "--tau", "0.5", "--budget", "1")
    assert result.exit_code == 0, result.output
    assert "2 cells" in result.stdout
    base = read_baseline(path)
    assert [c.row["estimator"] for c in base.cells] == ["reinforce", "gumbel"]
    assert all(10_000 <= c.row["n_samples"] <= 2_000_000 for c in base.cells)
    assert base.environment["threads"] == 1 and base.grid["variance_ratio"] == 1.25
    assert not list(path.parent.glob("*.tmp"))
    assert cli("check", "--baseline", path).exit_code == 0
    refresh = cli("check", "--update", "--baseline", path, "-e", "exact", "-t", "bernoulli")
    assert refresh.exit_code == 0, refresh.output
    assert [c.row["estimator"] for c in read_baseline(path).cells] == ["exact"]


def test_default_grid_is_generic_over_the_registry(monkeypatch):
    class BinaryOnly(Estimator):
        """A binary-only estimator for the grid test: never run here."""

        name, summary, family, unbiased, binary_only = "binary-test", "t", "test", True, True

    class NeedsHyper(Estimator):
        """An estimator with a required hyper-parameter: the grid cannot guess it."""

        name, summary, family, unbiased = "needs-m", "t", "test", True
        params = (Param("m", int, REQUIRED, "draws"),)

    class Discrete(Task):
        """A task without relaxation."""

        name, summary, relaxable = "discrete-test", "t", False
        D, K = 1, 2

        def initial_logits(self):
            return torch.zeros(1, 2, dtype=torch.float64)

        def f(self, z):
            return z[..., 1].sum(-1)

    monkeypatch.setitem(REGISTRY, "binary-test", BinaryOnly)
    monkeypatch.setitem(REGISTRY, "needs-m", NeedsHyper)
    monkeypatch.setitem(TASK_REGISTRY, "discrete-test", Discrete)
    specs, notes = grid_cells(GridSettings(taus=(0.5, 1.0), seeds=2))
    pairs = {(s.estimator, s.task, s.estimator_params.get("tau"), s.seed) for s in specs}
    assert ("binary-test", "bernoulli", None, 1) in pairs
    # (other tests may have registered plug-in tasks: judge by K, not by name)
    assert not any(e == "binary-test" and TASK_REGISTRY[t]().K != 2 for e, t, _, _ in pairs)
    assert not any(e in ("gumbel", "st-gumbel") and t == "discrete-test" for e, t, _, _ in pairs)
    assert ("gumbel", "quadratic", 1.0, 0) in pairs and ("reinforce", "discrete-test", None, 1) in pairs
    assert not any(e == "needs-m" for e, *_ in pairs)
    assert any("needs-m" in n and "m is required" in n for n in notes)


# --- decision rules on synthetic numbers -----------------------------------------------------------------------


def _row(**changes) -> dict:
    row = {
        "task": "t",
        "task_params": "",
        "estimator": "e",
        "estimator_params": "",
        "tau": "",
        "seed": 0,
        "n_samples": 10_000,
        "variance": 1.0,
        "variance_se": 0.01,
        "seconds": 1.0,
        "estimates_per_sec": 10_000.0,
        "exact_value": 0.5,
        "grad_norm": 1.0,
        "bias_sq": 0.0,
        "bias_pvalue": 0.5,
        "D": 1,
        "K": 2,
        "dtype": "float32",
        "nonfinite_fraction": 0.0,
        "code_fingerprint": "",
    }
    for col in ("bias", "mse", "cosine", "snr", "mse_se"):
        row[col] = 1.0
    row.update(changes)
    return row


def test_variance_test_matches_the_delta_method_and_its_power():
    opts = CheckOptions()
    same = variance_test(_row(), _row(), opts, m=1)
    assert same.pvalue == 1.0 and same.effect == 1.0
    t = variance_test(_row(), _row(variance=1.05, variance_se=0.0105), opts, m=1)
    se = math.sqrt(2) * 0.01  # the relative standard errors add in quadrature
    from gradbench.significance import t_sf2

    assert t.pvalue == pytest.approx(t_sf2(math.log(1.05) / se, 30.0))
    assert t.direction == 1 and t.effect == pytest.approx(1.05)
    assert 1.0 < t.detectable < 1.25  # a 1% relative standard error per run resolves a few percent
    weak = variance_test(_row(variance_se=0.2), _row(variance_se=0.2), opts, m=10)
    assert weak.weak and weak.detectable > 1.25
    zero = variance_test(_row(variance=0.0), _row(variance=0.5), opts, m=1)
    assert zero.pvalue == 0.0 and zero.effect == math.inf


def _exact_tier(base: dict, new: dict, **options) -> CellResult:
    check = CheckResult("exact", "", CheckOptions(**options), "b", {}, {}, {}, None, [CellResult("c", base, new)])
    compare(check, [None], [None], {})
    return check.cells[0]


def test_speed_is_reported_and_fails_only_on_request():
    slow = _row(seconds=3.0, estimates_per_sec=10_000 / 3)
    assert _exact_tier(_row(), slow).status == "unchanged"
    r = _exact_tier(_row(), slow, fail_on_speed=2.0)
    assert r.status == "worse" and "3.00× fewer estimates/s" in r.reasons[0]
    assert _exact_tier(_row(), slow, fail_on_speed=4.0).status == "unchanged"
    short = _row(seconds=0.003, estimates_per_sec=1e6), _row(seconds=0.009, estimates_per_sec=1e6 / 3)
    assert _exact_tier(*short, fail_on_speed=2.0).status == "unchanged"  # too short to time


def test_exact_tier_tolerance_is_tight():
    assert _exact_tier(_row(), _row(variance=1.0 + 1e-12)).status == "unchanged"
    moved = _exact_tier(_row(), _row(variance=1.0 + 1e-6))
    assert moved.status == "changed" and list(moved.moved) == ["variance"]


def _statistical_tier(pairs: list[tuple[dict, dict]], **options) -> CheckResult:
    """compare() in the statistical tier on synthetic (baseline row, new row) pairs of an unbiased estimator."""
    cells = [CellResult(f"c{i}", base, new) for i, (base, new) in enumerate(pairs)]
    check = CheckResult("statistical", "", CheckOptions(**options), "b", {}, {}, {}, 1, cells)
    compare(check, [BaselineCell(base, [0.0, 0.0], [1.0, 1.0]) for base, _ in pairs], [{}] * len(pairs), {"e": True})
    return check


def test_holm_spends_alpha_over_all_cells_and_metrics():
    """A variance change significant on its own (p ≈ 0.002) is not once the family has 2 × 4 tests."""
    from gradbench.significance import holm

    assert holm([0.004, 0.5]) == [0.008, 0.5]
    assert holm([0.004] * 6)[0] == pytest.approx(0.024)
    pair = (_row(), _row(variance=1.05, variance_se=0.0105))
    alone = _statistical_tier([pair], variance_ratio=1.01)
    (t,) = [t for t in alone.cells[0].tests if t.metric == "variance"]
    assert 0.001 < t.pvalue < 0.004 and t.adjusted == pytest.approx(2 * t.pvalue)  # m = 2: itself and the bias test
    assert alone.cells[0].status == "worse" and alone.exit_code == 1
    family = _statistical_tier([pair] + [(_row(), _row())] * 3, variance_ratio=1.01)
    assert family.n_tests == 8
    assert family.cells[0].test("variance").adjusted == pytest.approx(8 * t.pvalue)
    assert family.cells[0].status == "unchanged" and family.exit_code == 0


def test_bias_change_test_is_the_two_sample_z_test():
    from gradbench.significance import normal_sf2

    base = _row(n_samples=10_000, D=1, K=2, dtype="float64")  # float64: the rounding allowance is negligible
    cell = BaselineCell(base, [0.0, 0.0], [1.0, 4.0])
    new = _row(n_samples=10_000, D=1, K=2, grad_norm=0.1, dtype="float64")
    details = {
        "exact_grad": torch.tensor([0.05, -0.05], dtype=torch.float64),
        "mean_dev": torch.tensor([0.05, 0.0], dtype=torch.float64),
        "component_var": torch.tensor([1.0, 4.0], dtype=torch.float64),
    }
    t = bias_change_test(cell, new, details, CheckOptions(), m=2)
    z = 0.05 / math.sqrt(2 / 10_000)
    assert t.pvalue == pytest.approx(2 * normal_sf2(z), rel=1e-6)  # Bonferroni over the P = 2 components
    noise = 2 * 1 / 10_000 + 2 * 4 / 10_000
    assert t.effect == pytest.approx(math.sqrt(0.05**2 - noise) / 0.1)  # noise-corrected, in units of ‖g*‖
    same = bias_change_test(cell, new, {**details, "mean_dev": torch.zeros(2, dtype=torch.float64)}, CheckOptions(), 2)
    assert same.pvalue == 1.0 and same.effect == 0.0


def test_update_refuses_a_directory_and_foreign_files(cli, tmp_path):
    update = ("check", "--update", "-e", "exact", "-t", "bernoulli", "--baseline")
    assert_one_line_error(cli(*update, tmp_path), "directory")
    results = tmp_path / "runs.csv"
    results.write_text(format_rows([], header=True))
    assert_one_line_error(cli(*update, results), "refusing to overwrite", "not a gradbench baseline")
    assert results.read_text() == format_rows([], header=True)


def test_write_baseline_is_atomic_and_readable(tmp_path, good_text):
    path = tmp_path / "x.csv"
    write_baseline(path, good_text)
    assert read_baseline(path).cells[0].row["estimator"] == "reinforce"
    with pytest.raises(GradbenchError, match="cannot write"):
        write_baseline(tmp_path / "x.csv" / "y.csv", good_text)


def test_the_committed_baseline_passes_in_at_most_40_lines(cli):
    """`gradbench check` on the committed baseline: PASS, failures first, one line of counts, grouped warnings."""
    root = Path(__file__).resolve().parent.parent
    result = cli("check", "--baseline", str(root / "results" / "baseline.csv"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) <= 40, "\n".join(lines)
    assert lines[0].startswith("gradbench check: PASS")
    assert any("unchanged (listed with --verbose)" in line for line in lines)
    assert len([line for line in lines if line.startswith("warning: ")]) <= 2  # grouped by kind


def test_warnings_are_grouped_and_counted_and_listed_with_verbose(cli, tmp_path):
    """Three needle cells, all too weak for the thresholds in the statistical tier: one warning line, not three."""
    cells = [
        ("bernoulli", e, p, 10_000) for e, p in [("reinforce", {}), ("st-gumbel", {"tau": 0.5}), ("st", {"tau": 1.0})]
    ]
    path = tmp_path / "b.csv"
    path.write_text(baseline_text(cells, env_changes={"platform": "elsewhere"}))
    short = cli("check", "--baseline", path)
    assert short.exit_code == 0, short.output
    text = " ".join(short.stdout.split())
    assert text.count("warning:") == 1 and "warning: 3 cells too weak to detect the threshold (bernoulli 3" in text
    assert "unchanged (" not in text.split("3 unchanged (listed with --verbose)")[0]  # no table of unchanged cells
    verbose = cli("check", "--baseline", path, "--verbose")
    assert " ".join(verbose.stdout.split()).count("warning: too weak to detect the threshold") == 3
    assert "unchanged (3)" in verbose.stdout
