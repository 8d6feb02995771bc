"""Figures of a ``gradbench train`` CSV: training curves and gradient quality along training.

Two figures per (task, task options, optimizer, learning rate, M) group of runs:

- ``…-curves``: the exact objective (E f, or held-out −ELBO for model tasks; plus held-out −log p(x) when
  recorded) against optimizer steps, f-evaluations spent and training seconds;
- ``…-quality``: the estimator's variance, bias and cosine with the exact gradient at the evaluation points.

One line per (estimator, τ): the mean over seeds with a 95% band (mean ± t₀.₉₇₅,ₙ₋₁ · sd/√n over the n seeds; no
band with one seed). Runs that diverged end where they diverged; their seeds drop out of later means, and the
legend says how many of the seeds diverged. The palette is :func:`gradbench.plots.style_for`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from gradbench.errors import GradbenchError

GROUP = ["task", "task_params", "optimizer", "lr", "batch_estimates", "schedule"]
T975 = [12.71, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131]
"""t quantiles 0.975 for 1 … 15 degrees of freedom (larger: 1.96 + 2.5/df, within 0.3%)."""


def t975(df: int) -> float:
    return T975[df - 1] if df <= len(T975) else 1.96 + 2.5 / df


def load_train_csv(path: Path) -> pd.DataFrame:
    from gradbench.train import read_train_rows

    rows = read_train_rows(path)
    if not rows:
        raise GradbenchError(f"{path} holds no training rows")
    df = pd.DataFrame(rows)
    numeric = ["step", "f_evals", "train_seconds", "objective", "nll", "variance", "bias", "cosine", "seed"]
    for col in numeric:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def _label(est: str, tau: str) -> str:
    return f"{est} τ={float(tau):g}" if tau not in ("", "nan") else est


def band(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Mean and 95% half-width of y over seeds at each x (rows with a finite y only)."""
    data = df[[x, y, "seed"]].dropna()
    g = data.groupby(x)[y]
    out = pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1), "n": g.count()})
    out["half"] = [s / math.sqrt(n) * t975(n - 1) if n > 1 else 0.0 for s, n in zip(out["sd"], out["n"], strict=True)]
    return out.reset_index()


def _lines(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    from gradbench.plots import _order

    keys = df[["estimator", "tau"]].drop_duplicates().itertuples(index=False)
    ordered = sorted(keys, key=lambda k: (_order(k[0]), float(k[1]) if k[1] not in ("", "nan") else 0.0))
    return [(f"{e}\t{t}", df[(df["estimator"] == e) & (df["tau"] == t)]) for e, t in ordered]


def _draw(ax, df: pd.DataFrame, x: str, y: str, log: bool = False) -> None:
    from gradbench.plots import style_for

    for key, rows in _lines(df):
        est, tau = key.split("\t")
        colour, marker = style_for(est)
        b = band(rows, x, y) if x == "step" else _band_by_step(rows, x, y)
        if b.empty:
            continue
        diverged = int((rows.groupby("seed")["status"].last() == "diverged").sum())
        seeds = rows["seed"].nunique()
        label = _label(est, tau) + (f" ({diverged}/{seeds} diverged)" if diverged else "")
        ax.plot(b[x], b["mean"], color=colour, marker=marker, markersize=3, lw=1.4, label=label)
        lo, hi = b["mean"] - b["half"], b["mean"] + b["half"]
        if log:
            lo = lo.where(lo > 0, b["mean"] / 10)
        if y == "cosine":  # a cosine lies in [−1, 1] whatever the band's normal approximation says
            lo, hi = lo.clip(-1, 1), hi.clip(-1, 1)
        ax.fill_between(b[x], lo, hi, color=colour, alpha=0.15, lw=0)
    if log:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)


def _band_by_step(rows: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Band over seeds at each evaluation step, placed at the mean of ``x`` (f-evaluations or seconds) there."""
    b = band(rows, "step", y)
    pos = rows.groupby("step")[x].mean()
    b[x] = b["step"].map(pos)
    return b


def _title(key: dict, df: pd.DataFrame) -> str:
    seeds = df["seed"].nunique()
    return (
        f"{key['task']} ({key['task_params']}) — {key['optimizer']} lr={float(key['lr']):g}, "
        f"M={key['batch_estimates']}, τ schedule {key['schedule']}; mean and 95% band over {seeds} seeds"
    )


def curves_figure(key: dict, df: pd.DataFrame):
    import matplotlib.pyplot as plt

    model = df["nll"].notna().any()
    what = "held-out −ELBO (nats/image, exact)" if model else "objective E f (exact)"
    rows = 2 if model else 1
    fig, axes = plt.subplots(rows, 3, figsize=(15, 4.2 * rows), squeeze=False, layout="constrained")
    for col, (x, xlabel) in enumerate(
        [("step", "optimizer steps"), ("f_evals", "f evaluations (training)"), ("train_seconds", "training seconds")]
    ):
        _draw(axes[0][col], df, x, "objective")
        axes[0][col].set_xlabel(xlabel)
        axes[0][col].set_ylabel(what)
        if model:
            _draw(axes[1][col], df, x, "nll")
            axes[1][col].set_xlabel(xlabel)
            axes[1][col].set_ylabel("held-out −log p(x) (nats/image, exact)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(_title(key, df), fontsize=10)
    return fig


def quality_figure(key: dict, df: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    for ax, (y, label, log) in zip(
        axes,
        [
            ("variance", "variance of one estimate (trace)", True),
            ("bias", "‖mean estimate − exact‖₂", True),
            ("cosine", "cos(mean estimate, exact)", False),
        ],
        strict=True,
    ):
        _draw(ax, df, "step", y, log)
        ax.set_xlabel("optimizer steps")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle("gradient quality along training — " + _title(key, df), fontsize=10)
    return fig


def plot_training(csv_file: Path, out: Path, formats: list[str]) -> list[Path]:
    """Draw and save the figures of a train CSV into ``out``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gradbench.plots import figure_names, save_figure

    df = load_train_csv(csv_file)
    keys = [dict(zip(GROUP, k, strict=True)) for k in df[GROUP].drop_duplicates().itertuples(index=False)]
    files = []
    stems = figure_names(
        [{"task": k["task"], "task_params": k["task_params"], "dtype": "", "device": ""} for k in keys]
    )
    for key, stem in zip(keys, stems, strict=True):
        rows = df[(df[GROUP] == pd.Series(key)).all(axis=1)]
        if len(keys) > 1 and len({k["task"] + k["task_params"] for k in keys}) < len(keys):
            stem += f"-{key['optimizer']}-lr{key['lr']}-m{key['batch_estimates']}-{key['schedule']}"
        for name, build in (("curves", curves_figure), ("quality", quality_figure)):
            fig = build(key, rows)
            for fmt in formats:
                path = out / f"{stem}-{name}.{fmt}"
                save_figure(fig, path, fmt)
                files.append(path)
            plt.close(fig)
    return files
