"""The closing tables of issue 14: bias p-value and variance of the zoo-two estimators at 10⁶ estimates.

Tasks: bernoulli with t = 0.45, θ = (0, 0) (``--task-opt target=0.45 --task-opt logit=0``), and sum-target at its
defaults. Relaxation estimators run at the stated τ. Prints a Markdown table; takes a few minutes on one core.

    python benchmarks/zoo2_table.py [--samples 1000000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import torch

from gradbench.runner import CellSpec, run_cell

ESTIMATORS = [
    ("indecater", {}),
    ("rb-reinforce", {}),
    ("rb-reinforce", {"summed": 8}),
    ("disarm-cat", {}),
    ("arsm", {}),
    ("muprop", {}),
    ("nvil", {}),
    ("decoupled-st", {"tau": 1.0, "tau_b": 0.5}),
    ("decoupled-st", {"tau": 0.5, "tau_b": 2.0}),
    ("double-cv", {}),  # α fitted by its pilot
    ("double-cv", {"pilot": 0}),  # the fixed Taylor value α = −1
    ("carms", {}),
    ("carms", {"m": 2}),
    ("reinforce", {}),  # the reference point
    ("rloo", {}),
    ("rloo", {"m": 2}),  # carms m = 2 at equal cost
]
TASKS = [("bernoulli", {"target": 0.45, "logit": 0.0}), ("sum-target", {})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--estimators", default="", help="comma list: only these (default: all of the table)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"n = {args.samples:,} estimates per cell, seed {args.seed}, float32, 1 thread\n")
    print("| estimator | params | task | f evals/estimate | bias p-value | variance (± se) | bias ‖ĝ − g*‖ | s |")
    print("|---|---|---|---|---|---|---|---|")
    for task, task_params in TASKS:
        for name, params in ESTIMATORS:
            if args.estimators and name not in args.estimators.split(","):
                continue
            if task == "bernoulli" and params.get("summed", 0) >= 2:
                continue  # K^D = 2 on the one-variable toy
            t0 = time.perf_counter()
            row = run_cell(CellSpec(task, name, task_params, params, args.seed, args.samples))
            shown = ";".join(f"{k}={v}" for k, v in params.items()) or "defaults"
            print(
                f"| {name} | {shown} | {task} | {row['draws_per_estimate']} | {row['bias_pvalue']:.3g} "
                f"| {row['variance']:.4g} ± {row['variance_se']:.2g} | {row['bias']:.3g} "
                f"| {time.perf_counter() - t0:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
