"""Are the reported standard errors honest? SD over seeds of ``variance`` and ``mse`` against their mean reported SE.

For each (estimator, task) cell, the cell is run with ``--seeds`` independent seeds. The spread of the reported
``variance`` across seeds is the truth that ``variance_se`` claims to estimate (and likewise ``mse`` / ``mse_se``):
the printed ratio (SD over seeds) / (mean reported SE) is ≈ 1 when the error bars are honest, > 1 when they
understate the uncertainty and < 1 when they overstate it. With k seeds the SD itself is uncertain by a relative
≈ 1/√(2(k − 1)) (7% at k = 100) for normal-looking spreads, more for heavy-tailed ones.

    .venv/bin/python benchmarks/se_calibration.py                           # stateful estimators, 200 seeds
    .venv/bin/python benchmarks/se_calibration.py -e all --seeds 100 --samples 2048
    .venv/bin/python benchmarks/se_calibration.py -e reinforce-baseline --json out.json
    .venv/bin/python benchmarks/se_calibration.py --before-after     # stateful flag off (one shared stream) vs on
    .venv/bin/python benchmarks/se_calibration.py --before-after --est-opt warmup=0   # reinforce-baseline cold

``--before-after`` measures each stateful estimator twice in one run: as gradbench ran it before independent streams
(its ``stateful`` flag switched off: one stream whose state all 16 replicate groups share) and as it runs now.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradbench.registry import all_estimators, get_estimator  # noqa: E402
from gradbench.runner import CellSpec, build_task, run_cell  # noqa: E402
from gradbench.stats import GROUPS  # noqa: E402

TASKS: dict[str, dict] = {
    # The cells where the outside check found reinforce-baseline's SEs off (1.97x, 1.75x, 0.73-0.80x).
    "bernoulli": {"target": 0.45, "logit": 1.0},
    "bernoulli#default": {},
    "sum-target": {"dim": 1, "categories": 3},
    "sum-target#default": {},
    "quadratic": {"dim": 2, "categories": 3},
    "quadratic#1x3": {"dim": 1, "categories": 3},
    "quadratic#default": {},
}


def hparams(cls) -> dict:
    if not cls.has_tau():
        return {}
    (tau,) = [p for p in cls.params if p.name == "tau"]
    return {"tau": max(0.5, tau.low or 0.0)}


def calibrate(estimator: str, task: str, options: dict, seeds: int, samples: int, extra: dict) -> dict | None:
    cls = get_estimator(estimator)
    params = hparams(cls) | {k: v for k, v in extra.items() if any(p.name == k for p in cls.params)}
    if cls(**params).incompatibility(build_task(task, options)) is not None:
        return None
    rows = [
        run_cell(CellSpec(task, estimator, options, params, seed=s, n_samples=samples, dtype="float64"))
        for s in range(seeds)
    ]
    out = {"estimator": estimator, "params": params, "task": task, "task_params": options, "seeds": seeds}
    out["n_samples"] = samples
    for level in (0.01, 0.05):  # the bias z-test's rejection rate (the estimators run here are mostly unbiased)
        out[f"bias_p_le_{level}"] = sum(r["bias_pvalue"] <= level for r in rows) / seeds
    for metric in ("variance", "mse"):
        values = [r[metric] for r in rows]
        ses = [r[f"{metric}_se"] for r in rows]
        sd, mean_se = statistics.stdev(values), statistics.fmean(ses)
        out[f"{metric}_sd"] = sd
        out[f"{metric}_mean_se"] = mean_se
        out[f"{metric}_ratio"] = sd / mean_se if mean_se > 0 else (math.nan if sd > 0 else 1.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-e", "--estimators", default="stateful", help="comma list, 'stateful' or 'all'")
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--before-after", action="store_true", help="also run stateful estimators as one stream")
    parser.add_argument("--est-opt", action="append", default=[], help="KEY=VALUE for estimators that declare it")
    args = parser.parse_args()
    torch.set_num_threads(1)
    registry = all_estimators()
    if args.estimators == "all":
        names = list(registry)
    elif args.estimators == "stateful":
        names = [n for n, c in registry.items() if c.stateful]
    else:
        names = args.estimators.split(",")
    print(f"# {args.seeds} seeds x {args.samples} estimates per cell, float64, 1 thread")
    extra = dict(item.split("=", 1) for item in args.est_opt)
    head = f"{'estimator':28s} {'streams':8s} {'task':40s} {'SD/SE variance':>15s} {'SD/SE mse':>10s}"
    print(head + f" {'bias p<=.01':>12s} {'bias p<=.05':>12s}" + (f"   {extra}" if extra else ""))
    results, t0 = [], time.perf_counter()
    for name in names:
        cls = registry[name]
        modes = [False, True] if args.before_after and cls.stateful else [cls.stateful]
        for key, options in TASKS.items():
            task = key.split("#")[0]
            for stateful in modes:
                original, cls.stateful = cls.stateful, stateful
                try:
                    r = calibrate(name, task, options, args.seeds, args.samples, extra)
                finally:
                    cls.stateful = original
                if r is None:
                    continue
                r["streams"] = GROUPS if stateful else 1
                results.append(r)
                label = f"{task} {options}" if options else task
                print(
                    f"{name:28s} {r['streams']:<8d} {label:40s} {r['variance_ratio']:15.2f} {r['mse_ratio']:10.2f}"
                    f" {r['bias_p_le_0.01']:12.3f} {r['bias_p_le_0.05']:12.3f}",
                    flush=True,
                )
    print(f"# {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
