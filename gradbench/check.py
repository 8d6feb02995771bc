"""``gradbench check``: re-run every cell of a baseline and decide whether an estimator got biased, noisier or slower.

Two tiers (see docs/design.md, "Regression check"):

- **exact tier** — the environment matches the baseline's (:data:`gradbench.baseline.MATCH_KEYS`) and the seeds
  are the baseline's: the runner is deterministic per seed, so every metric column must come back equal to a
  relative 10⁻⁹; any drift is *changed behaviour* and fails, naming the cells and columns that moved.
- **statistical tier** — another environment, or ``--fresh-seeds``. Per cell, two tests:

  * bias: an estimator declared unbiased is tested against the exact gradient (the row's ``bias_pvalue``: per-
    component z-tests, Bonferroni-combined); any other estimator is tested for a change of its mean against the
    baseline: z_j = (ĝ_j − ĝ⁰_j) / √(s_j²/n + s⁰_j²/n⁰), two-sided, Bonferroni over the P components. The size of
    the change is the noise-corrected ‖Δ‖ = √max(0, ‖ĝ − ĝ⁰‖² − Σ_j (s_j²/n + s⁰_j²/n⁰)), in units of ‖g*‖;
  * variance: log(V/V⁰) with the delta-method standard error √((se/V)² + (se⁰/V⁰)²) from the batch-means
    standard errors (16 replicate groups per run), referred to Student's t with Welch–Satterthwaite degrees of
    freedom (15 per run).

  The p-values of all cells and both metrics form one family, Holm-adjusted at ``alpha``. A cell is *worse* when a
  test is significant *and* the change exceeds its practical threshold (variance ratio > ``variance_ratio``;
  bias change > ``bias_threshold``·‖g*‖), *better* when significant and beyond the threshold the other way.

Power: for every cell the smallest change detected with probability ``power`` at the Bonferroni level α/m (Holm's
strictest step, so a conservative figure): variance ratio exp((t_{α/m,ν} + z_power)·se_log), and bias
(z_{α/(2mP)} + z_power)·√(Σ_j se_j²)/‖g*‖ (a bias pointing in the least favourable direction). A cell whose
detectable change exceeds the threshold gets a warning (an error with ``strict``).

Speed (estimates per second) is reported as a ratio; it fails a cell only with ``fail_on_speed`` (a factor), and
only when both runs were timed over at least ``min_timed_seconds``.

Code: a cell whose re-run row has another ``code_fingerprint`` than the baseline's (the estimator's or task's source
changed, :mod:`gradbench.fingerprint`) is compared as usual; a note names such estimator/task pairs.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from gradbench.baseline import (
    Baseline,
    BaselineCell,
    cell_label,
    current_environment,
    environment_differences,
    format_baseline,
)
from gradbench.contract import PluginError
from gradbench.core import parse_params
from gradbench.errors import GradbenchError
from gradbench.limits import MAX_SEEDS, check_count, check_seed
from gradbench.results import METRIC_COLUMNS
from gradbench.significance import holm, normal_quantile, t_quantile2, welch_df

EXACT_COLUMNS = ("exact_value", *METRIC_COLUMNS)
"""Columns the exact tier compares (not the timing columns)."""
GROUP_DF = 15.0  # degrees of freedom of a batch-means standard error from 16 groups
TASK_RTOL = 1e-6  # exact E f and ‖g*‖ must agree this well, or the task itself changed
STATUSES = ("worse", "changed", "better", "unchanged", "not comparable")
FAILING = ("worse", "changed")

Progress = Callable[[str, int, int], None]  # (description, done, total)


@dataclass(frozen=True)
class CheckOptions:
    alpha: float = 0.01
    variance_ratio: float = 1.25
    bias_threshold: float = 0.1  # relative to ‖g*‖
    power: float = 0.8
    fail_on_speed: float | None = None
    fresh_seeds: bool = False
    seed_base: int | None = None  # fresh seeds from this; None: random
    strict: bool = False
    min_timed_seconds: float = 0.02
    exact_rtol: float = 1e-9
    device: str | None = None  # None: the baseline's
    dtype: str | None = None
    threads: int | None = None
    allow_missing: tuple[str, ...] = ()  # estimator or task names whose not-comparable cells do not fail the check
    executor: str = "local"  # where the cells are re-run (gradbench.executors): local or dask
    workers: int = 1
    address: str | None = None
    connect_timeout: float = 10.0
    plugins: tuple[str, ...] = ()  # shipped to the executor's workers

    def validate(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise GradbenchError(f"--alpha must be in (0, 0.5), got {self.alpha}")
        if not (self.variance_ratio > 1.0 and math.isfinite(self.variance_ratio)):
            raise GradbenchError(f"--variance-ratio must be a finite number > 1, got {self.variance_ratio}")
        if not (self.bias_threshold >= 0.0 and math.isfinite(self.bias_threshold)):
            raise GradbenchError(f"--bias-threshold must be a finite number ≥ 0, got {self.bias_threshold}")
        if not 0.0 < self.power < 1.0:
            raise GradbenchError(f"--power must be in (0, 1), got {self.power}")
        if self.fail_on_speed is not None and not (self.fail_on_speed >= 1.0 and math.isfinite(self.fail_on_speed)):
            raise GradbenchError(f"--fail-on-speed must be a finite factor ≥ 1, got {self.fail_on_speed}")
        if self.threads is not None:
            check_count(self.threads, "--threads", "torch threads")
        if self.seed_base is not None:
            check_seed(self.seed_base, "--seed-base")
        if self.dtype is not None:
            from gradbench.runner import DTYPES

            if self.dtype not in DTYPES:
                raise GradbenchError(f"--dtype {self.dtype}: unknown dtype (use {', '.join(DTYPES)})")


@dataclass
class TestResult:
    """One test of one cell. ``effect``: variance ratio V/V⁰, or a bias size in units of ‖g*‖."""

    metric: str  # "variance" or "bias"
    against: str  # "baseline" or "exact"
    pvalue: float
    effect: float
    threshold: float
    detectable: float  # smallest effect detected with the requested power at level α/m
    direction: int = 0  # +1 worse, −1 better (sign of the change), 0 none
    adjusted: float = math.nan  # Holm-adjusted p-value
    verdict: str = "unchanged"
    detail: str = ""

    @property
    def weak(self) -> bool:
        return self.detectable > self.threshold


@dataclass
class CellResult:
    label: str
    base: dict[str, Any]
    new: dict[str, Any] | None = None
    status: str = "unchanged"
    reasons: list[str] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)
    moved: dict[str, tuple[float, float]] = field(default_factory=dict)  # exact tier: column -> (baseline, new)
    seed: int | None = None
    speed_ratio: float = math.nan  # new estimates/s over the baseline's
    speed_timed: bool = False

    def test(self, metric: str) -> TestResult | None:
        return next((t for t in self.tests if t.metric == metric), None)


@dataclass
class CheckResult:
    tier: str
    tier_reason: str
    options: CheckOptions
    baseline_path: str
    baseline_env: dict[str, Any]
    env: dict[str, Any]
    differences: dict[str, tuple[Any, Any]]
    seed_base: int | None
    cells: list[CellResult]
    n_tests: int = 0
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    exit_code: int = 0
    seconds: float = 0.0

    def by_status(self, status: str) -> list[CellResult]:
        return [c for c in self.cells if c.status == status]

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


# --- running -------------------------------------------------------------------------------------------------


def spec_for(row: dict[str, Any], seed: int, device: str | None = None, dtype: str | None = None):
    """The CellSpec that re-runs a baseline row (same task, options, estimator, τ, samples), with ``seed``."""
    from gradbench.runner import CellSpec

    params: dict[str, Any] = dict(parse_params(row["estimator_params"]))
    if row["tau"] != "":
        params["tau"] = row["tau"]
    return CellSpec(
        task=row["task"],
        estimator=row["estimator"],
        task_params=dict(parse_params(row["task_params"])),
        estimator_params=params,
        seed=seed,
        n_samples=row["n_samples"],
        device=device or row["device"],
        dtype=dtype or row["dtype"],
    )


def fresh_seed(seed_base: int, seed: int) -> int:
    """A seed for a fresh run of the cell seeded ``seed`` in the baseline (well mixed, 63 bits)."""
    from gradbench.rng import block_seed

    return block_seed(seed_base ^ 0x6A09E667F3BCC908, seed)


def _device_name(device: str) -> str:
    from gradbench.runner import resolve_device

    return str(resolve_device(device))


def run_check(baseline: Baseline, options: CheckOptions, progress: Progress | None = None) -> CheckResult:
    """Re-run the baseline's cells and compare them (exact or statistical tier); see the module docstring."""
    import torch

    from gradbench.executors import ExecutorOptions, open_executor
    from gradbench.registry import all_estimators
    from gradbench.runner import prepare

    options.validate()
    names = {c.row["estimator"] for c in baseline.cells} | {c.row["task"] for c in baseline.cells}
    for name in options.allow_missing:
        if name not in names:
            raise GradbenchError(
                f"--allow-missing {name}: no cell of baseline {baseline.path} has this estimator or task "
                f"(names: {', '.join(sorted(names))})"
            )
    started = time.perf_counter()
    env0 = baseline.environment
    dtype = options.dtype or env0["dtype"]
    device = _device_name(options.device) if options.device else env0["device"]
    threads = options.threads or int(env0["threads"])
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        env = current_environment(dtype, device, torch.get_num_threads())
        differences = environment_differences(env0, env)
        if options.fresh_seeds:
            tier, why = "statistical", "--fresh-seeds"
        elif differences:
            tier, why = "statistical", "environment differs: " + ", ".join(differences)
        else:
            tier, why = "exact", "same environment and seeds"
        seed_base = None
        if options.fresh_seeds:
            seed_base = options.seed_base if options.seed_base is not None else secrets.randbits(32)
        results: list[CellResult] = []
        details: list[dict[str, Any] | None] = []
        total = len(baseline.cells)
        jobs: list[tuple[int, Any]] = []  # (index, spec) of the cells that can be re-run here
        for i, cell in enumerate(baseline.cells):
            seed = cell.row["seed"] if seed_base is None else fresh_seed(seed_base, cell.row["seed"])
            result = CellResult(cell.label(), cell.row, seed=seed)
            spec = spec_for(cell.row, seed, device if options.device else None, options.dtype)
            results.append(result)
            details.append(None)
            try:
                prepare(spec)
            except PluginError as exc:  # a task's/estimator's own code broke its contract: a regression
                result.status = "worse"
                result.reasons.append(f"failed: {exc}")
                continue
            except GradbenchError as exc:  # unknown name, incompatible pair, …: the cell cannot be re-run here
                result.status = "not comparable"
                result.reasons.append(str(exc))
                continue
            except Exception as exc:  # a plug-in that crashes while being set up: a regression
                result.status = "worse"
                result.reasons.append(f"failed: {type(exc).__name__}: {' '.join(str(exc).split())}")
                continue
            jobs.append((i, spec))
        executor = ExecutorOptions(options.executor, options.workers, threads, options.address, options.connect_timeout)
        finished = total - len(jobs)
        with open_executor(executor, options.plugins) as cells:
            for done in cells.map_unordered(rerun_cell, jobs):
                i = done.item[0]
                new, extra, error = done.value if done.error is None else (None, None, done.error)
                if error is not None:  # a crash of the estimator (or NaN estimates) is a regression
                    results[i].status = "worse"
                    results[i].reasons.append(f"failed: {error}")
                elif nonfinite := _nonfinite_failure(results[i].base, new):
                    results[i].status = "worse"  # non-finite estimates where the baseline had (fewer) none
                    results[i].reasons.append(nonfinite)
                else:
                    results[i].new, details[i] = new, extra
                finished += 1
                if progress:
                    progress(results[i].label, finished, total)
        if progress:
            progress("", total, total)
    finally:
        torch.set_num_threads(previous_threads)

    check = CheckResult(tier, why, options, str(baseline.path), env0, env, differences, seed_base, results)
    unbiased = {name: cls.unbiased for name, cls in all_estimators().items()}
    if not any(r.new is not None or r.status != "not comparable" for r in results):
        reasons = sorted({r.reasons[0] for r in results})
        raise GradbenchError(
            f"none of the {total} cells of baseline {baseline.path} could be re-run here: {reasons[0]}"
            + (f" (and {len(reasons) - 1} other reasons)" if len(reasons) > 1 else "")
            + "; missing --plugin?"
        )
    compare(check, baseline.cells, details, unbiased)
    recoded = changed_code(results)
    if recoded:
        more = f" and {len(recoded) - 6} more" if len(recoded) > 6 else ""
        check.notes.append(
            f"code changed since the baseline (code_fingerprint differs) for {len(recoded)} estimator/task pairs: "
            f"{', '.join(recoded[:6])}{more}; their cells compare the current code with the baseline's"
        )
    known = set(all_estimators())
    in_baseline = {c.row["estimator"] for c in baseline.cells}
    missing = sorted(known - in_baseline)
    if missing:
        check.notes.append(
            f"estimators registered but not in the baseline: {', '.join(missing)} (add them with --update)"
        )
    check.seconds = time.perf_counter() - started
    return check


def changed_code(results: list[CellResult]) -> list[str]:
    """``estimator on task`` for the re-run cells whose row has another code fingerprint than the baseline's."""
    return sorted(
        {
            f"{r.base['estimator']} on {r.base['task']}"
            for r in results
            if r.new is not None and r.base.get("code_fingerprint", "") != r.new["code_fingerprint"]
        }
    )


def rerun_cell(job: tuple[int, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str | None]:
    """Re-run one baseline cell, on whichever worker the executor chose: (row, details, None) or (None, None, why)."""
    from gradbench.runner import run_cell

    extra: dict[str, Any] = {}
    try:
        return run_cell(job[1], details=extra), extra, None
    except Exception as exc:
        return None, None, " ".join(str(exc).split()) or type(exc).__name__


# --- comparing -----------------------------------------------------------------------------------------------


def compare(
    check: CheckResult,
    cells: list[BaselineCell],
    details: list[dict[str, Any] | None],
    unbiased: dict[str, bool],
) -> None:
    """Fill in the verdicts of ``check.cells`` (new rows already run) and the exit code."""
    opts = check.options
    live = [(r, c, d) for r, c, d in zip(check.cells, cells, details, strict=True) if r.new is not None]
    for r, _, _ in live:
        _speed(r, opts)
    if check.tier == "exact":
        for r, _, _ in live:
            _exact_compare(r, opts)
    else:
        for r, _, _ in live:
            _task_changed(r)
        comparable = [(r, c, d) for r, c, d in live if r.status != "not comparable"]
        m = 2 * len(comparable)
        check.n_tests = m
        for r, c, d in comparable:
            assert d is not None
            r.tests = [
                variance_test(c.row, r.new, opts, m),
                bias_test_exact(r.new, opts, m)
                if unbiased.get(r.base["estimator"], False)
                else bias_change_test(c, r.new, d, opts, m),
            ]
        tests = [t for r, _, _ in comparable for t in r.tests]
        for t, adjusted in zip(tests, holm([t.pvalue for t in tests]), strict=True):
            t.adjusted = adjusted
            _decide(t, opts)
        for r, _, _ in comparable:
            _cell_status(r, opts)
    _finish(check)


def _speed(r: CellResult, opts: CheckOptions) -> None:
    base, new = r.base, r.new
    assert new is not None
    if base["estimates_per_sec"] > 0 and new["estimates_per_sec"] > 0:
        r.speed_ratio = new["estimates_per_sec"] / base["estimates_per_sec"]
    r.speed_timed = min(base["seconds"], new["seconds"]) >= opts.min_timed_seconds


def _speed_failure(r: CellResult, opts: CheckOptions) -> str | None:
    if opts.fail_on_speed is None or not r.speed_timed or not r.speed_ratio > 0:
        return None
    slower = 1.0 / r.speed_ratio
    if slower > opts.fail_on_speed:
        return f"slower: {slower:.2f}× fewer estimates/s than the baseline (> --fail-on-speed {opts.fail_on_speed:g})"
    return None


def _nonfinite_failure(base: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why a re-run with a flagged share of non-finite estimates above the baseline's is worse (None if it is not)."""
    from gradbench.nonfinite import is_flagged

    before, after = float(base.get("nonfinite_fraction", 0.0)), float(new["nonfinite_fraction"])
    if is_flagged(after) and not after <= before:
        return f"produced non-finite estimates (NaN or ±inf): share {after:.3g} (baseline {before:.3g})"
    return None


def _close(a: float, b: float, rtol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= rtol * max(abs(a), abs(b)) or a == b


def _exact_compare(r: CellResult, opts: CheckOptions) -> None:
    assert r.new is not None
    for col in EXACT_COLUMNS:
        a, b = float(r.base[col]), float(r.new[col])
        if not _close(a, b, opts.exact_rtol):
            r.moved[col] = (a, b)
    if r.moved:
        r.status = "changed"
        r.reasons.append("changed behaviour: same seed and environment, different " + ", ".join(r.moved))
    speed = _speed_failure(r, opts)
    if speed:
        r.status = "worse" if r.status == "unchanged" else r.status
        r.reasons.append(speed)


def _task_changed(r: CellResult) -> bool:
    assert r.new is not None
    for col in ("exact_value", "grad_norm"):
        a, b = float(r.base[col]), float(r.new[col])
        if not _close(a, b, TASK_RTOL):
            r.status = "not comparable"
            r.reasons.append(f"the task's exact {col} changed ({a:.10g} → {b:.10g}): the task is not the same")
            return True
    return False


def variance_test(base: dict[str, Any], new: dict[str, Any], opts: CheckOptions, m: int) -> TestResult:
    """log(V/V⁰) against its delta-method standard error, Student t with Welch–Satterthwaite df."""
    v0, v1 = float(base["variance"]), float(new["variance"])
    thr = opts.variance_ratio
    if v0 == 0.0 or v1 == 0.0:
        if v0 == v1:
            return TestResult("variance", "baseline", 1.0, 1.0, thr, 1.0, detail="both zero")
        ratio = math.inf if v0 == 0.0 else 0.0
        return TestResult("variance", "baseline", 0.0, ratio, thr, 1.0, 1 if v1 > v0 else -1, detail="one is zero")
    a = (float(base["variance_se"]) / v0) ** 2
    b = (float(new["variance_se"]) / v1) ** 2
    log_ratio = math.log(v1 / v0)
    direction = 1 if log_ratio > 0 else -1 if log_ratio < 0 else 0
    if math.isnan(a) or math.isnan(b):
        return TestResult("variance", "baseline", 1.0, v1 / v0, thr, math.inf, direction, detail="no standard error")
    se = math.sqrt(a + b)
    df = welch_df(a, GROUP_DF, b, GROUP_DF)
    if se == 0.0:
        pvalue = 1.0 if abs(log_ratio) <= 1e-12 else 0.0
        detectable = 1.0
    else:
        from gradbench.significance import t_sf2

        pvalue = t_sf2(log_ratio / se, df)
        detectable = math.exp((t_quantile2(opts.alpha / m, df) + normal_quantile(opts.power)) * se)
    return TestResult("variance", "baseline", pvalue, v1 / v0, thr, detectable, direction, detail=f"df {df:.0f}")


def _bias_critical(opts: CheckOptions, m: int, P: int) -> float:
    return normal_quantile(1.0 - opts.alpha / (2.0 * m * P)) + normal_quantile(opts.power)


def bias_test_exact(new: dict[str, Any], opts: CheckOptions, m: int) -> TestResult:
    """Declared unbiased: H0 E[g] = g*, the fresh row's ``bias_pvalue``; size √max(0, bias_sq)/‖g*‖."""
    g = float(new["grad_norm"])
    P = int(new["D"]) * int(new["K"])
    size = math.sqrt(max(0.0, float(new["bias_sq"])))
    noise = math.sqrt(float(new["variance"]) / int(new["n_samples"]))
    detectable = _bias_critical(opts, m, P) * noise
    effect, detectable = _relative(size, g), _relative(detectable, g)
    return TestResult(
        "bias", "exact", float(new["bias_pvalue"]), effect, opts.bias_threshold, detectable, 1 if size > 0 else 0
    )


def _relative(value: float, scale: float) -> float:
    if scale > 0:
        return value / scale
    return 0.0 if value == 0 else math.inf


def bias_change_test(
    cell: BaselineCell, new: dict[str, Any], details: dict[str, Any], opts: CheckOptions, m: int
) -> TestResult:
    """Change of the mean estimate against the baseline: per-component two-sample z-tests, Bonferroni-combined."""
    import torch

    from gradbench.runner import DTYPES
    from gradbench.stats import _norm_sf2

    exact = details["exact_grad"]  # P
    md1, cv1 = details["mean_dev"], details["component_var"]  # P, P
    md0 = torch.tensor(cell.mean_dev, dtype=torch.float64)
    cv0 = torch.tensor(cell.component_var, dtype=torch.float64)
    if md0.shape != md1.shape:
        return TestResult("bias", "baseline", 1.0, math.nan, opts.bias_threshold, math.inf, detail="shape differs")
    n0, n1 = float(cell.row["n_samples"]), float(new["n_samples"])
    se2 = cv1 / n1 + cv0 / n0  # P
    delta = md1 - md0  # P
    eps = max(torch.finfo(DTYPES.get(cell.row["dtype"], torch.float32)).eps, torch.finfo(DTYPES[new["dtype"]]).eps)
    scale = torch.maximum(
        exact.abs(), torch.maximum((exact + md1).square().add(cv1).sqrt(), (exact + md0).square().add(cv0).sqrt())
    )
    excess = (delta.abs() - 16.0 * eps * scale).clamp(min=0)  # rounding is not a change
    se = se2.sqrt()
    z = torch.where(se > 0, excess / se.clamp(min=1e-300), torch.where(excess > 0, math.inf, 0.0))
    P = delta.numel()
    pvalue = min(1.0, P * float(_norm_sf2(z).min()))
    size = math.sqrt(max(0.0, float(delta.square().sum() - se2.sum())))
    g = float(new["grad_norm"])
    detectable = _bias_critical(opts, m, P) * math.sqrt(float(se2.sum()))
    b0, b1 = float(cell.row["bias_sq"]), float(new["bias_sq"])
    direction = 1 if b1 >= b0 else -1
    return TestResult(
        "bias",
        "baseline",
        pvalue,
        _relative(size, g),
        opts.bias_threshold,
        _relative(detectable, g),
        direction if size > 0 else 0,
        detail=f"‖bias‖/‖g*‖ {_relative(math.sqrt(max(b0, 0.0)), g):.3g} → {_relative(math.sqrt(max(b1, 0.0)), g):.3g}",
    )


def _decide(t: TestResult, opts: CheckOptions) -> None:
    significant = t.adjusted <= opts.alpha
    if not significant:
        t.verdict = "unchanged"
        return
    if t.metric == "variance":
        if t.effect > t.threshold:
            t.verdict = "worse"
        elif t.effect < 1.0 / t.threshold:
            t.verdict = "better"
        else:
            t.verdict = "unchanged"
            t.detail = (t.detail + "; " if t.detail else "") + "significant, within threshold"
        return
    if t.effect > t.threshold:
        t.verdict = "worse" if t.direction >= 0 else "better"
    else:
        t.verdict = "unchanged"
        t.detail = (t.detail + "; " if t.detail else "") + "significant, within threshold"


def format_p(p: float) -> str:
    """A p-value in two digits; one that underflowed to 0 is shown as < 1e-300."""
    return "< 1e-300" if p == 0.0 else f"{p:.2g}"


def _cell_status(r: CellResult, opts: CheckOptions) -> None:
    for t in r.tests:
        if t.verdict == "unchanged":
            continue
        if t.metric == "variance":
            r.reasons.append(
                f"variance ×{t.effect:.3g} ({'>' if t.verdict == 'worse' else '<'} "
                f"{t.threshold if t.verdict == 'worse' else 1 / t.threshold:.3g}, Holm p {format_p(t.adjusted)})"
            )
        elif t.against == "exact":
            r.reasons.append(
                f"biased: ‖bias‖ = {t.effect:.3g}·‖g*‖ (> {t.threshold:g}·‖g*‖, Holm p {format_p(t.adjusted)}) "
                "for an estimator declared unbiased"
            )
        else:
            r.reasons.append(
                f"bias {'grew' if t.verdict == 'worse' else 'shrank'}: mean moved by {t.effect:.3g}·‖g*‖ "
                f"(> {t.threshold:g}·‖g*‖, Holm p {format_p(t.adjusted)}; {t.detail.split(';')[0]})"
            )
    verdicts = {t.verdict for t in r.tests}
    speed = _speed_failure(r, opts)
    if speed:
        r.reasons.append(speed)
    if "worse" in verdicts or speed:
        r.status = "worse"
    elif "better" in verdicts:
        r.status = "better"
    else:
        r.status = "unchanged"


def _finish(check: CheckResult) -> None:
    opts = check.options
    weak = [r for r in check.cells if r.status != "not comparable" and any(t.weak for t in r.tests)]
    for r in weak:
        parts = [
            f"{t.metric} {'×' if t.metric == 'variance' else ''}{t.detectable:.3g}"
            + ("" if t.metric == "variance" else "·‖g*‖")
            + f" (threshold {'×' if t.metric == 'variance' else ''}{t.threshold:g})"
            for t in r.tests
            if t.weak
        ]
        check.warnings.append(f"too weak to detect the threshold: {r.label}: smallest detectable " + "; ".join(parts))
    skipped = check.by_status("not comparable")
    allowed = set(opts.allow_missing)
    missing = [r for r in skipped if not allowed & {r.base["estimator"], r.base["task"]}]
    for r in skipped:
        if r in missing:
            hint = f"--allow-missing {r.base['estimator']} (or the task's name) skips it"
            r.reasons.append(f"fails the check: {hint}")
            check.warnings.append(f"not comparable (fails; {hint}): {r.label}: {r.reasons[0]}")
        else:
            check.warnings.append(f"not comparable (allowed by --allow-missing): {r.label}: {r.reasons[0]}")
    if check.tier == "exact" and check.by_status("changed"):
        check.notes.append(
            "changed behaviour: if intended, refresh the baseline with `gradbench check --update`; "
            "`--fresh-seeds` compares statistically instead"
        )
    if any(r.status in FAILING for r in check.cells) or missing:
        check.exit_code = 1
    elif opts.strict and (weak or skipped):
        check.exit_code = 2
        check.warnings.append("--strict: cells too weak or not comparable make the check fail (exit 2)")
    else:
        check.exit_code = 0


# --- building a baseline -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridSettings:
    """The default grid of ``--update``: every registered estimator (hyper-parameters at their defaults, each τ
    for estimators with a temperature) × every registered task (default options) that can run together, × seeds;
    the number of estimates of each cell sized for power within a time budget."""

    estimators: tuple[str, ...] = ()  # empty: all registered
    tasks: tuple[str, ...] = ()
    taus: tuple[float, ...] = (0.5, 1.0)
    seeds: int = 1
    budget: float = 15.0  # seconds of estimating for the whole grid (measured by pilots)
    dtype: str = "float32"
    device: str = "cpu"
    n_min: int = 10_000
    n_max: int = 2_000_000
    pilot: tuple[int, int] = (2_048, 8_192)
    margin: float = 1.5  # extra samples over the power calculation (the pilot's standard errors are noisy)
    alpha: float = 0.01
    variance_ratio: float = 1.25
    bias_threshold: float = 0.1
    power: float = 0.8

    def validate(self) -> None:
        if self.seeds < 1:
            raise GradbenchError(f"--seeds must be at least 1, got {self.seeds}")
        if self.seeds > MAX_SEEDS:
            raise GradbenchError(f"--seeds {self.seeds}: at most {MAX_SEEDS:,} seeds per cell; give a smaller count")
        if not (self.budget > 0 and math.isfinite(self.budget)):
            raise GradbenchError(f"--budget must be a positive number of seconds, got {self.budget}")
        for tau in self.taus:
            if not (tau > 0 and math.isfinite(tau)):
                raise GradbenchError(f"--tau must be > 0 and finite, got {tau}")
        if not 2 <= self.n_min <= self.n_max:
            raise GradbenchError(f"sample bounds must satisfy 2 ≤ min ≤ max, got {self.n_min}, {self.n_max}")
        CheckOptions(
            alpha=self.alpha, variance_ratio=self.variance_ratio, bias_threshold=self.bias_threshold, power=self.power
        ).validate()

    def describe(self) -> dict[str, Any]:
        return {
            "taus": list(self.taus),
            "seeds": self.seeds,
            "budget_s": self.budget,
            "n_min": self.n_min,
            "n_max": self.n_max,
            "alpha": self.alpha,
            "variance_ratio": self.variance_ratio,
            "bias_threshold": self.bias_threshold,
            "power": self.power,
        }


def grid_cells(settings: GridSettings) -> tuple[list, list[str]]:
    """The grid's CellSpecs (n_samples still to be sized) and notes on what was left out and why."""
    from gradbench.registry import all_estimators, default_sweep_tasks, get_estimator, get_task
    from gradbench.runner import CellSpec, prepare

    estimators = {n: get_estimator(n) for n in settings.estimators} if settings.estimators else all_estimators()
    tasks = {n: get_task(n) for n in settings.tasks} if settings.tasks else default_sweep_tasks()
    specs, notes = [], []
    for e_name, e_cls in estimators.items():
        hparam_sets = [{"tau": t} for t in settings.taus] if e_cls.has_tau() else [{}]
        for hparams in hparam_sets:
            for t_name in tasks:
                spec = CellSpec(
                    task=t_name,
                    estimator=e_name,
                    estimator_params=hparams,
                    n_samples=settings.n_min,
                    device=settings.device,
                    dtype=settings.dtype,
                )
                try:
                    _guarded(spec, prepare)
                except GradbenchError as exc:
                    text = str(exc)
                    if "needs f on the simplex" in text or "binary variables only" in text or "latents only" in text:
                        continue  # an incompatible pair: skipped by design
                    if settings.estimators and settings.tasks:
                        raise
                    notes.append(f"skipped {e_name} on {t_name}: {text}")
                    continue
                specs.extend(replace(spec, seed=s) for s in range(settings.seeds))
    if not specs:
        raise GradbenchError("the grid is empty: no estimator can run on any task with these filters")
    return specs, sorted(set(notes))


def _guarded(spec, work, **kwargs):
    """``work(spec)``, with a plug-in's crash turned into one clear line."""
    try:
        return work(spec, **kwargs)
    except GradbenchError:
        raise
    except Exception as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise GradbenchError(f"{spec.estimator} on {spec.task} failed: {type(exc).__name__}: {text}") from None


@dataclass
class Sizing:
    spec: Any
    cost0: float  # seconds per cell, fixed
    cost1: float  # seconds per estimate
    needed: int  # estimates for the power targets (clamped to [n_min, n_max])
    reachable: bool  # whether the targets can be met within n_max
    n: int = 0

    def cost(self, n: float) -> float:
        return self.cost0 + self.cost1 * n


def _round_up(n: float) -> int:
    """Up to two significant digits (123,456 -> 130,000)."""
    n = max(1, math.ceil(n))
    step = 10 ** max(0, len(str(n)) - 2)
    return -(-n // step) * step


def size_cells(specs: list, settings: GridSettings, progress: Progress | None = None) -> list[Sizing]:
    """Choose every cell's number of estimates from two pilot runs (not kept).

    A cell needs enough estimates for the power targets: variance ratio ``variance_ratio`` and bias change
    ``bias_threshold``·‖g*‖ detected with probability ``power`` at level α/m (m = 2 tests per cell), with
    ``margin`` to spare. The time budget is shared by water-filling (cells that need little get it, the others
    share the rest equally), first among the cells whose targets are reachable within ``n_max``; what is left goes
    to the others (e.g. REINFORCE on a needle-like gradient), up to ``n_max``.
    """
    from gradbench.registry import get_estimator
    from gradbench.runner import run_cell

    m = 2 * len(specs)
    z_power = normal_quantile(settings.power)
    c_var = t_quantile2(settings.alpha / m, 2 * GROUP_DF) + z_power
    log_ratio = math.log(settings.variance_ratio)
    sizings = []
    n_a, n_b = settings.pilot
    for i, spec in enumerate(specs):
        if progress:
            progress(f"pilot {spec.estimator} on {spec.task}", i, len(specs))
        walls = []
        for j, n in enumerate((n_a, n_b)):
            t0 = time.perf_counter()
            row = _guarded(replace(spec, n_samples=n, seed=fresh_seed(0xB0D6E7 + j, spec.seed)), run_cell)
            walls.append(time.perf_counter() - t0)
        slope = (walls[1] - walls[0]) / (n_b - n_a)
        cost1 = max(slope, 0.25 * walls[1] / n_b)  # timings are noisy: never believe a near-zero slope
        cost0 = max(0.0, walls[0] - n_a * cost1)
        V, se = float(row["variance"]), float(row["variance_se"])
        n_var = n_bias = settings.n_min
        if V > 0 and math.isfinite(se):  # se_log(n) = (se/V)·√(n_b/n) per run; two runs
            n_var = math.ceil(2 * n_b * (se / V * c_var / log_ratio) ** 2 * settings.margin)
        g, P = float(row["grad_norm"]), int(row["D"]) * int(row["K"])
        if V > 0 and g > 0 and settings.bias_threshold > 0:
            runs = 1 if get_estimator(spec.estimator).unbiased else 2  # against g*, or against the baseline
            c_bias = normal_quantile(1.0 - settings.alpha / (2.0 * m * P)) + z_power
            n_bias = math.ceil(runs * V * (c_bias / (settings.bias_threshold * g)) ** 2 * settings.margin)
        needed = max(settings.n_min, n_var, n_bias)
        sizings.append(Sizing(spec, cost0, cost1, min(needed, settings.n_max), needed <= settings.n_max))
    if progress:
        progress("", len(specs), len(specs))
    floor = [s.cost(settings.n_min) for s in sizings]
    first = [s.cost(s.needed) if s.reachable else f for s, f in zip(sizings, floor, strict=True)]
    grant = _water_fill(floor, first, settings.budget)
    second = [s.cost(s.needed) for s in sizings]
    grant = _water_fill(grant, second, max(settings.budget, sum(grant)))
    for s, seconds in zip(sizings, grant, strict=True):
        n = s.needed if seconds >= s.cost(s.needed) else (seconds - s.cost0) / s.cost1
        s.n = _round_up(min(settings.n_max, max(settings.n_min, n)))
    return sizings


def _water_fill(floor: list[float], want: list[float], budget: float) -> list[float]:
    """Grants g_i = max(floor_i, min(want_i, L)) with the largest level L such that Σ g_i ≤ budget (or all wants)."""
    if sum(max(f, w) for f, w in zip(floor, want, strict=True)) <= budget:
        return [max(f, w) for f, w in zip(floor, want, strict=True)]
    lo, hi = 0.0, max(want)
    for _ in range(100):
        level = 0.5 * (lo + hi)
        spent = sum(max(f, min(w, level)) for f, w in zip(floor, want, strict=True))
        lo, hi = (level, hi) if spent <= budget else (lo, level)
    return [max(f, min(w, lo)) for f, w in zip(floor, want, strict=True)]


def build_baseline(settings: GridSettings, progress: Progress | None = None) -> tuple[str, list[str], float]:
    """Size and run the grid; return the baseline text, notes, and the seconds the final runs took."""
    import torch

    from gradbench.runner import run_cell

    settings.validate()
    specs, notes = grid_cells(settings)
    sizings = size_cells(specs, settings, progress)
    cells = []
    started = time.perf_counter()
    for i, s in enumerate(sizings):
        if progress:
            progress(f"{s.spec.estimator} on {s.spec.task}", i, len(sizings))
        details: dict[str, Any] = {}
        row = _guarded(replace(s.spec, n_samples=s.n), run_cell, details=details)
        cells.append((row, details))
    if progress:
        progress("", len(sizings), len(sizings))
    seconds = time.perf_counter() - started
    device = _device_name(settings.device)
    env = current_environment(settings.dtype, device, torch.get_num_threads())
    return format_baseline(cells, env, settings.describe()), notes, seconds


__all__ = [
    "CheckOptions",
    "CheckResult",
    "CellResult",
    "GridSettings",
    "TestResult",
    "build_baseline",
    "cell_label",
    "run_check",
]
