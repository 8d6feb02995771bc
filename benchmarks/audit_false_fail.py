"""False-fail rate of `gradbench audit` on the built-in estimators (which are sound: every FAIL is a false one).

1. Once: the whole battery (every property, default sizes unless --samples) on every built-in estimator; prints
   one line per estimator with its verdicts (all must PASS).
2. --runs times, with fresh seeds: the battery's only random verdict, the bias test (``unbiased`` for declared
   unbiased estimators: m cells, Holm at α), on every declared-unbiased built-in. Counts the audits that FAIL and
   the single cells with p ≤ α, with 95 % Clopper–Pearson intervals. (Every other property is deterministic: a
   sound estimator passes it at every seed.)

    .venv/bin/python benchmarks/audit_false_fail.py --runs 100 --samples 20000 [--minutes 40] [--skip-full]
"""

from __future__ import annotations

import argparse
import time
import zlib

import torch

from gradbench import battery
from gradbench.registry import all_estimators
from gradbench.significance import clopper_pearson


def default_hparams(cls) -> dict:
    if not cls.has_tau():
        return {}
    (tau,) = [p for p in cls.params if p.name == "tau"]
    return {"tau": max(0.5, tau.low or 0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--samples", type=int, default=20_000, help="f evaluations per bias cell")
    parser.add_argument("--alpha", type=float, default=battery.DEFAULT_ALPHA)
    parser.add_argument("--minutes", type=float, default=60.0, help="stop starting new runs after this")
    parser.add_argument("--skip-full", action="store_true", help="skip step 1 (the whole battery once)")
    parser.add_argument("--first-run", type=int, default=0, help="index of the first run (to split runs over jobs)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    estimators = all_estimators()
    t0 = time.time()
    if not args.skip_full:
        print(f"step 1: the whole battery on every built-in estimator ({args.samples:,} f evaluations per bias cell)")
        for name, cls in estimators.items():
            report = battery.audit(name, est_opts=default_hparams(cls), samples=args.samples)
            statuses = " ".join(f"{v.property}={v.status}" for v in report.verdicts)
            print(f"  {name:26s} {'PASS' if report.passed else 'FAIL'}  {statuses}", flush=True)
            for v in report.verdicts:
                if v.status == battery.FAIL:
                    print(f"      FAIL {v.property}: {v.evidence}", flush=True)
    unbiased = {n: c for n, c in estimators.items() if c.unbiased}
    plan = {n: battery.compatible_tasks(n, default_hparams(c))[0] for n, c in unbiased.items()}
    cells_per_run = sum(len(t) for t in plan.values())
    print(
        f"step 2: {args.runs} runs × {len(plan)} declared-unbiased estimators ({cells_per_run} cells per run), "
        f"fresh seeds, α = {args.alpha}",
        flush=True,
    )
    audits = fails = cells = cell_rejects = runs = 0
    per_estimator = {n: 0 for n in plan}
    for run in range(args.first_run, args.first_run + args.runs):
        if (time.time() - t0) / 60 > args.minutes:
            print(f"stopped by --minutes after {runs} runs", flush=True)
            break
        for name, tasks in plan.items():
            seed = 1_000_003 * (run + 1) + zlib.crc32(name.encode()) % 1000
            found = battery.bias_cells(name, default_hparams(unbiased[name]), tasks, args.samples, seed, args.alpha)
            verdict = battery.bias_verdict(True, found, args.alpha)
            audits += 1
            cells += len(found)
            cell_rejects += sum(c.pvalue <= args.alpha for c in found)
            if verdict.status == battery.FAIL:
                fails += 1
                per_estimator[name] += 1
                print(f"  run {run}: FAIL {name}: {verdict.evidence}", flush=True)
        runs = run + 1 - args.first_run
        if runs % 10 == 0:
            print(f"  {runs} runs, {audits} audits, {fails} false fails, {time.time() - t0:.0f} s", flush=True)
    lo, hi = clopper_pearson(fails, audits)
    clo, chi = clopper_pearson(cell_rejects, cells)
    print(
        f"\nresult: {runs} runs, {audits} audits ({cells} cells), {args.samples:,} f evaluations per cell, "
        f"{time.time() - t0:.0f} s"
    )
    print(
        f"false-fail rate per audit (Holm at α = {args.alpha}): {fails}/{audits} = {fails / max(audits, 1):.4f} "
        f"(95 % CI {lo:.4f} – {hi:.4f})"
    )
    print(
        f"single cells with p ≤ α: {cell_rejects}/{cells} = {cell_rejects / max(cells, 1):.4f} "
        f"(95 % CI {clo:.4f} – {chi:.4f})"
    )
    print("false fails per estimator: " + ", ".join(f"{n} {k}" for n, k in per_estimator.items()))


if __name__ == "__main__":
    main()
