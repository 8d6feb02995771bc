"""The headline table: estimators training ``vae-digits`` under one budget of f-evaluations.

    python benchmarks/train_table.py [--workers 2] [--seeds 5] [--budget 600]

For each estimator of :data:`GRID` and each of its temperatures (Gumbel-Softmax: 0.5 and 1; ST-Gumbel and ReinMax: 1),
``--seeds``
runs of ``gradbench train`` on ``vae-digits`` (images=16 per step, Adam lr 0.01, M = 1) with as many steps as the
budget of training f-evaluations allows (budget / draws per estimate). Then, per estimator at its best τ (lowest
mean final held-out −ELBO): final exact −ELBO and −log p(x) per held-out image (mean ± 95% over seeds), the
estimator's variance and bias at the first and the last evaluation (mean over seeds), steps/s, the cost of an
evaluation, and the grid's wall time. Writes docs/training/vae-table.csv (the runs) and docs/training/vae-table.md.
The toy ranking compared with it: gradient MSE on the ``sum-target`` toy (results/zoo-table.csv).
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
GRID = {  # estimator: temperatures (None: no temperature)
    "exact": None,
    "reinforce": None,
    "rloo": None,
    "gumbel": "0.5,1",
    "st-gumbel": "1",
    "reinmax": "1",
}
"""Sized to the development machine's share of two busy cores (load average ≈ 18 while it ran): only
Gumbel-Softmax gets a grid of two temperatures; ST-Gumbel and ReinMax run at τ = 1 (ReinMax's default); Gumbel-Rao
(10 conditional draws per estimate) and the binary-only and control-variate estimators are left out."""
DRAWS = {"rloo": 4}  # draws per estimate (defaults), to size the steps to the budget


def run_grid(csv: Path, workers: str, seeds: str, budget: int) -> float:
    t0 = time.time()
    for est, taus in GRID.items():
        steps = budget // DRAWS.get(est, 1)
        args = ["train", "-e", est, "--task", "vae-digits", "--task-opt", "images=16", "--steps", str(steps),
                "--eval-every", str(steps // 3), "--eval-samples", "256", "--seeds", seeds, "--lr", "0.01",
                "-m", "1", "--workers", workers, "--resume", "--out", str(csv.relative_to(ROOT))]  # fmt: skip
        if taus:
            args += ["--taus", taus]
        print("$ gradbench " + " ".join(args), flush=True)
        subprocess.run([sys.executable, "-m", "gradbench.cli", *args], check=True, cwd=ROOT)
    return time.time() - t0


def ci(values) -> tuple[float, float]:
    from gradbench.plots_train import t975

    n = len(values)
    mean = float(values.mean())
    return mean, (t975(n - 1) * float(values.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan)


def toy_ranking() -> list[str]:
    """The toy verdict: estimators of :data:`GRID` by their per-estimate gradient MSE on the ``sum-target`` toy
    (categorical, K = 4) at their best τ of the same grid, from the committed results/zoo-table.csv."""
    import pandas as pd

    zoo = pd.read_csv(ROOT / "results" / "zoo-table.csv")
    zoo = zoo[(zoo["task"] == "sum-target") & zoo["estimator"].isin(list(GRID))]
    best = zoo.groupby("estimator")["mse"].min().sort_values()
    return list(best.index)


def spearman(a: list[str], b: list[str]) -> float:
    common = [x for x in a if x in b]
    ra = {x: i for i, x in enumerate([x for x in a if x in common])}
    rb = {x: i for i, x in enumerate([x for x in b if x in common])}
    n = len(common)
    if n < 3:
        return math.nan
    d2 = sum((ra[x] - rb[x]) ** 2 for x in common)
    return 1 - 6 * d2 / (n * (n * n - 1))


def table(csv: Path, wall: float | None) -> str:
    from gradbench.plots_train import load_train_csv

    df = load_train_csv(csv)
    for col in ("eval_seconds", "train_seconds", "steps"):
        df[col] = df[col].astype(float)
    rows = []
    for (est, tau), g in df.groupby(["estimator", "tau"]):
        last = g.sort_values("step").groupby("seed").tail(1)
        first = g[g["step"] == 0]
        elbo, elbo_h = ci(last["objective"])
        nll, nll_h = ci(last["nll"])
        evals = g.groupby("seed").size().mean()
        rows.append({
            "estimator": est, "tau": tau, "elbo": elbo, "elbo_h": elbo_h, "nll": nll, "nll_h": nll_h,
            "var0": first["variance"].mean(), "var1": last["variance"].mean(),
            "bias0": first["bias"].mean(), "bias1": last["bias"].mean(),
            "steps_per_s": (last["steps"] / last["train_seconds"]).mean(),
            "eval_s": (last["eval_seconds"] / evals).mean(), "steps": int(last["steps"].iloc[0]),
            "f_evals": int(last["f_evals"].iloc[0]), "seeds": len(last),
            "diverged": int((last["status"] == "diverged").sum()),
        })  # fmt: skip
    import pandas as pd

    all_rows = pd.DataFrame(rows)
    best = all_rows.sort_values("elbo").groupby("estimator").head(1).sort_values("elbo")
    lines = [
        "| rank | estimator | best τ | steps | final −ELBO | final −log p(x) | variance at step 0 → final | "
        "bias at step 0 → final | steps/s | s per evaluation |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rank, r in enumerate(best.itertuples(), start=1):
        tau = "—" if r.tau in ("", "nan") else f"{float(r.tau):g}"
        lines.append(
            f"| {rank} | {r.estimator} | {tau} | {r.steps} | {r.elbo:.2f} ± {r.elbo_h:.2f} "
            f"| {r.nll:.2f} ± {r.nll_h:.2f} | {r.var0:.3g} → {r.var1:.3g} | {r.bias0:.3g} → {r.bias1:.3g} "
            f"| {r.steps_per_s:.1f} | {r.eval_s:.2f} |"
        )
    others = all_rows.merge(best[["estimator", "tau"]], how="left", indicator=True)
    others = others[others["_merge"] == "left_only"]
    if len(others):
        lines.append("")
        text = [f"{r.estimator} τ={float(r.tau):g}: {r.elbo:.2f} ± {r.elbo_h:.2f}" for r in others.itertuples()]
        lines.append("Other temperatures: " + "; ".join(text) + ".")
    model_rank = [e for e in best["estimator"] if e != "exact"]
    toy = [e for e in toy_ranking() if e != "exact"]
    lines.append("")
    lines.append(f"Toy ranking (gradient MSE per estimate on sum-target, best τ of the grid): {', '.join(toy)}.")
    lines.append(f"Model ranking (final held-out −ELBO): {', '.join(model_rank)}.")
    lines.append(
        f"Spearman rank correlation over the {len([e for e in toy if e in model_rank])} estimators in both: "
        f"{spearman(toy, model_rank):.2f}."
    )
    if wall is not None:
        lines.append("")
        lines.append(f"Grid wall time: {wall:.0f} s.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="2")
    parser.add_argument("--seeds", default="5")
    parser.add_argument("--budget", type=int, default=600)
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    csv = OUT / "vae-table.csv"
    wall = None if args.table_only else run_grid(csv, args.workers, args.seeds, args.budget)
    text = table(csv, wall)
    (OUT / "vae-table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
