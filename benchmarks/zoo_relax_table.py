"""Bias p-value and variance of the relaxation and control-variate estimators at τ = 0.5 and τ = 1.

    python benchmarks/zoo_relax_table.py [--samples 1000000] [--seed 0] [--out results/zoo-relax.csv]

Tasks: the Bernoulli toy (target 0.499, θ = 0) and sum-target (defaults). REINFORCE, Gumbel-Softmax and
ST-Gumbel are included for reference. Every cell is a ``gradbench.runner.run_cell`` row (appended to ``--out``);
a cell the estimator refuses (ReinMax below τ = 1) is reported as refused. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from gradbench.errors import GradbenchError
from gradbench.results import append_rows
from gradbench.runner import CellSpec, run_cell

ESTIMATORS = ["st", "gapped-st", "gumbel-rao", "reinmax", "rebar", "relax", "reinforce", "gumbel", "st-gumbel"]
TASKS = ["bernoulli", "sum-target"]
TAUS = [0.5, 1.0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results") / "zoo-relax.csv")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows, cells = [], {}
    for estimator in ESTIMATORS:
        for task in TASKS:
            for tau in TAUS if estimator != "reinforce" else [None]:
                spec = CellSpec(
                    task=task,
                    estimator=estimator,
                    estimator_params={"tau": tau} if tau is not None else {},
                    seed=args.seed,
                    n_samples=args.samples,
                )
                try:
                    row = run_cell(spec)
                except GradbenchError as exc:
                    cells[estimator, task, tau] = f"refused ({exc})"
                    continue
                rows.append(row)
                cells[estimator, task, tau] = f"{row['bias_pvalue']:.3g} / {row['variance']:.4g}"
    append_rows(args.out, rows)
    header = " | ".join(f"{t} τ={tau:g}" for t in TASKS for tau in TAUS)
    print(f"| estimator | {header} |")
    print("|---" * (1 + len(TASKS) * len(TAUS)) + "|")
    for estimator in ESTIMATORS:
        taus = TAUS if estimator != "reinforce" else [None] * len(TAUS)
        print(f"| `{estimator}` | " + " | ".join(cells[estimator, t, tau] for t in TASKS for tau in taus) + " |")
    print(f"(bias p-value / variance; n = {args.samples:,} estimates per cell, seed {args.seed}, 1 torch thread)")


if __name__ == "__main__":
    main()
