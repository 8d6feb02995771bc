"""Reproduce two published training experiments with ``gradbench train`` and write figures and tables.

    python benchmarks/train_repro.py relax    # Grathwohl et al. 2018 (RELAX), the toy of Figure 1
    python benchmarks/train_repro.py reinmax  # Liu et al. 2023 (ReinMax), polynomial programming

Each experiment runs the ``gradbench train`` commands printed below (also in docs/training.md), then
``gradbench plot``, into docs/training/. Settings and their sources:

- RELAX toy (duvenaud/relax, pytorch_toy.py): one Bernoulli variable, f(b) = (b − 0.499)², θ = 0, Adam lr 0.01,
  one sample per step, 5,000 steps; REBAR/RELAX start at τ = e^0.5 ≈ 1.65 (they then tune τ, η and the control
  variate online, with a gradient-variance loss; here τ and η stay fixed and RELAX's c_φ is trained once at θ₀).
- ReinMax polynomial programming (LiyuanLucasLiu/ReinMax, poly/poly_programming.py): 128 binary variables,
  f = mean_d |b_d − 0.45|^p, p ∈ {1.5, 2, 3}, Adam lr 10⁻³, batch 64 (M = 64), τ = 1, θ ≈ 0; the paper runs
  40 × 200 = 8,000 steps with 10 seeds and more estimators; here ST, Gumbel-Softmax and ReinMax for 1,000 steps
  with 3 seeds (what the development machine's share of two busy cores allowed).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "training"


def gradbench(*args: str) -> None:
    command = [sys.executable, "-m", "gradbench.cli", *args]
    print("$ gradbench " + " ".join(args), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def relax(workers: str) -> None:
    csv = OUT / "relax-toy.csv"
    t0 = time.time()
    gradbench("train", "-e", "reinforce,rebar,relax", "--task", "bernoulli", "--taus", "1.65", "--steps", "5000",
              "--eval-every", "100", "--eval-samples", "1000", "--seeds", "5", "--lr", "0.01", "--optimizer", "adam",
              "-m", "1", "--workers", workers, "--resume", "--out", str(csv.relative_to(ROOT)))  # fmt: skip
    gradbench("plot", str(csv.relative_to(ROOT)), "--out", str((OUT / "relax-toy").relative_to(ROOT)))
    print(f"relax: {time.time() - t0:.0f} s")


def reinmax(workers: str) -> None:
    t0 = time.time()
    for p in ("1.5", "2", "3"):
        csv = OUT / f"reinmax-poly-p{p}.csv"
        gradbench("train", "-e", "st,gumbel,reinmax", "--task", "bernoulli",
                  "--task-opt", "dim=128", "--task-opt", "target=0.45", "--task-opt", f"p={p}", "--taus", "1.0",
                  "--steps", "1000", "--eval-every", "250", "--eval-samples", "256", "--seeds", "3", "--lr", "0.001",
                  "-m", "64", "--workers", workers, "--resume", "--out", str(csv.relative_to(ROOT)))  # fmt: skip
        gradbench("plot", str(csv.relative_to(ROOT)), "--out", str((OUT / f"reinmax-poly-p{p}").relative_to(ROOT)))
    write_reinmax_table()
    print(f"reinmax: {time.time() - t0:.0f} s")


def final_rows(csv: Path):
    import pandas as pd

    from gradbench.plots_train import load_train_csv, t975

    df = load_train_csv(csv)
    last = df.sort_values("step").groupby(["estimator", "tau", "seed"]).tail(1)
    out = []
    for (est, tau), g in last.groupby(["estimator", "tau"]):
        n = len(g)
        sd = g["objective"].std(ddof=1) if n > 1 else math.nan
        out.append({"estimator": est, "tau": tau, "mean": g["objective"].mean(),
                    "half": t975(n - 1) * sd / math.sqrt(n) if n > 1 else math.nan, "seeds": n,
                    "diverged": int((g["status"] == "diverged").sum())})  # fmt: skip
    return pd.DataFrame(out).sort_values("mean")


def write_reinmax_table() -> None:
    lines = [
        "| p | " + " | ".join(["rank", "estimator", "final E f (mean ± 95% over seeds)"]) + " |",
        "|---|---|---|---|",
    ]
    for p in ("1.5", "2", "3"):
        table = final_rows(OUT / f"reinmax-poly-p{p}.csv")
        for rank, row in enumerate(table.itertuples(), start=1):
            lines.append(f"| {p} | {rank} | {row.estimator} | {row.mean:.5f} ± {row.half:.5f} |")
    text = "\n".join(lines) + "\n"
    (OUT / "reinmax-poly.md").write_text(text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=["relax", "reinmax", "reinmax-table"])
    parser.add_argument("--workers", default="1")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.experiment == "relax":
        relax(args.workers)
    elif args.experiment == "reinmax":
        reinmax(args.workers)
    else:
        write_reinmax_table()


if __name__ == "__main__":
    main()
