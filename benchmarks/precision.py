"""Where each estimator breaks at low precision: non-finite fraction and bias against τ, per dtype.

    python benchmarks/precision.py                 # sweep (docs/precision/precision.csv) + figure + table
    python benchmarks/precision.py --plot-only     # redraw from the CSV

Runs ``gradbench sweep`` on the ``quadratic`` task (D = 20, K = 10) for every built-in estimator (the opt-in ones
included), at float32, bfloat16 and float16, τ log-spaced from 10⁻³ to 10 (7 values), one seed, ``SAMPLES``
(4,096) estimates per cell; float32 is the reference: low-precision cells draw the same uniforms rounded to the
dtype (:meth:`gradbench.rng.BlockRng.uniform`), so the three curves of an estimator differ by rounding only. The
figure (``docs/precision/precision.png``) has one column per dtype and two rows: the share of non-finite
estimates, and ‖bias‖/‖g*‖ over the finite ones. ``docs/precision/breaks.md`` lists, per estimator and dtype,
the τ of the grid with a flagged non-finite share and the largest relative bias change against float32.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "precision"
CSV = OUT / "precision.csv"
DTYPES = ("float32", "bfloat16", "float16")
TAUS = "0.001:10:7"
SAMPLES = 4096


def run_sweeps() -> None:
    from gradbench.cli import app
    from gradbench.registry import all_estimators

    estimators = ",".join(all_estimators())  # the opt-in ones too
    for dtype in DTYPES:  # --resume: an interrupted run goes on where it stopped (delete the CSV to start afresh)
        args = ["sweep", "--tasks", "quadratic", "-e", estimators, "--taus", TAUS, "--seeds", "1"]
        args += ["--samples", str(SAMPLES)]
        args += ["--dtype", dtype, "--out", str(CSV)] + (["--resume"] if CSV.exists() else [])
        try:
            app(args, standalone_mode=False)
        except SystemExit as exc:  # pragma: no cover - a failed cell
            if exc.code:
                raise


def draw(csv: Path = CSV) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gradbench.aggregate import load_results
    from gradbench.nonfinite import THRESHOLD
    from gradbench.results import write_atomic

    df = load_results(csv)
    df["rel_bias"] = df["bias"] / df["grad_norm"]
    names = sorted(df["estimator"].unique())
    palette = [plt.get_cmap("tab20")(i) for i in range(20)] + [plt.get_cmap("tab20b")(i) for i in range(0, 20, 2)]
    colours = {name: palette[i % len(palette)] for i, name in enumerate(names)}
    markers = "os^vD<>phX*P8"
    fig, axes = plt.subplots(2, len(DTYPES), figsize=(5.2 * len(DTYPES), 8), sharex=True, sharey="row")
    for col, dtype in enumerate(DTYPES):
        part = df[df["dtype"] == dtype]
        taus = sorted(df["tau"].dropna().unique())
        for i, name in enumerate(names):
            rows = part[part["estimator"] == name].sort_values("tau")
            if rows.empty:
                continue
            if rows["tau"].isna().all():  # no temperature: the same cell at every τ
                x = taus
                nf = [float(rows["nonfinite_fraction"].iloc[0])] * len(taus)
                rb = [float(rows["rel_bias"].iloc[0])] * len(taus)
                style = dict(linestyle=":", linewidth=1.2)
            else:
                x, nf, rb = rows["tau"].tolist(), rows["nonfinite_fraction"].tolist(), rows["rel_bias"].tolist()
                style = dict(linestyle="-", linewidth=1.5, marker=markers[i % len(markers)], markersize=4)
            axes[0, col].plot(x, [max(v, 1e-5) for v in nf], color=colours[name], label=name, **style)
            axes[1, col].plot(x, rb, color=colours[name], label=name, **style)
        axes[0, col].set_title(f"{dtype}")
        axes[0, col].axhline(THRESHOLD, color="grey", linewidth=0.8, linestyle="--")
        axes[1, col].axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        for row in range(2):
            axes[row, col].set_xscale("log")
            axes[row, col].set_yscale("log")
            axes[row, col].grid(True, which="major", alpha=0.3)
        axes[1, col].set_xlabel("τ")
    axes[0, 0].set_ylabel("non-finite share of estimates\n(10⁻⁵ = none; dashed: flag threshold 10⁻³)")
    axes[1, 0].set_ylabel("‖bias‖ / ‖g*‖ over the finite estimates\n(dashed: 1, a zero gradient's)")
    handles, labels = axes[1, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(10, len(labels)), fontsize=8, frameon=False)
    n = int(df["n_samples"].iloc[0])
    fig.suptitle(
        f"Low precision: quadratic D = 20, K = 10, n = {n:,} estimates per cell, one seed; dotted: no temperature"
    )
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / "precision.png", dpi=110)
    write_atomic(OUT / "breaks.md", breaks_table(df))


def breaks_table(df) -> str:
    """Markdown: per estimator and low dtype, the τ range that stays clean and the worst bias change vs float32."""
    from gradbench.nonfinite import THRESHOLD

    lines = [
        "| estimator | dtype | τ of the grid with non-finite share > 10⁻³ | largest non-finite share | "
        "largest |‖bias‖ change| vs float32, relative to ‖g*‖ (τ) |",
        "|---|---|---|---|---|",
    ]
    ref = df[df["dtype"] == "float32"].set_index(["estimator", "tau"])
    for name in sorted(df["estimator"].unique()):
        for dtype in DTYPES[1:]:
            part = df[(df["estimator"] == name) & (df["dtype"] == dtype)].sort_values("tau")
            if part.empty:
                continue
            bad = part[part["nonfinite_fraction"] > THRESHOLD]
            where = ", ".join(f"{t:g}" for t in bad["tau"].dropna()) or ("all" if len(bad) else "none")
            worst, at = 0.0, ""
            for row in part.itertuples(index=False):
                key = (row.estimator, row.tau)
                if key not in ref.index or math.isnan(row.bias):
                    continue
                base = ref.loc[key]
                change = abs(row.bias - float(base["bias"])) / row.grad_norm
                if change > worst:
                    worst, at = change, "" if math.isnan(row.tau) else f"{row.tau:g}"
            worst_text = f"{worst:.3g}" + (f" (τ = {at})" if at else "") if worst > 0 else "0"
            lines.append(f"| `{name}` | {dtype} | {where} | {part['nonfinite_fraction'].max():.3g} | {worst_text} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot-only", action="store_true", help="redraw from the existing CSV")
    args = parser.parse_args(argv)
    if not args.plot_only:
        run_sweeps()
    draw()
    print(f"wrote {OUT / 'precision.png'} and {OUT / 'breaks.md'}")


if __name__ == "__main__":
    main(sys.argv[1:])
