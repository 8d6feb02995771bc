"""The report of ``gradbench check``: rich tables for the terminal, Markdown for CI logs and bots, JSON for tools.

Cells are grouped as worse / changed (exact tier) / better / unchanged / not comparable; every cell shows its
numbers, the thresholds, and the smallest change it could have detected (its power).
"""

from __future__ import annotations

import json
import math
from typing import Any

from gradbench.check import STATUSES, CellResult, CheckResult, TestResult, format_p

TITLES = {
    "worse": "worse",
    "changed": "changed behaviour (same environment and seeds, different numbers)",
    "better": "better",
    "unchanged": "unchanged",
    "not comparable": "not comparable",
}


def _num(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.{digits}g}"


def _p(t: TestResult) -> str:
    return f"p {format_p(t.adjusted)}" if not math.isnan(t.adjusted) else ""


def variance_text(r: CellResult) -> str:
    t = r.test("variance")
    if t is None:
        return "—"
    return f"×{_num(t.effect)} ({_p(t)})"


def bias_text(r: CellResult) -> str:
    t = r.test("bias")
    if t is None:
        return "—"
    what = "‖bias‖" if t.against == "exact" else "Δ"
    return f"{what} {_num(t.effect)} ({_p(t)})"


def detectable_text(r: CellResult) -> str:
    parts = []
    for t in r.tests:
        mark = "!" if t.weak else ""
        if t.metric == "variance":
            parts.append(f"var ×{_num(t.detectable)}{mark}")
        else:
            parts.append(f"bias {_num(t.detectable)}{mark}")
    return ", ".join(parts) or "—"


def speed_text(r: CellResult) -> str:
    if math.isnan(r.speed_ratio):
        return "—"
    return f"×{r.speed_ratio:.2f}" + ("" if r.speed_timed else " (short)")


def summary_lines(check: CheckResult) -> list[str]:
    o = check.options
    counts = ", ".join(f"{len(check.by_status(s))} {s}" for s in STATUSES if check.by_status(s))
    verdict = {0: "PASS", 1: "FAIL (regression)", 2: "FAIL (--strict)"}[check.exit_code]
    if check.exit_code == 1 and not any(c.status in ("worse", "changed") for c in check.cells):
        verdict = "FAIL (cells not comparable; --allow-missing NAME skips them)"
    env0 = check.baseline_env
    lines = [
        f"gradbench check: {verdict} — {len(check.cells)} cells: {counts}",
        f"tier: {check.tier} ({check.tier_reason})",
        f"baseline: {check.baseline_path} (gradbench {env0['gradbench']}, torch {env0['torch']}, "
        f"numpy {env0['numpy']}, {env0['platform']}, {env0['device']} {env0['dtype']}, {env0['threads']} threads)",
    ]
    if check.differences:
        lines.append("environment now: " + "; ".join(f"{k} {a!r} → {b!r}" for k, (a, b) in check.differences.items()))
    if check.tier == "statistical":
        seeds = "the baseline's" if check.seed_base is None else f"fresh (--seed-base {check.seed_base})"
        lines.append(
            f"tests: {check.n_tests} (bias and variance per cell), Holm at α = {o.alpha:g}; a cell fails when a "
            f"change is significant and beyond its threshold: variance ×{o.variance_ratio:g}, bias "
            f"{o.bias_threshold:g}·‖g*‖; detectable = smallest change found with power {o.power:g}; seeds: {seeds}"
        )
        lines.append(
            "columns: variance = V/V⁰; bias = ‖bias‖/‖g*‖ (declared unbiased, against the exact gradient) or "
            "Δ = change of the mean/‖g*‖ (against the baseline); p = Holm-adjusted; speed = estimates/s ratio"
        )
    else:
        lines.append(f"every metric column must reproduce to a relative {o.exact_rtol:g}")
    speed = "reported only" if o.fail_on_speed is None else f"fails when slower than ×{o.fail_on_speed:g}"
    lines.append(f"speed: {speed} (cells timed under {o.min_timed_seconds:g} s are never failed on speed)")
    lines.append(f"took {check.seconds:.1f} s")
    return lines


def _moved_text(r: CellResult) -> str:
    return "; ".join(f"{col} {_num(a, 10)} → {_num(b, 10)}" for col, (a, b) in r.moved.items())


def _row_cells(check: CheckResult, r: CellResult) -> list[str]:
    why = ["; ".join(r.reasons)] if r.status != "unchanged" else []  # unchanged cells need no explanation
    if r.status == "not comparable":
        return [r.label, *why]
    if check.tier == "exact":
        return [r.label, _moved_text(r) or "reproduced", speed_text(r), *why]
    return [r.label, variance_text(r), bias_text(r), detectable_text(r), speed_text(r), *why]


def _headers(check: CheckResult, status: str) -> list[str]:
    why = ["why"] if status != "unchanged" else []
    if status == "not comparable":
        return ["cell", *why]
    if check.tier == "exact":
        return ["cell", "moved", "speed", *why]
    return ["cell", "variance", "bias", "detectable", "speed", *why]


QUIET_STATUSES = ("unchanged",)
"""Groups of cells listed only with ``--verbose`` (the one-line counts always name them)."""


def grouped(messages: list[str]) -> list[tuple[str, list[str]]]:
    """Messages grouped by their kind (the text before the first ': '), in first-seen order: (kind, details)."""
    groups: dict[str, list[str]] = {}
    for message in messages:
        kind, sep, rest = message.partition(": ")
        groups.setdefault(kind if sep else message, []).append(rest if sep else "")
    return list(groups.items())


def _where(details: list[str]) -> str:
    """'bernoulli 22, quadratic 6': how many of the grouped cells are on each task."""
    tasks: dict[str, int] = {}
    for text in details:
        task = text.split(" on ", 1)[1].split(" ", 1)[0] if " on " in text else "?"
        tasks[task] = tasks.get(task, 0) + 1
    return ", ".join(f"{t} {n}" for t, n in tasks.items())


def render_rich(check: CheckResult, console, verbose: bool = False) -> None:
    """Failures first, then one line of counts; explanations, unchanged cells and each warning with ``verbose``."""
    from rich.table import Table

    style = {0: "bold green", 1: "bold red", 2: "bold yellow"}[check.exit_code]
    lines = summary_lines(check)
    console.print(lines[0], style=style, markup=False, highlight=False)
    for line in lines[1 : None if verbose else 4]:
        if verbose or line.startswith(("tier:", "baseline:", "environment now:")):
            console.print(line, style="dim", markup=False, highlight=False)
    order = list(STATUSES)
    failing_first = sorted(order, key=lambda s: (s not in ("worse", "changed", "not comparable"), order.index(s)))
    for status in failing_first:
        cells = check.by_status(status)
        if not cells or (status in QUIET_STATUSES and not verbose):
            continue
        table = Table(title=f"{TITLES[status]} ({len(cells)})", title_justify="left")
        for h in _headers(check, status):
            table.add_column(h, overflow="fold")
        for r in cells:
            table.add_row(*_row_cells(check, r))
        console.print(table)
    quiet = [f"{len(check.by_status(s))} {s}" for s in QUIET_STATUSES if check.by_status(s)]
    if quiet and not verbose:
        console.print(f"{', '.join(quiet)} (listed with --verbose)", markup=False, highlight=False)
    for kind, details in grouped(check.warnings):
        if verbose or len(details) == 1:
            for text in details:
                console.print(f"warning: {kind}{': ' + text if text else ''}", style="yellow", markup=False)
        else:
            console.print(
                f"warning: {len(details)} cells {kind} ({_where(details)}; each with --verbose)",
                style="yellow",
                markup=False,
                highlight=False,
            )
    for kind, details in grouped(check.notes):
        for text in details if verbose or len(details) == 1 else []:
            console.print(f"note: {kind}{': ' + text if text else ''}", markup=False, highlight=False)
        if not verbose and len(details) > 1:
            console.print(f"note: {len(details)} × {kind} (each with --verbose)", markup=False, highlight=False)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(check: CheckResult) -> str:
    lines = summary_lines(check)
    out = [f"## {lines[0]}", ""] + [f"- {line}" for line in lines[1:]] + [""]
    for status in STATUSES:
        cells = check.by_status(status)
        if not cells:
            continue
        headers = _headers(check, status)
        out += [f"### {TITLES[status]} ({len(cells)})", ""]
        out.append("| " + " | ".join(headers) + " |")
        out.append("|" + "---|" * len(headers))
        for r in cells:
            out.append("| " + " | ".join(_md_escape(c) for c in _row_cells(check, r)) + " |")
        out.append("")
    if check.warnings:
        out += ["### warnings", ""] + [f"- {_md_escape(w)}" for w in check.warnings] + [""]
    if check.notes:
        out += ["### notes", ""] + [f"- {_md_escape(n)}" for n in check.notes] + [""]
    return "\n".join(out)


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x


def to_dict(check: CheckResult) -> dict[str, Any]:
    o = check.options
    cells = []
    for r in check.cells:
        cells.append(
            {
                "cell": r.label,
                "status": r.status,
                "reasons": r.reasons,
                "task": r.base["task"],
                "task_params": r.base["task_params"],
                "estimator": r.base["estimator"],
                "estimator_params": r.base["estimator_params"],
                "tau": r.base["tau"],
                "baseline_seed": r.base["seed"],
                "seed": r.seed,
                "n_samples": r.base["n_samples"],
                "tests": [
                    {
                        "metric": t.metric,
                        "against": t.against,
                        "effect": t.effect,
                        "threshold": t.threshold,
                        "pvalue": t.pvalue,
                        "holm_pvalue": t.adjusted,
                        "detectable": t.detectable,
                        "too_weak": t.weak,
                        "verdict": t.verdict,
                        "detail": t.detail,
                    }
                    for t in r.tests
                ],
                "moved": {k: {"baseline": a, "new": b} for k, (a, b) in r.moved.items()},
                "speed_ratio": r.speed_ratio,
                "speed_timed": r.speed_timed,
                "baseline": {k: r.base[k] for k in ("variance", "bias_sq", "estimates_per_sec")},
                "new": None if r.new is None else {k: r.new[k] for k in ("variance", "bias_sq", "estimates_per_sec")},
            }
        )
    return _jsonable(
        {
            "passed": check.passed,
            "exit_code": check.exit_code,
            "tier": check.tier,
            "tier_reason": check.tier_reason,
            "baseline": check.baseline_path,
            "environment": {
                "baseline": check.baseline_env,
                "current": check.env,
                "differences": {k: list(v) for k, v in check.differences.items()},
            },
            "seed_base": check.seed_base,
            "alpha": o.alpha,
            "tests": check.n_tests,
            "thresholds": {
                "variance_ratio": o.variance_ratio,
                "bias": o.bias_threshold,
                "power": o.power,
                "fail_on_speed": o.fail_on_speed,
            },
            "counts": {s: len(check.by_status(s)) for s in STATUSES},
            "cells": cells,
            "warnings": check.warnings,
            "notes": check.notes,
            "seconds": check.seconds,
        }
    )


def render_json(check: CheckResult) -> str:
    return json.dumps(to_dict(check), indent=2, ensure_ascii=False)
