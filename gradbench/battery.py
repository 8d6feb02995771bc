"""The audit battery: the contract's properties, checked on any estimator or task (``gradbench audit``).

One implementation serves two users: ``gradbench audit NAME --plugin FILE.py`` (a user's plug-in, every property,
a verdict table) and the generic contract tests in ``tests/`` (the built-ins, one property at a time, smaller
sizes). Every check returns a :class:`Verdict`: PASS, FAIL or SKIP with one line of evidence and its numbers.

Estimator properties
    ``declarations``   name, summary, family, ``unbiased`` declared; every declared hyper-parameter with a range
                       refuses a value outside it and the estimator refuses an unknown one.
    ``contract``       on every compatible task, float32 and float64: a tensor n x D x K in θ's dtype and device,
                       finite, θ (and the exact gradient) not modified.
    ``same seed``      two runs with one seed give identical estimates; another seed gives other numbers.
    ``chunk size``     the metrics row is identical for chunks of 1 block, 3 blocks and the default.
    ``global RNG``     torch's, numpy's and Python's global generators are left untouched, and perturbing their
                       seeds changes nothing (an estimator drawing from them is named, with the generator).
    ``two processes``  a fresh process (same plug-ins) gives bit-identical estimates.
    ``unbiased``       declared unbiased: on every compatible task, H0 E[g] = g* by the per-component z-tests of
                       ``bias_pvalue`` (Bonferroni over the D·K components), Holm across the m cells at α; the
                       evidence gives the smallest bias each cell detects with power 0.8,
                       (z_{1−α/(2mP)} + z_{0.8})·√(variance/n), in units of ‖g*‖ (a bias in the least favourable
                       direction; the same figure as ``gradbench check``'s).
    ``biased``         declared biased: is a bias detected anywhere (same tests)? PASS either way — an estimator
                       declared biased that is exact everywhere detectable is reported in the evidence.

Task properties
    ``contract``       :func:`gradbench.contract.validate_task` (D, K, initial_logits, f on one and two batch
                       dimensions, finite, f_grad and separable_values shapes).
    ``exact gradient`` g* (closed form or enumeration) against central finite differences (h = 1e-5, float64) of
                       E f computed by enumerating f itself (so a closed form inconsistent with f is caught);
                       tasks too large to enumerate: the separable values h against f on probe configurations.
    ``f_grad``         the closed form against autograd of f, on one-hot and simplex points.
    ``relaxation``     relaxable tasks: f is continuous at the vertices (f((1−ε)e + ε·u) → f(e), ε = 1e-7).
    ``reference``      REINFORCE, unbiased for any f, is unbiased against this task's g* (a wrong g* shows here).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from gradbench.errors import GradbenchError

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
POWER = 0.8
DEFAULT_ALPHA = 0.01
DEFAULT_SAMPLES = 200_000
"""f evaluations per cell of the bias tests: divided by ``Estimator.evals_on(task)`` (the same budget of f evaluations
for every estimator, at least 2,000 estimates)."""


@dataclass
class Verdict:
    """One property: PASS / FAIL / SKIP, one line of evidence, and the numbers behind it (for --format json)."""

    property: str
    status: str
    evidence: str
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuditReport:
    """The verdicts of one audit; ``exit_code`` is 0 when nothing failed, 1 otherwise."""

    kind: str  # "estimator" or "task"
    name: str
    verdicts: list[Verdict]
    settings: dict[str, Any]

    @property
    def passed(self) -> bool:
        return all(v.status != FAIL for v in self.verdicts)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def verdict(self, prop: str) -> Verdict:
        (found,) = [v for v in self.verdicts if v.property == prop]
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "passed": self.passed,
            "settings": self.settings,
            "verdicts": [asdict(v) for v in self.verdicts],
        }


# --- helpers ---------------------------------------------------------------------------------------------------


TaskRef = str | tuple[str, dict[str, Any]]
"""A task by name (default options) or as (name, options), e.g. ("vae", {"images": 2}) for small test cells."""


def _name(task: TaskRef) -> str:
    return task if isinstance(task, str) else task[0]


def _spec(task: TaskRef, estimator: str, est_params: dict, task_params: dict | None = None, **kw):
    from gradbench.runner import CellSpec

    if not isinstance(task, str):
        task, task_params = task[0], {**task[1], **(task_params or {})}
    return CellSpec(task=task, estimator=estimator, task_params=task_params or {}, estimator_params=est_params, **kw)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, GradbenchError) else f"{type(exc).__name__}: {text}"


def compatible_tasks(estimator: str, est_params: dict, tasks: Sequence[TaskRef] | None = None) -> tuple[list, list]:
    """(compatible task names, [(task, reason) skipped]) among ``tasks`` (default: every registered task)."""
    from gradbench.registry import all_tasks
    from gradbench.runner import build_estimator, build_task

    est = build_estimator(estimator, dict(est_params))
    ok, skipped = [], []
    for name in tasks if tasks is not None else list(all_tasks()):
        try:
            task = build_task(name, {})
        except GradbenchError as exc:
            skipped.append((name, str(exc)))
            continue
        reason = est.incompatibility(task)
        if reason is None:
            from gradbench.runner import cached_exact_gradient

            try:
                cached_exact_gradient(task)  # closed form, the task's own exact_expectation, or enumeration
            except GradbenchError as exc:
                reason = str(exc)
        (skipped.append((name, reason)) if reason else ok.append(name))
    return ok, skipped


def draw_estimates(
    task: TaskRef,
    estimator: str,
    est_params: dict,
    n: int,
    seed: int,
    dtype: str = "float32",
    sizes: Sequence[int] | None = None,
):
    """(estimates n x D x K, prepared cell): one fresh estimator, set up as the runner does, blocks ``sizes``."""
    from gradbench.rng import BlockRng
    from gradbench.runner import prepare

    cell = prepare(_spec(task, estimator, est_params, n_samples=max(n, 2), dtype=dtype))
    cell.estimator.setup(cell.problem, seed)
    rng = BlockRng(seed, 0, list(sizes) if sizes is not None else [n], cell.problem.theta.device)
    return cell.estimator.estimate(cell.problem, rng), cell


def _fingerprint(t) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


# --- estimator properties ------------------------------------------------------------------------------------


def declarations(estimator: str, est_params: dict | None = None) -> Verdict:
    """Declared flags present; declared ranges and unknown hyper-parameters refused (the other hyper-parameters
    at ``est_params``)."""
    from gradbench.core import Param
    from gradbench.registry import get_estimator

    cls = get_estimator(estimator)
    problems = [f"{a} not declared" for a in ("name", "summary", "family", "unbiased") if getattr(cls, a, None) is None]
    probes = 0
    for p in cls.params:
        if not isinstance(p, Param):
            problems.append(f"params holds {type(p).__name__}, not gradbench.Param")
            continue
        bad = []
        if p.low is not None:
            bad.append(p.low - 1 if not p.low_open else p.low)
        if p.high is not None:
            bad.append(p.high + 1 if not p.high_open else p.high)
        for value in bad:
            probes += 1
            try:
                cls(**{**(est_params or {}), p.name: value})
            except GradbenchError:
                continue
            except Exception as exc:
                problems.append(f"{p.name}={value!r} raised {type(exc).__name__} instead of a one-line error")
                continue
            problems.append(f"{p.name}={value!r} is outside its declared range ({p.describe_range()}) but accepted")
    probes += 1
    try:
        cls(**(est_params or {}), no_such_hyperparameter=1)
        problems.append("an unknown hyper-parameter is accepted")
    except GradbenchError:
        pass
    except Exception as exc:
        problems.append(f"an unknown hyper-parameter raised {type(exc).__name__} instead of a one-line error")
    if problems:
        return Verdict("declarations", FAIL, "; ".join(problems))
    return Verdict(
        "declarations",
        PASS,
        f"flags declared (unbiased={cls.unbiased}); refuses {probes} bad hyper-parameter value(s) (outside a "
        "declared range, unknown name)",
        {"probes": probes},
    )


def contract(estimator: str, est_params: dict, tasks: Sequence[TaskRef], n: int = 64, seed: int = 0) -> Verdict:
    """Output type, shape, dtype, device, finiteness; θ and g* untouched; on every task in float32 and float64."""
    import torch

    checked = 0
    for task in tasks:
        for dtype in ("float32", "float64"):
            try:
                from gradbench.contract import check_estimates
                from gradbench.rng import BlockRng
                from gradbench.runner import prepare

                cell = prepare(_spec(task, estimator, est_params, n_samples=n, dtype=dtype))
                theta0, grad0 = cell.problem.theta.clone(), cell.problem.exact_grad.clone()
                cell.estimator.setup(cell.problem, seed)
                out = cell.estimator.estimate(cell.problem, BlockRng(seed, 0, [n], cell.problem.theta.device))
                check_estimates(cell.estimator, out, n, cell.problem.theta)
            except Exception as exc:
                return Verdict(
                    "contract", FAIL, f"{_name(task)}, {dtype}: {_one_line(exc)}", {"task": _name(task), "dtype": dtype}
                )
            if not bool(torch.isfinite(out).all()):
                bad = int((~torch.isfinite(out)).sum())
                return Verdict("contract", FAIL, f"{_name(task)}, {dtype}: {bad} non-finite values in {n} estimates")
            if not torch.equal(cell.problem.theta, theta0) or not torch.equal(cell.problem.exact_grad, grad0):
                return Verdict(
                    "contract", FAIL, f"{_name(task)}, {dtype}: estimate() modified problem.theta or exact_grad"
                )
            checked += 1
    return Verdict(
        "contract",
        PASS,
        f"{checked} cells ({len(tasks)} tasks × float32/float64): n x D x K tensors in θ's dtype and device, finite, "
        "θ untouched",
        {"cells": checked},
    )


def same_seed(estimator: str, est_params: dict, tasks: Sequence[TaskRef], n: int = 256) -> Verdict:
    """Same seed → identical estimates; another seed → other numbers (unless the estimator is deterministic)."""
    import torch

    for task in tasks:
        a, _ = draw_estimates(task, estimator, est_params, n, seed=1)
        b, _ = draw_estimates(task, estimator, est_params, n, seed=1)
        c, _ = draw_estimates(task, estimator, est_params, n, seed=2)
        if not torch.equal(a, b):
            diff = int((a != b).sum())
            return Verdict(
                "same seed", FAIL, f"{_name(task)}: seed 1 twice gave different estimates ({diff} entries differ)"
            )
        if not torch.equal(a, a[:1].expand_as(a)) and torch.equal(a, c):
            return Verdict("same seed", FAIL, f"{_name(task)}: seeds 1 and 2 gave identical random estimates")
    return Verdict(
        "same seed", PASS, f"identical estimates for one seed, other numbers for another, {len(tasks)} tasks"
    )


def chunk_size(estimator: str, est_params: dict, tasks: Sequence[TaskRef], n: int = 5_000, seed: int = 3) -> Verdict:
    """The metrics row does not depend on the chunk size (1 block, 3 blocks, the default)."""
    from gradbench.results import TIMING_COLUMNS
    from gradbench.runner import prepare, run_cell

    timing = set(TIMING_COLUMNS)
    for task in tasks:
        block = prepare(_spec(task, estimator, est_params, n_samples=n)).block_size
        size = min(n, 2 * block + block // 2)  # several blocks, the last one short, where blocks are small
        rows = []
        for chunk in (1, 3 * block, None):
            row = run_cell(_spec(task, estimator, est_params, n_samples=size, seed=seed, chunk_size=chunk))
            rows.append({k: v for k, v in row.items() if k not in timing})
        for chunk, row in zip(("1 block", "3 blocks"), rows[:2], strict=True):
            moved = [k for k in row if row[k] != rows[2][k] and not (row[k] != row[k] and rows[2][k] != rows[2][k])]
            if moved:
                return Verdict(
                    "chunk size",
                    FAIL,
                    f"{_name(task)}: chunks of {chunk} change {', '.join(moved[:3])} (e.g. {moved[0]} "
                    f"{row[moved[0]]!r} vs {rows[2][moved[0]]!r} with the default chunk)",
                )
    return Verdict(
        "chunk size",
        PASS,
        f"identical rows for chunks of 1 block, 3 blocks and the default (≤ {n:,} estimates, {len(tasks)} tasks)",
    )


def _global_states() -> dict[str, Any]:
    import torch

    states: dict[str, Any] = {"torch": torch.get_rng_state(), "random": random.getstate()}
    if "numpy" in sys.modules:
        import numpy as np

        states["numpy"] = np.random.get_state()
    return states


def _same_state(a: Any, b: Any) -> bool:
    import numpy as np
    import torch

    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return all(_same_state(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return bool(np.array_equal(a, b))
    return a == b


GLOBAL_NAMES = {
    "torch": "torch's global RNG (torch.rand/randn/… without generator=)",
    "numpy": "numpy's global RNG (np.random.*)",
    "random": "Python's random module",
}


def global_rng(estimator: str, est_params: dict, tasks: Sequence[TaskRef], n: int = 256, seed: int = 5) -> Verdict:
    """No draw from torch's, numpy's or Python's global generator: their states are untouched by a cell, and
    reseeding them does not change the estimates."""
    import numpy as np
    import torch

    for task in tasks:
        before = _global_states()
        first, _ = draw_estimates(task, estimator, est_params, n, seed)
        after = _global_states()
        used = [GLOBAL_NAMES[k] for k in before if k in after and not _same_state(before[k], after[k])]
        if "numpy" in after and "numpy" not in before:
            used.append(GLOBAL_NAMES["numpy"] + " (numpy imported during the call)")
        if used:
            return Verdict(
                "global RNG",
                FAIL,
                f"{_name(task)}: draws from {' and '.join(used)}; take randomness from rng",
                {"generators": used},
            )
        with torch.random.fork_rng(devices=[]):
            state_py, state_np = random.getstate(), np.random.get_state()
            try:
                outputs = []
                for perturbed in (12345, 54321):
                    torch.manual_seed(perturbed)
                    np.random.seed(perturbed)
                    random.seed(perturbed)
                    outputs.append(draw_estimates(task, estimator, est_params, n, seed)[0])
            finally:
                random.setstate(state_py)
                np.random.set_state(state_np)
        if not (torch.equal(first, outputs[0]) and torch.equal(first, outputs[1])):
            return Verdict(
                "global RNG",
                FAIL,
                f"{_name(task)}: estimates change when the global seeds (torch, numpy, "
                "random) change; take all randomness from rng",
            )
    return Verdict("global RNG", PASS, "torch/numpy/random global states untouched; reseeding them changes nothing")


def two_processes(
    estimator: str,
    est_params: dict,
    task: TaskRef,
    plugins: Sequence[str] = (),
    surrogates: Sequence[str] = (),
    n: int = 512,
    seed: int = 7,
) -> Verdict:
    """A fresh Python process loading the same plug-ins gives bit-identical estimates."""
    here, _ = draw_estimates(task, estimator, est_params, n, seed)
    args = json.dumps([task, estimator, est_params, n, seed, list(map(str, plugins)), list(surrogates)])
    from gradbench.isolation import child_env, python_command  # nothing imported from the current directory

    code = "import json, sys\nfrom gradbench.battery import _child\nprint(_child(*json.loads(sys.argv[1])))\n"
    try:
        proc = subprocess.run(
            [*python_command(code), args], capture_output=True, text=True, timeout=300, env=child_env()
        )
    except subprocess.TimeoutExpired:
        return Verdict("two processes", FAIL, "the second process did not finish within 300 s")
    if proc.returncode != 0:
        tail = " ".join(proc.stderr.strip().splitlines()[-1:]) or f"exit code {proc.returncode}"
        return Verdict("two processes", FAIL, f"the second process failed: {tail}")
    there = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    mine = _fingerprint(here)
    if there != mine:
        return Verdict(
            "two processes",
            FAIL,
            f"{_name(task)}: seed {seed} gave different estimates in another process (sha256 {mine} here, "
            f"{there} there)",
        )
    return Verdict(
        "two processes", PASS, f"{_name(task)}: identical estimates in a fresh process (sha256 {mine}, n = {n})"
    )


def _child(task, estimator, est_params, n, seed, plugins, surrogates) -> str:
    """Entry point of the second process of :func:`two_processes`."""
    import torch

    from gradbench.api import load_plugins

    torch.set_num_threads(1)
    load_plugins(plugins)
    if surrogates:
        from gradbench.surrogate import register_cli_surrogate

        for spec in surrogates:
            register_cli_surrogate(spec)
    return _fingerprint(draw_estimates(task, estimator, est_params, n, seed)[0])


@dataclass
class BiasCell:
    task: str
    n: int
    pvalue: float
    adjusted: float
    bias: float
    grad_norm: float
    detectable: float  # smallest detectable bias (power 0.8), absolute
    variance: float


def bias_cells(
    estimator: str,
    est_params: dict,
    tasks: Sequence[TaskRef],
    samples: int = DEFAULT_SAMPLES,
    seed: int = 11,
    alpha: float = DEFAULT_ALPHA,
    dtype: str = "float32",
    on_cell: Callable[[str], None] | None = None,
) -> list[BiasCell]:
    """Run one cell per task (``samples`` f evaluations' worth of estimates) and test H0: E g = g*, Holm across
    the cells; each cell's detectable bias at the Bonferroni level α/(m·P)."""
    from gradbench.runner import build_estimator, build_task, run_cell
    from gradbench.significance import holm, normal_quantile

    est = build_estimator(estimator, dict(est_params))
    rows = []
    for task in tasks:
        if on_cell is not None:
            on_cell(task)
        spec = _spec(task, estimator, est_params, seed=seed, dtype=dtype)
        evals = est.evals_on(build_task(spec.task, spec.task_params))  # e.g. D·K for IndeCateR
        per = max(2_000, samples // max(1, evals))
        rows.append(run_cell(_spec(task, estimator, est_params, n_samples=per, seed=seed, dtype=dtype)))
    adjusted = holm([r["bias_pvalue"] for r in rows]) if rows else []
    m = len(rows)
    cells = []
    for row, adj in zip(rows, adjusted, strict=True):
        P = row["D"] * row["K"]
        z = normal_quantile(1 - alpha / (2 * m * P)) + normal_quantile(POWER)
        detectable = z * math.sqrt(max(row["variance"], 0.0) / row["n_samples"])
        cells.append(
            BiasCell(
                row["task"],
                row["n_samples"],
                row["bias_pvalue"],
                adj,
                row["bias"],
                row["grad_norm"],
                detectable,
                row["variance"],
            )
        )
    return cells


def _rel(x: float, norm: float) -> str:
    return f"{x / norm:.2g}·‖g*‖" if norm > 0 else f"{x:.2g}"


def bias_verdict(declared_unbiased: bool, cells: list[BiasCell], alpha: float, skipped: Sequence = ()) -> Verdict:
    """``unbiased`` (declared unbiased) or ``biased`` (declared biased) from the cells of :func:`bias_cells`."""
    prop = "unbiased" if declared_unbiased else "biased"
    if not cells:
        return Verdict(prop, SKIP, "no compatible task to test on" + (f" ({skipped[0][1]})" if skipped else ""))
    numbers = {"alpha": alpha, "cells": [asdict(c) for c in cells], "skipped": [list(s) for s in skipped]}
    rejected = [c for c in cells if c.adjusted <= alpha]
    worst = min(cells, key=lambda c: c.pvalue)
    detect = ", ".join(f"{c.task} {_rel(c.detectable, c.grad_norm)}" for c in cells)
    design = f"{len(cells)} cells, α = {alpha:g} Holm across cells (Bonferroni over components)"
    if declared_unbiased:
        if rejected:
            where = "; ".join(
                f"{c.task}: p = {c.pvalue:.2g} (Holm {c.adjusted:.2g}), ‖bias‖ = {_rel(c.bias, c.grad_norm)}"
                for c in rejected
            )
            return Verdict(
                prop,
                FAIL,
                f"declared unbiased, bias detected on {len(rejected)}/{len(cells)} cells — {where}; {design}",
                numbers,
            )
        return Verdict(
            prop,
            PASS,
            f"no bias detected: smallest p = {worst.pvalue:.2g} ({worst.task}); {design}; "
            f"detectable bias (power 0.8): {detect}",
            numbers,
        )
    if rejected:
        where = ", ".join(f"{c.task} (p = {c.pvalue:.2g}, ‖bias‖ = {_rel(c.bias, c.grad_norm)})" for c in rejected)
        return Verdict(
            prop, PASS, f"declared biased, and biased on {len(rejected)}/{len(cells)} cells: {where}; {design}", numbers
        )
    return Verdict(
        prop,
        PASS,
        f"declared biased, but no bias detected on any of {len(cells)} cells (smallest p = "
        f"{worst.pvalue:.2g}; detectable: {detect}): it may be unbiased here",
        numbers,
    )


# --- task properties -------------------------------------------------------------------------------------------


def task_contract(task: str, task_params: dict) -> Verdict:
    from gradbench.runner import build_task

    try:
        t = build_task(task, dict(task_params))
    except GradbenchError as exc:
        return Verdict("contract", FAIL, str(exc))
    where = "one-hot and simplex" if t.relaxable else "one-hot"
    text = f"D = {t.D}, K = {t.K}: initial_logits D x K; f one finite value per {where} configuration (1, 2 batch dims)"
    return Verdict("contract", PASS, text)


def exact_gradient_vs_fd(task: str, task_params: dict, h: float = 1e-5) -> Verdict:
    """g* against central finite differences of E f enumerated from f itself (or h against f when too large)."""
    import torch

    from gradbench.contract import probe_configurations
    from gradbench.exact import ENUMERATION_LIMIT, enumerate_expectation, exact_gradient
    from gradbench.runner import build_task

    t = build_task(task, dict(task_params))
    theta = t.initial_logits().detach().to(torch.float64)
    value, grad = exact_gradient(t, theta)
    if t.n_configurations <= ENUMERATION_LIMIT and t.D * t.K <= 4096:
        fd = torch.zeros_like(theta)
        for idx in range(theta.numel()):
            step = torch.zeros_like(theta).view(-1)
            step[idx] = h
            step = step.view_as(theta)
            up = enumerate_expectation(t, theta + step)[0]
            down = enumerate_expectation(t, theta - step)[0]
            fd.view(-1)[idx] = (up - down) / (2 * h)
        scale = max(float(grad.abs().max()), float(fd.abs().max()), 1e-12)
        err = float((grad - fd).abs().max())
        enum_value = enumerate_expectation(t, theta)[0]
        numbers = {"max_abs_error": err, "scale": scale, "value": value, "enumerated_value": enum_value}
        tol = 1e-5 * scale + 1e-9
        if err > tol or abs(enum_value - value) > 1e-7 * max(1.0, abs(value)):
            ratio = float((grad * fd).sum() / (fd * fd).sum()) if float((fd * fd).sum()) > 0 else math.nan
            return Verdict(
                "exact gradient",
                FAIL,
                f"g* differs from finite differences of enumerated E f: max |Δ| = "
                f"{err:.3g} (tolerance {tol:.2g}, ‖g*‖∞ = {scale:.3g}; g* ≈ {ratio:.4g} × FD); E f "
                f"{value:.6g} vs enumerated {enum_value:.6g}",
                numbers,
            )
        return Verdict(
            "exact gradient",
            PASS,
            f"matches central differences (h = {h:g}) of E f enumerated from f "
            f"over {t.n_configurations:,} configurations: max |Δ| = {err:.2g} ({err / scale:.1g} relative)",
            numbers,
        )
    sep = t.separable_values()
    if sep is None:
        return Verdict(
            "exact gradient",
            SKIP,
            f"{t.K}^{t.D} configurations: too many to enumerate f over, and no "
            "separable closed form to check against f",
        )
    z = probe_configurations(t.D, t.K, 16)
    direct = t.f(z).to(torch.float64)
    via_h = (z * sep.to(torch.float64)).sum((-1, -2))
    err = float((direct - via_h).abs().max())
    scale = max(float(direct.abs().max()), 1e-12)
    if err > 1e-6 * scale:
        return Verdict(
            "exact gradient",
            FAIL,
            f"separable_values disagree with f on one-hot configurations: "
            f"max |f − Σ h z| = {err:.3g} (|f| up to {scale:.3g})",
            {"max_abs_error": err},
        )
    return Verdict(
        "exact gradient",
        PASS,
        f"too large to enumerate ({t.K}^{t.D}); separable_values match f on 16 configurations (max |Δ| = {err:.2g})",
        {"max_abs_error": err},
    )


def f_grad_vs_autograd(task: str, task_params: dict) -> Verdict:
    import torch

    from gradbench.contract import probe_configurations, probe_simplex
    from gradbench.runner import build_task

    t = build_task(task, dict(task_params))
    points = [("one-hot", probe_configurations(t.D, t.K))]
    if t.relaxable:
        points.append(("simplex", probe_simplex(t.D, t.K)))
    if t.f_grad(points[0][1].clone()) is None:
        return Verdict("f_grad", SKIP, "no closed-form f_grad (estimators use autograd)")
    worst = 0.0
    for kind, z in points:
        closed = t.f_grad(z.clone())
        leaf = z.clone().requires_grad_(True)
        with torch.enable_grad():
            (auto,) = torch.autograd.grad(t.f(leaf).sum(), leaf)
        err = float((closed - auto).abs().max())
        scale = max(float(auto.abs().max()), 1e-12)
        worst = max(worst, err / scale)
        if err > 1e-6 * scale + 1e-12:
            return Verdict(
                "f_grad",
                FAIL,
                f"f_grad differs from autograd of f on {kind} z: max |Δ| = {err:.3g} (|∂f/∂z| up to {scale:.3g})",
            )
    return Verdict(
        "f_grad",
        PASS,
        f"matches autograd of f on {' and '.join(k for k, _ in points)} points (relative error {worst:.1g})",
    )


def relaxation(task: str, task_params: dict, eps: float = 1e-7) -> Verdict:
    import torch

    from gradbench.contract import probe_configurations, probe_simplex
    from gradbench.runner import build_task

    t = build_task(task, dict(task_params))
    if not t.relaxable:
        return Verdict("relaxation", SKIP, "declared not relaxable (f on one-hot z only)")
    z = probe_configurations(t.D, t.K, 8)
    near = (1 - eps) * z + eps * probe_simplex(t.D, t.K, 8)
    at, close = t.f(z).to(torch.float64), t.f(near).to(torch.float64)
    err = float((at - close).abs().max())
    scale = max(float(at.abs().max()), 1.0)
    if err > 1e-4 * scale:
        return Verdict(
            "relaxation",
            FAIL,
            f"f inside the simplex does not extend f on the vertices: |f(e) − "
            f"f((1−ε)e + ε·u)| = {err:.3g} at ε = {eps:g}",
        )
    return Verdict(
        "relaxation",
        PASS,
        f"f continuous at the vertices: |f(e) − f((1−ε)e + ε·u)| ≤ {err:.2g} (ε = {eps:g}, 8 configurations)",
    )


def reference(task: str, task_params: dict, samples: int, seed: int, alpha: float) -> Verdict:
    """REINFORCE (unbiased for any f) must be unbiased against the task's g*."""
    from gradbench.runner import run_cell

    row = run_cell(_spec(task, "reinforce", {}, task_params, n_samples=samples, seed=seed))
    p = row["bias_pvalue"]
    text = f"REINFORCE, {samples:,} estimates: p = {p:.2g} (α = {alpha:g}), ‖mean − g*‖ = {row['bias']:.3g}"
    status = FAIL if p <= alpha else PASS
    prefix = "g* disagrees with REINFORCE's mean: " if status == FAIL else ""
    return Verdict("reference", status, prefix + text, {"pvalue": p, "bias": row["bias"]})


# --- the whole battery -----------------------------------------------------------------------------------------


def audit(
    name: str,
    *,
    kind: str | None = None,
    est_opts: dict[str, Any] | None = None,
    task_opts: dict[str, Any] | None = None,
    tasks: Sequence[TaskRef] | None = None,
    samples: int = DEFAULT_SAMPLES,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 11,
    processes: bool = True,
    plugins: Sequence[str] = (),
    surrogates: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> AuditReport:
    """Audit the estimator or task ``name`` (``kind``: "estimator", "task", or None to look it up, estimators
    first). Estimators are tested on ``tasks`` (default: every registered task they can run on); ``samples`` is the
    bias test's budget of f evaluations per cell; ``seed`` its seed; ``processes=False`` skips the second-process
    check (it costs a Python start-up)."""
    from gradbench.api import load_plugins
    from gradbench.registry import ESTIMATORS, TASKS

    load_plugins(plugins)
    if surrogates:
        from gradbench.surrogate import register_cli_surrogate

        for spec in surrogates:
            register_cli_surrogate(spec)
    if not (0 < alpha < 1):
        raise GradbenchError(f"alpha must be in (0, 1), got {alpha}")
    if samples < 2:
        raise GradbenchError(f"samples must be at least 2, got {samples}")
    if kind is None:
        kind = "estimator" if name in ESTIMATORS else "task" if name in TASKS else None
        if kind is None:
            from gradbench.registry import get_estimator

            get_estimator(name)  # raises the usual unknown-name error with a suggestion
    if kind not in ("estimator", "task"):
        raise GradbenchError(f"kind must be estimator or task, got {kind!r}")
    settings = {"samples": samples, "alpha": alpha, "seed": seed, "power": POWER}
    step = progress or (lambda _: None)
    if kind == "task":
        task_params = dict(task_opts or {})
        verdicts = [task_contract(name, task_params)]
        if verdicts[0].status == PASS:
            for check in (exact_gradient_vs_fd, f_grad_vs_autograd, relaxation):
                step(check.__name__)
                verdicts.append(_safe(check.__name__, lambda c=check: c(name, task_params)))
            step("reference")
            verdicts.append(_safe("reference", lambda: reference(name, task_params, samples, seed, alpha)))
        return AuditReport("task", name, verdicts, settings)
    est_params = dict(est_opts or {})
    from gradbench.runner import build_estimator

    build_estimator(name, dict(est_params))  # bad hyper-parameters: one line, exit 2
    ok, skipped = compatible_tasks(name, est_params, tasks)
    settings["tasks"], settings["skipped"] = ok, [list(s) for s in skipped]
    verdicts = [_safe("declarations", lambda: declarations(name, est_params))]
    if not ok:
        verdicts.append(Verdict("contract", SKIP, "no compatible task: " + "; ".join(r for _, r in skipped[:2])))
        return AuditReport("estimator", name, verdicts, settings)
    step("contract")
    verdicts.append(_safe("contract", lambda: contract(name, est_params, ok)))
    if verdicts[-1].status == FAIL:  # nothing else can be measured on a broken output
        return AuditReport("estimator", name, verdicts, settings)
    for label, check in (("same seed", same_seed), ("chunk size", chunk_size), ("global RNG", global_rng)):
        step(label)
        verdicts.append(_safe(label, lambda c=check: c(name, est_params, ok)))
    if processes:
        step("two processes")
        verdicts.append(_safe("two processes", lambda: two_processes(name, est_params, ok[0], plugins, surrogates)))
    else:
        verdicts.append(Verdict("two processes", SKIP, "not run (processes=False)"))
    declared = bool(build_estimator(name, dict(est_params)).unbiased)
    prop = "unbiased" if declared else "biased"
    cells = _safe(
        prop, lambda: bias_cells(name, est_params, ok, samples, seed, alpha, on_cell=lambda t: step(f"bias on {t}"))
    )
    verdicts.append(cells if isinstance(cells, Verdict) else bias_verdict(declared, cells, alpha, skipped))
    return AuditReport("estimator", name, verdicts, settings)


T = TypeVar("T")


def _safe(prop: str, work: Callable[[], T]) -> T | Verdict:
    """A check that crashes is a FAIL of its property, with the one-line reason."""
    try:
        return work()
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        return Verdict(prop, FAIL, _one_line(exc))
