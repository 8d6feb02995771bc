"""Reading a gradbench CSV for plots and summaries, and aggregating its rows over seeds.

Aggregation (what every plotted line and band shows): rows are grouped by figure (:data:`FIGURE_KEYS`), line
(:data:`LINE_KEYS`) and τ; within a group the k seeds give the mean, the sample standard deviation s, and the 95%
band mean ± t_{0.975, k−1} · s/√k (Student t; no band when k = 1). Rows with the same identity (the same cell run
twice) count once: the last one is kept.

``noise_floor`` is a derived metric: √(variance / n) per row, the size of ``bias`` an unbiased estimator with that
variance shows at n estimates (E‖ĝ − g*‖² = variance/n when E ĝ = g*).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd

from gradbench.errors import GradbenchError
from gradbench.fingerprint import UNKNOWN
from gradbench.results import COLUMNS, FLOAT_COLUMNS, IDENTITY_COLUMNS, INT_COLUMNS, OLDER_FORMATS, check_regular

FIGURE_KEYS = ["task", "task_params", "dtype", "device"]
"""One figure per distinct value of these columns."""
LINE_KEYS = ["estimator", "estimator_params", "n_samples"]
"""One line per distinct value of these columns within a figure."""
IDENTITY = list(IDENTITY_COLUMNS)
METRICS = ("bias", "bias_sq", "variance", "mse", "cosine", "snr")
"""Metrics that can be plotted against τ (``--metrics``)."""
COST_METRICS = ("mse_at_equal_evals", "mse_at_equal_time", "evals_per_estimate", "seconds_per_estimate")
"""The cost columns, aggregated like the metrics (``plot --per evals|time`` draws the equal-cost MSE)."""
DERIVED = ("noise_floor",)
NUMERIC = (*FLOAT_COLUMNS, *INT_COLUMNS)

# Two-sided 95% Student t quantiles t_{0.975, ν} for ν = 1 .. 30.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip


def t975(dof: int) -> float:
    """t_{0.975} of Student's t with ``dof`` degrees of freedom (table to 30, Cornish–Fisher expansion beyond)."""
    if dof < 1:
        return math.nan
    if dof <= len(_T975):
        return _T975[dof - 1]
    z = 1.959963984540054
    return (
        z
        + (z**3 + z) / (4 * dof)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * dof**3)
    )


def load_results(path: Path) -> pd.DataFrame:
    """A gradbench CSV as a DataFrame (numbers as floats, ``tau`` NaN where empty); bad files are one-line errors."""
    path = Path(path)
    if not path.exists():
        raise GradbenchError(f"{path} does not exist")
    check_regular(path, "CSV")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise GradbenchError(f"{path} is not a text CSV file") from None
    except OSError as exc:
        raise GradbenchError(f"cannot read {path}: {exc.strerror}") from None
    if not text.strip():
        raise GradbenchError(f"{path} is empty")
    if "\0" in text:
        line = text[: text.index("\0")].count("\n") + 1
        raise GradbenchError(f"{path} is not a text CSV file: NUL byte on line {line}")
    try:
        records = list(csv.reader(text.splitlines()))
    except csv.Error as exc:
        raise GradbenchError(f"{path} is not a valid CSV file: {exc}") from None
    header = records[0]
    # a file written by an earlier version (before the cost or the precision columns): filled in below
    expected = next((f for f in OLDER_FORMATS if tuple(header) == f), COLUMNS)
    if tuple(header) != expected:
        known = [c for c in header if c in COLUMNS]
        if len(known) < len(IDENTITY) // 2:
            raise GradbenchError(f"{path} is not a gradbench results file (header: {','.join(header)[:60]}…)")
        unknown = [c for c in header if c not in COLUMNS]
        if unknown:
            raise GradbenchError(f"{path} has unknown columns: {', '.join(unknown)} (not written by this gradbench)")
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise GradbenchError(f"{path} lacks columns: {', '.join(missing)}")
        raise GradbenchError(f"{path} has gradbench's columns in another order (or repeated)")
    rows = records[1:]
    if not rows:
        raise GradbenchError(f"{path} holds no rows (only a header)")
    for number, row in enumerate(rows, start=2):
        if len(row) != len(expected):
            raise GradbenchError(f"{path}, line {number}: {len(row)} fields, expected {len(expected)}")
    df = pd.DataFrame(rows, columns=list(expected), dtype=str)
    for column in (c for c in NUMERIC if c in expected):
        values = df[column].replace("", "nan") if column == "tau" else df[column]
        converted = pd.to_numeric(values, errors="coerce")
        bad = converted.isna() & ~values.str.lower().isin(["nan"])
        if bad.any():
            line = int(bad.to_numpy().nonzero()[0][0]) + 2
            raise GradbenchError(f"{path}, line {line}: column {column!r} is not a number: {values[bad].iloc[0]!r}")
        df[column] = converted.astype(float)
    for column, low in (("seed", 0), ("n_samples", 2), ("D", 1), ("K", 1), ("draws_per_estimate", 0)):
        values = df[column]
        bad = ~(values.between(low, 2.0**63 - 1) & (values == values.round()))
        if bad.any():
            line = int(bad.to_numpy().nonzero()[0][0]) + 2
            raise GradbenchError(
                f"{path}, line {line}: column {column!r} must be an integer ≥ {low}, got {values[bad].iloc[0]!r}"
            )
    for column in ("seed", "n_samples", "D", "K"):
        df[column] = df[column].astype("int64")
    for column in ("task", "estimator", "dtype", "device"):
        empty = df[column].str.strip() == ""
        if empty.any():
            line = int(empty.to_numpy().nonzero()[0][0]) + 2
            raise GradbenchError(f"{path}, line {line}: column {column!r} is empty")
    if "code_fingerprint" not in expected:  # written before the column: the code that made the rows is unknown
        df["code_fingerprint"] = UNKNOWN
    if "nonfinite_fraction" not in expected:  # before the column existed a non-finite estimate aborted its cell
        df["nonfinite_fraction"] = 0.0
    if "evals_per_estimate" not in expected:  # written before the cost columns
        from gradbench.cost import with_budgets

        df["evals_per_estimate"] = df["draws_per_estimate"]  # then every built-in's evaluations per estimate
        df["seconds_per_estimate"] = df["seconds"] / df["n_samples"]
        df = with_budgets(df)
    df = df[list(COLUMNS)]
    return df.drop_duplicates(subset=IDENTITY, keep="last").reset_index(drop=True)


def mixed_fingerprints(df: pd.DataFrame) -> list[str]:
    """The lines (figure and line keys) whose rows were made by different code: several ``code_fingerprint``
    values, an empty one (a row older than the column) counting as one more. One label per line, sorted."""
    out = []
    for key, rows in df.groupby(FIGURE_KEYS + LINE_KEYS, sort=True):
        prints = set(rows["code_fingerprint"])
        if len(prints) > 1:
            named = dict(zip(FIGURE_KEYS + LINE_KEYS, key, strict=True))
            out.append(f"{named['estimator']} on {named['task']} ({len(prints)} code versions)")
    return out


def mixed_code_warning(df: pd.DataFrame, csv_file: Path | str) -> str | None:
    """One line for stderr when some line of ``df`` averages rows made by different code (None when none does)."""
    mixed = list(dict.fromkeys(mixed_fingerprints(df)))
    if not mixed:
        return None
    more = f" and {len(mixed) - 3} more" if len(mixed) > 3 else ""
    return (
        f"gradbench: warning: rows made by different code (code_fingerprint) are averaged together: "
        f"{'; '.join(mixed[:3])}{more}; re-run them with `gradbench sweep --resume --out {csv_file}` and the same "
        "grid, or with --overwrite"
    )


def aggregate(
    df: pd.DataFrame, metrics: tuple[str, ...] = (*METRICS, *COST_METRICS, "bias_pvalue", "grad_norm", *DERIVED)
) -> pd.DataFrame:
    """Mean over seeds and its 95% band, one row per (figure, line, τ, metric).

    Columns: FIGURE_KEYS, LINE_KEYS, ``tau`` (NaN: the estimator has no temperature), ``metric``, ``mean``, ``sd``,
    ``n_seeds``, ``lo``, ``hi`` (NaN with one seed), ``seeds`` (the seeds, as a sorted tuple). Sorted by all keys.
    """
    data = df.copy()
    data["noise_floor"] = (data["variance"] / data["n_samples"]).clip(lower=0) ** 0.5
    keys = FIGURE_KEYS + LINE_KEYS + ["tau"]
    out = []
    for group, rows in data.groupby(keys, dropna=False, sort=True):
        seeds = tuple(sorted(rows["seed"].tolist()))
        for metric in metrics:
            values = rows[metric].to_numpy(dtype=float)
            k = len(values)
            mean = float(values.mean())
            with np.errstate(invalid="ignore"):  # inf values (snr of a zero-variance estimator): sd is nan
                sd = float(values.std(ddof=1)) if k > 1 else math.nan
            half = t975(k - 1) * sd / math.sqrt(k) if k > 1 else math.nan
            out.append((*group, metric, mean, sd, k, mean - half, mean + half, seeds))
    columns = keys + ["metric", "mean", "sd", "n_seeds", "lo", "hi", "seeds"]
    return pd.DataFrame(out, columns=columns)


GROUND_TRUTH = frozenset({"exact"})
"""Estimators that return the exact gradient by construction: a reference line, never a contender."""


def references(agg: pd.DataFrame) -> set[tuple]:
    """LINE_KEYS values of the *reference* lines of one figure's aggregate: zero variance in every cell and no bias
    detected (``bias_pvalue`` ≥ 0.01) — the exact gradient, reproduced. Their bias and MSE are 0 or rounding:
    they are named in legends and not drawn on log axes. Only the ground truth itself (:data:`GROUND_TRUTH`) is
    left out of the summary's contest: another estimator that is exact here (DisARM on a one-variable toy) wins it."""
    out = set()
    for key, rows in agg.groupby(LINE_KEYS, sort=False):
        variance = rows[rows.metric == "variance"]["mean"]
        pvalue = rows[rows.metric == "bias_pvalue"]["mean"]
        if len(variance) and (variance == 0).all() and len(pvalue) and (pvalue >= 0.01).all():
            out.add(tuple(key))
    return out
