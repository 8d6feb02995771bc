"""False-alarm rate of `gradbench check`'s statistical tier on an unchanged tree.

Each replication makes a baseline of a grid (every registered estimator × task × τ ∈ {0.5, 1}, at a fixed number of
estimates per cell and its own seeds) and checks it with fresh seeds (`--fresh-seeds`), exactly as `gradbench check`
does. Nothing changed between the two runs, so every failure is a false alarm. Reported, with Clopper–Pearson 95%
intervals:

- failures: runs that `gradbench check` would fail (significant after Holm *and* beyond the practical thresholds);
- Holm rejections: runs with at least one Holm-significant test whatever its size (thresholds off): the family-wise
  error rate of the tests themselves, which Holm bounds by α;
- the same family-wise rate at α = 0.05 and 0.1 (more events, a sharper look at the calibration);
- per-test calibration: the fraction of raw p-values below 0.05, 0.01 and 0.001, per kind of test (under the null
  hypothesis at most those levels; the Bonferroni-combined bias tests are conservative). The exact estimator's
  tests are left out of these fractions (zero variance: p = 1 by construction).

Replications are independent (every run has its own seeds), so the intervals are exact. The default of 10,000
estimates per cell is the smallest size `--update` gives a cell, where the normal approximations are weakest.

    .venv/bin/python benchmarks/false_alarm.py --runs 200            # about 4 minutes on 1 thread here
    .venv/bin/python benchmarks/false_alarm.py --runs 20 --samples 50000 --json out.json
    .venv/bin/python benchmarks/false_alarm.py --runs 2000 -e reinforce   # the tests against the exact gradient
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradbench.baseline import Baseline, BaselineCell, current_environment  # noqa: E402
from gradbench.check import CheckOptions, GridSettings, fresh_seed, grid_cells, run_check  # noqa: E402
from gradbench.runner import run_cell  # noqa: E402
from gradbench.significance import clopper_pearson  # noqa: E402

LEVELS = (0.05, 0.01, 0.001)
FAMILY_LEVELS = (0.05, 0.1)  # more events than at α = 0.01: a sharper look at Holm's calibration


def make_baseline(specs, samples: int, run: int) -> Baseline:
    cells = []
    for spec in specs:
        details: dict = {}
        seed = fresh_seed(0xFA15E + run, spec.seed)
        row = run_cell(replace(spec, n_samples=samples, seed=seed), details=details)
        row["seed"] = spec.seed  # the cell's identity; the check derives its own fresh seed from it
        cells.append(BaselineCell(row, details["mean_dev"].tolist(), details["component_var"].tolist()))
    env = current_environment(specs[0].dtype, "cpu", torch.get_num_threads())
    return Baseline(Path("<memory>"), env, cells)


def interval(k: int, n: int) -> str:
    lo, hi = clopper_pearson(k, n)
    return f"{k}/{n} = {k / n:.4f} (95% CI {lo:.4f} – {hi:.4f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--samples", type=int, default=10_000, help="estimates per cell, baseline and check")
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--minutes", type=float, default=None, help="stop early after this long")
    parser.add_argument("--estimator", "-e", action="append", default=[], help="only these estimators (repeatable)")
    parser.add_argument("--task", "-t", action="append", default=[], help="only these tasks (repeatable)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    specs, _ = grid_cells(GridSettings(estimators=tuple(args.estimator), tasks=tuple(args.task)))
    options = CheckOptions(alpha=args.alpha, fresh_seeds=True)
    failures = holm_runs = runs = 0
    pvalues: dict[str, list[float]] = {}
    min_adjusted: list[float] = []
    started = time.perf_counter()
    for r in range(args.runs):
        if args.minutes is not None and time.perf_counter() - started > 60 * args.minutes:
            break
        baseline = make_baseline(specs, args.samples, r)
        result = run_check(baseline, replace(options, seed_base=r))
        runs += 1
        failed = result.exit_code == 1
        tests = [t for c in result.cells for t in c.tests]
        significant = any(t.adjusted <= args.alpha for t in tests)
        failures += failed
        holm_runs += significant
        min_adjusted.append(min(t.adjusted for t in tests))
        for c in result.cells:
            if c.base["variance"] == 0:  # the exact estimator: its tests are degenerate (p = 1)
                continue
            for t in c.tests:
                pvalues.setdefault(f"{t.metric} vs {t.against}", []).append(t.pvalue)
        if failed or significant:
            worst = min(tests, key=lambda t: t.adjusted)
            cells = [c.label for c in result.cells if c.status == "worse"]
            print(f"run {r}: {'FAIL' if failed else 'Holm rejection'}; smallest Holm p {worst.adjusted:.3g}; {cells}")
        if (r + 1) % 20 == 0:
            print(f"... {r + 1} runs, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    seconds = time.perf_counter() - started
    summary = {
        "runs": runs,
        "cells": len(specs),
        "tests_per_run": 2 * len(specs),
        "samples_per_cell": args.samples,
        "alpha": args.alpha,
        "threads": torch.get_num_threads(),
        "seconds": round(seconds, 1),
        "failures": failures,
        "failure_ci95": clopper_pearson(failures, runs),
        "holm_rejections": holm_runs,
        "holm_rejection_ci95": clopper_pearson(holm_runs, runs),
        "family_wise": {str(level): sum(p <= level for p in min_adjusted) for level in FAMILY_LEVELS},
        "per_test": {
            kind: {str(level): sum(p <= level for p in ps) for level in LEVELS} | {"tests": len(ps)}
            for kind, ps in sorted(pvalues.items())
        },
    }
    print(
        f"{runs} runs × {len(specs)} cells ({2 * len(specs)} tests each), {args.samples:,} estimates per cell, "
        f"α = {args.alpha}, {torch.get_num_threads()} thread, {seconds:.0f} s"
    )
    print(f"false alarms (check fails):          {interval(failures, runs)}")
    print(f"runs with a Holm rejection (FWER):   {interval(holm_runs, runs)}")
    for level in FAMILY_LEVELS:
        print(f"runs with a Holm rejection at α = {level}: {interval(sum(p <= level for p in min_adjusted), runs)}")
    for kind, ps in sorted(pvalues.items()):
        parts = ", ".join(f"p ≤ {level}: {interval(sum(p <= level for p in ps), len(ps))}" for level in LEVELS)
        print(f"per test, {kind}: {parts}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
