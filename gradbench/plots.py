"""``gradbench plot``: one figure per task, one panel per metric against the temperature τ.

Every number drawn comes from :func:`gradbench.aggregate.aggregate` (mean over seeds, 95% Student-t band), and every
line carries a ``gid`` (``metric|estimator|estimator_params|n_samples``, ``noise|…`` for noise floors, ``band|…``
for bands) so tests can read the data behind it. Figures are built with matplotlib's object API (no pyplot, no
display needed) and saved through the Agg/SVG/PDF backends with dates and software versions stripped and a fixed
SVG hash salt, so the same CSV gives byte-identical files.

Reading a figure:
- x: τ on a log axis; one line per estimator (mean over seeds) with a shaded 95% band;
- estimators without a temperature are dashed horizontal lines (“no τ” in the legend);
- bias panel: each estimator's *noise floor* √(variance/n) is drawn dotted in its colour: an unbiased estimator's
  ``bias`` sits on its noise floor, so only bias clearly above it is bias;
- a reference (zero variance, no bias detected: ``exact``) is named in the legend, not drawn on log axes (its values
  are 0 or rounding); another zero-variance estimator is drawn, except in the variance panel (log of 0).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gradbench.aggregate import FIGURE_KEYS, LINE_KEYS, METRICS, aggregate, references
from gradbench.errors import GradbenchError
from gradbench.results import write_atomic
from gradbench.xaxis import TAU, XAxis

# The palette (documented in docs/design.md, "Figures"): a fixed look per estimator name, so that colour and marker
# never depend on which other estimators are in the figure. Families own hue ranges — score function: blues and
# cyans; binary (antithetic): greens; relaxations: reds, oranges, pinks, purples, browns; control variates: olive and
# ochre; the reference: black; anything else: greys and teals — and within a family every estimator has a distinct
# hue and a distinct marker. Estimators not in the table (plug-ins, new built-ins) take the family's free colours
# and a marker (see assign_styles); each list holds 8+ colours and there are 13 markers: 20+ estimators stay apart.
FAMILY_COLOURS: dict[str, tuple[str, ...]] = {
    "reference": ("#000000",),
    "score-function": ("#1f77b4", "#6baed6", "#08306b", "#17becf", "#3949ab", "#0e7c86", "#4a90c2", "#1b4f72"),
    "binary": ("#2ca02c", "#00441b", "#74c476", "#238b45", "#a1d99b", "#4d7c0f", "#006d5b", "#5aae61"),
    "relaxation": (
        "#d62728",
        "#ff7f0e",
        "#e377c2",
        "#9467bd",
        "#8c564b",
        "#8c2d04",
        "#c51b7d",
        "#bf9000",
        "#f768a1",
        "#6a3d9a",
    ),
    "control-variate": ("#bcbd22", "#6b6b00", "#a6761d", "#8c6d31", "#d4b000", "#5c4d00", "#b8860b", "#7a7a20"),
    "other": ("#5a5a5a", "#469990", "#000075", "#911eb4", "#f032e6", "#9a6324", "#800000", "#808000"),
}
FAMILY_ORDER = ("reference", "score-function", "binary", "control-variate", "relaxation", "other")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p", "*", "x")
STYLES: dict[str, tuple[str, str]] = {
    "exact": ("#000000", "*"),
    "reinforce": ("#1f77b4", "o"),
    "reinforce-baseline": ("#6baed6", "v"),
    "reinforce-batch-baseline": ("#3949ab", "<"),
    "rloo": ("#08306b", "s"),
    "unordered-set": ("#17becf", "P"),
    "arm": ("#2ca02c", "^"),
    "disarm": ("#00441b", "D"),
    "rebar": ("#bcbd22", "P"),
    "relax": ("#6b6b00", "X"),
    "gumbel": ("#d62728", "o"),
    "st-gumbel": ("#ff7f0e", "s"),
    "st": ("#8c2d04", "x"),
    "gumbel-rao": ("#e377c2", "^"),
    "reinmax": ("#9467bd", "D"),
    "gapped-st": ("#8c564b", "v"),
}
LINESTYLES = ("-", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))

FORMATS = ("png", "svg", "pdf")
METADATA = {
    "png": {"Software": None},
    "svg": {"Date": None},
    "pdf": {"CreationDate": None, "Producer": None, "Creator": None},
}
DPI = 150

LABELS = {
    "bias": ("bias", "‖mean estimate − exact‖₂"),
    "bias_sq": ("squared bias", "‖ĝ − g*‖² − variance/n (< 0: noise)"),
    "variance": ("variance", "trace of the covariance of one estimate"),
    "mse": ("MSE", "mean ‖estimate − exact‖²"),
    "cosine": ("cosine", "cos(mean estimate, exact)"),
    "snr": ("signal-to-noise", "‖mean estimate‖ / √variance"),
}
LOG_METRICS = {"bias", "variance", "mse", "snr"}


def style_for(name: str, family: str | None = None) -> tuple[str, str]:
    """(colour, marker) of an estimator: the table above, else a colour of its family's list not taken by the table
    (and a marker), chosen by a stable hash of the name."""
    if name in STYLES:
        return STYLES[name]
    family = family if family in FAMILY_COLOURS else "other"
    taken = {c for c, _ in STYLES.values()}
    colours = [c for c in FAMILY_COLOURS[family] if c not in taken] or list(FAMILY_COLOURS[family])
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return colours[digest % len(colours)], MARKERS[(digest >> 16) % len(MARKERS)]


def assign_styles(names, family_of: dict[str, str]) -> dict[str, tuple[str, str]]:
    """(colour, marker) for every name: the table's for built-ins; the estimators not in the table, per family and in
    name order, take the family's free colours in turn, and a new marker each time the colours come round, so no two
    of them (nor a built-in) share both colour and marker. The same set of names gives the same looks (``plot``
    assigns over the whole CSV, so a look is the same in every figure of it)."""
    out: dict[str, tuple[str, str]] = {}
    taken = {c for c, _ in STYLES.values()}
    by_family: dict[str, list[str]] = {}
    for name in sorted(set(names)):
        if name in STYLES:
            out[name] = STYLES[name]
        else:
            fam = family_of.get(name, "other")
            by_family.setdefault(fam if fam in FAMILY_COLOURS else "other", []).append(name)
    for fam, members in by_family.items():
        free = [c for c in FAMILY_COLOURS[fam] if c not in taken] or list(FAMILY_COLOURS[fam])
        for i, name in enumerate(members):
            out[name] = (free[i % len(free)], MARKERS[(i // len(free)) % len(MARKERS)])
    return out


def families() -> dict[str, str]:
    """Estimator name → family, for the registered estimators (built-ins and loaded plug-ins)."""
    from gradbench.registry import all_estimators

    return {name: getattr(cls, "family", "other") for name, cls in all_estimators().items()}


def select(df: pd.DataFrame, only: str | None, exclude: str | None, family: str | None) -> pd.DataFrame:
    """The rows of the estimators chosen by ``--only``/``--exclude`` (comma lists of names) and ``--family`` (comma
    list of families); an unknown name or family, or a selection that leaves nothing, is an error."""
    present = sorted(df["estimator"].unique())
    fam = families()

    def names(text: str, option: str) -> set[str]:
        chosen = {n.strip() for n in text.split(",") if n.strip()}
        unknown = sorted(chosen - set(present))
        if unknown or not chosen:
            raise GradbenchError(f"{option} {text!r}: not in the CSV: {', '.join(unknown) or '(empty)'} "
                                 f"(it holds {', '.join(present)})")  # fmt: skip
        return chosen

    keep = set(present)
    if only:
        keep &= names(only, "--only")
    if exclude:
        keep -= names(exclude, "--exclude")
    if family:
        wanted = {f.strip() for f in family.split(",") if f.strip()}
        known = {fam.get(n, "other") for n in present}
        unknown = sorted(wanted - known)
        if unknown or not wanted:
            raise GradbenchError(f"--family {family!r}: no estimator of family {', '.join(unknown) or '(empty)'} in "
                                 f"the CSV (families there: {', '.join(sorted(known))})")  # fmt: skip
        keep = {n for n in keep if fam.get(n, "other") in wanted or n == "exact"}
    if not keep - {"exact"}:
        raise GradbenchError("the selection (--only/--exclude/--family) leaves no estimator to draw")
    return df[df["estimator"].isin(keep)]


def parse_formats(text: str) -> list[str]:
    formats = list(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise GradbenchError(f"--format {text!r}: choose from {', '.join(FORMATS)} (comma list)")
    return formats


def parse_metrics(text: str) -> list[str]:
    metrics = list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics:
        raise GradbenchError(f"--metrics {text!r}: choose from {', '.join(METRICS)} (comma list)")
    return metrics


@dataclass(frozen=True)
class Line:
    """One estimator line of a figure: its key, label, look, and how it is drawn on log axes."""

    estimator: str
    estimator_params: str
    n_samples: int
    label: str
    colour: str
    marker: str
    linestyle: object
    has_tau: bool
    reference: bool  # the ground truth (exact): named in the legend, not drawn
    zero_variance: bool = False  # values that fall below a log axis are drawn on its floor, with a hollow marker

    @property
    def gid(self) -> str:
        return f"{self.estimator}|{self.estimator_params}|{self.n_samples}"


FLAT_STYLES = ("--", (0, (1, 1.5)), (0, (6, 2, 1, 2)), (0, (3, 1.5)), (0, (8, 2)), (0, (2, 1, 2, 3)))
"""Dash patterns of the lines without τ (horizontal lines), so that two of them never look alike."""


def _order(name: str, family: str | None = None) -> tuple[int, int, str]:
    """Legend order: by family (:data:`FAMILY_ORDER`), then the style table's order, then plug-ins by name."""
    family = families().get(name, "other") if family is None else family
    rank = FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)
    names = list(STYLES)
    return (rank, names.index(name) if name in STYLES else len(names), name)


def figure_lines(
    agg: pd.DataFrame,
    family_of: dict[str, str] | None = None,
    styles: dict[str, tuple[str, str]] | None = None,
    axis: XAxis = TAU,
) -> list[Line]:
    """The lines of one figure's aggregate, in legend order (grouped by family); ``styles`` from
    :func:`assign_styles` (default: assigned over this aggregate's estimators)."""
    from gradbench.aggregate import GROUND_TRUTH

    family_of = families() if family_of is None else family_of
    styles = assign_styles(agg["estimator"].unique(), family_of) if styles is None else styles
    keys = agg[LINE_KEYS].drop_duplicates().itertuples(index=False)
    keys = sorted(
        keys, key=lambda k: (_order(k.estimator, family_of.get(k.estimator, "other")), k.estimator_params, k.n_samples)
    )
    counts = pd.Series([k.estimator for k in keys]).value_counts()
    n_values = {k.n_samples for k in keys}
    lines, seen, flat_index = [], {}, 0
    for k in keys:
        rows = agg[(agg.estimator == k.estimator) & (agg.estimator_params == k.estimator_params)]
        rows = rows[rows.n_samples == k.n_samples]
        has_tau = bool(rows["tau"].notna().any())
        variance = rows[rows.metric == "variance"]["mean"]
        colour, marker = styles[k.estimator]
        label = k.estimator
        if k.estimator_params:
            label += f" ({k.estimator_params.replace(';', ', ')})"
        if counts[k.estimator] > 1 and len(n_values) > 1:
            label += f" n={k.n_samples:,}"
        reference = k.estimator in GROUND_TRUTH and tuple(k) in references(agg)
        zero = bool(len(variance) and (variance == 0).all())
        if reference:
            label += ": the exact gradient (reference, not drawn)"
        else:
            if not has_tau:
                label += f" · no {axis.symbol}"
            if zero:
                label += " · zero variance"
        index = seen.get(k.estimator, 0)
        seen[k.estimator] = index + 1
        if has_tau:
            style = LINESTYLES[index % len(LINESTYLES)]
        else:
            style = FLAT_STYLES[flat_index % len(FLAT_STYLES)]
            flat_index += not reference
        lines.append(
            Line(k.estimator, k.estimator_params, int(k.n_samples), label, colour, marker, style, has_tau, reference,
                 zero and not reference)
        )  # fmt: skip
    return lines


def _fmt_int_range(values) -> str:
    values = sorted(set(int(v) for v in values))
    return f"{values[0]:,}" if len(values) == 1 else f"{values[0]:,}–{values[-1]:,}"


def _seeds_text(seeds) -> str:
    seeds = sorted(set(seeds))
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if len(seeds) > 4 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{len(seeds)} seeds ({seeds[0]}–{seeds[-1]})"
    return f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"


def figure_title(key: dict, rows: pd.DataFrame) -> str:
    options = key["task_params"].replace(";", ", ")
    D, K = int(rows["D"].iloc[0]), int(rows["K"].iloc[0])
    band = "mean and 95% band over seeds" if rows["seed"].nunique() > 1 else "no band"
    return (
        f"{key['task']} ({options}): D × K = {D} × {K}\n"
        f"n = {_fmt_int_range(rows['n_samples'])} estimates per cell · {_seeds_text(rows['seed'])}, {band} · "
        f"{key['dtype']} on {key['device']}"
    )


def panel_column(metric: str, per: str) -> str:
    """The aggregate column a panel draws: the MSE panel shows the MSE at the chosen budget (``--per``)."""
    from gradbench.summary import PER

    return PER[per] if metric == "mse" else metric


def build_figure(
    key: dict,
    agg: pd.DataFrame,
    rows: pd.DataFrame,
    metrics: list[str],
    per: str = "estimate",
    budget=None,
    styles: dict[str, tuple[str, str]] | None = None,
    axis: XAxis = TAU,
):
    """The figure of one task (``key``: FIGURE_KEYS values; ``agg``: its aggregate; ``rows``: its CSV rows).

    ``per``/``budget``: what the MSE panel shows (``estimate``: the per-estimate MSE; ``evals``/``time``: the MSE at
    that budget, whose columns the aggregate must hold at ``budget``)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from gradbench.summary import DEFAULT_BUDGET, budget_short

    budget = DEFAULT_BUDGET[per] if budget is None else budget
    lines = figure_lines(agg, styles=styles, axis=axis)
    taus = sorted(agg["tau"].dropna().unique())
    x_lo, x_hi = (taus[0] / 1.25, taus[-1] * 1.25) if taus else (0.05, 5.0)
    if not axis.log and taus:  # a linear axis: 3% of the range on either side
        pad = 0.03 * (taus[-1] - taus[0]) or 0.5
        x_lo, x_hi = taus[0] - pad, taus[-1] + pad
    handles = []
    for line in lines:
        style = "none" if line.reference else line.linestyle
        handles.append(Line2D([], [], color=line.colour, marker=line.marker, linestyle=style, label=line.label))
    if "bias" in metrics:
        floor = "dotted: noise floor √(variance/n) (bias near it is noise)"
        handles.append(Line2D([], [], color="0.35", linestyle=":", label=floor))
        hollow = "hollow marker (bias): no bias detected (95%)"
        handles.append(
            Line2D([], [], color="0.35", marker="o", markerfacecolor="white", linestyle="none", label=hollow)
        )
    if "mse" in metrics:
        handles.append(Line2D([], [], color="0.25", linestyle=ZERO_MSE_STYLE, label="‖g*‖²: MSE of a zero gradient"))
    if any(line.zero_variance for line in lines):
        at_floor = "marker on a panel's bottom edge: value below the axis (zero variance: 0 up to rounding)"
        handles.append(
            Line2D([], [], color="0.35", marker="v", markerfacecolor="white", linestyle="none", label=at_floor)
        )
    if agg["n_seeds"].max() > 1:
        handles.append(Patch(color="0.6", alpha=0.25, label="band: 95% interval of the mean over seeds"))
    width = 4.3 * len(metrics) + 0.6  # inches
    # Legend columns that fit the width: about 0.068 in per character at 8.5 pt, plus the handle and the gap.
    column = 0.068 * max(len(h.get_label()) for h in handles) + 0.75
    ncol = max(1, min(4, len(handles), int(width // column)))
    legend_rows = math.ceil(len(handles) / ncol)
    fig = Figure(figsize=(width, 4.4 + 0.2 * legend_rows), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    at = "" if per == "estimate" else f" @ {budget_short(per, budget)}"
    for ax, metric in zip(axes, metrics, strict=True):
        _panel(
            ax,
            metric,
            agg,
            lines,
            x_lo,
            x_hi,
            column=panel_column(metric, per),
            at=at if metric == "mse" else "",
            axis=axis,
        )
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, frameon=False, fontsize=8.5)
    title = figure_title(key, rows)
    if per != "estimate" and "mse" in metrics:
        title += f" · MSE at equal cost: {budget_short(per, budget)}"
    fig.suptitle(title, fontsize=10.5)
    return fig


ZERO_MSE_STYLE = (0, (7, 3))
BAND_ALPHA = (0.10, 0.05)
"""Band opacity with ≤ 6 lines and with more: bands stay much lighter than the lines they surround."""


def line_data(agg: pd.DataFrame, metric: str, line: Line) -> pd.DataFrame:
    """The aggregate rows behind one line of one panel, in increasing τ."""
    select = (
        (agg.metric == metric)
        & (agg.estimator == line.estimator)
        & (agg.estimator_params == line.estimator_params)
        & (agg.n_samples == line.n_samples)
    )
    return agg[select].sort_values("tau")


def bias_detected(agg: pd.DataFrame, line: Line) -> list[bool]:
    """Per point of a line (increasing τ): is a bias detected? With k ≥ 2 seeds: the 95% band of the mean of
    ``bias_sq`` (an unbiased estimate of the squared bias) lies above 0. With one seed: ``bias_pvalue`` < 0.05."""
    sq = line_data(agg, "bias_sq", line)
    if (sq["n_seeds"] >= 2).all():
        return [bool(v > 0) for v in sq["lo"]]
    return [bool(p < 0.05) for p in line_data(agg, "bias_pvalue", line)["mean"]]


def tau_ticks(x_lo: float, x_hi: float, taus: list[list[float]]) -> list[float]:
    """Labelled τ ticks: 1-2-5 values inside the axis range (plain numbers), or the swept τ if fewer than two fit."""
    ticks = [
        m * 10.0**e
        for e in range(math.floor(math.log10(x_lo)), math.ceil(math.log10(x_hi)) + 1)
        for m in (1, 2, 5)
        if x_lo <= m * 10.0**e <= x_hi
    ]
    if len(ticks) < 2:
        ticks = sorted({t for line in taus for t in line})
    return [float(f"{t:.3g}") for t in ticks]


def _between(x: float, taus: list[float]) -> float:
    """The geometric midpoint of the two swept temperatures around x: a marker there hides no τ line's marker."""
    for a, b in zip(taus, taus[1:], strict=False):
        if a <= x <= b:
            return math.sqrt(a * b)
    return x


def _panel(
    ax,
    metric: str,
    agg: pd.DataFrame,
    lines: list[Line],
    x_lo: float,
    x_hi: float,
    column=None,
    at: str = "",
    axis: XAxis = TAU,
) -> None:
    from matplotlib.ticker import NullFormatter

    column = column or metric
    log = metric in LOG_METRICS
    means: list[float] = []  # the plotted means of lines with variance set the y range; bands are cut
    tops: list[float] = []
    bands, drawn = [], []
    flat = [line for line in lines if not line.has_tau and not line.reference]
    taus = sorted(agg["tau"].dropna().unique())
    for line in lines:
        if line.reference:
            continue
        sub = line_data(agg, column, line)
        if sub.empty:
            continue
        if line.has_tau:
            x = list(sub["tau"])
            y, lo, hi = (list(sub[c]) for c in ("mean", "lo", "hi"))
            marks = list(range(len(x)))
        else:  # a horizontal line over the whole τ range, with one marker placed apart from the others'
            x = [x_lo, x_hi]
            share = (flat.index(line) + 1) / (len(flat) + 1) if line in flat else 0.5
            x.insert(1, _between(x_lo * (x_hi / x_lo) ** share, taus) if axis.log else x_lo + share * (x_hi - x_lo))
            y, lo, hi = ([float(sub[c].iloc[0])] * 3 for c in ("mean", "lo", "hi"))
            marks = [1]
        if log:
            y = [v if v > 0 else math.nan for v in y]
        if not line.zero_variance:
            means += [v for v in y if math.isfinite(v)]
        drawn.append((line, x, y, marks))
        bands.append((line, x, lo, hi))
        if metric == "bias":
            floor = line_data(agg, "noise_floor", line)["mean"]
            fy = list(floor) if line.has_tau else [float(floor.iloc[0])] * 3
            (dotted,) = ax.plot(x, fy, color=line.colour, linestyle=":", linewidth=1.0, alpha=0.7, zorder=2)
            dotted.set_gid(f"noise|{line.gid}")
            if not line.zero_variance:
                tops += [v for v in fy if math.isfinite(v) and v > 0]
    zero_mse = None
    if metric == "mse":
        norms = agg[agg.metric == "grad_norm"]["mean"]
        if len(norms) and float(norms.iloc[0]) > 0:
            zero_mse = float(norms.iloc[0]) ** 2
            tops.append(zero_mse)
    if log:
        positive = [v for v in means if v > 0]
        if positive:
            bottom, top = min(positive), max(positive + tops)
            pad = (top / bottom) ** 0.06 if top > bottom else 2.0
            ax.set_ylim(bottom / pad, top * pad)
        ax.set_yscale("log")
    bottom = ax.get_ylim()[0]
    floor_y = bottom * (ax.get_ylim()[1] / bottom) ** 0.025 if log else bottom
    for line, x, y, marks in drawn:
        low = [log and line.zero_variance and (not math.isfinite(v) or v < bottom) for v in y]
        shown = [math.nan if is_low else v for v, is_low in zip(y, low, strict=True)]
        (artist,) = ax.plot(x, shown, color=line.colour, linestyle=line.linestyle, linewidth=1.7, zorder=3)
        artist.set_gid(f"{column}|{line.gid}")
        detected = bias_detected(agg, line) * (1 if line.has_tau else 3) if metric == "bias" else [True] * len(x)
        for fill in (True, False):
            chosen = [i for i in marks if detected[i] == fill and not low[i]]
            ax.plot(
                [x[i] for i in chosen],
                [y[i] for i in chosen],
                linestyle="none",
                marker=line.marker,
                markersize=5,
                color=line.colour,
                markerfacecolor=line.colour if fill else "white",
                zorder=4,
            )
        at_floor = [i for i in (range(len(x)) if line.has_tau else marks) if low[i]]
        if at_floor:  # below the axis (zero variance: 0 or rounding): on the floor, hollow, in the line's colour
            (floor_marks,) = ax.plot(
                [x[i] for i in at_floor],
                [floor_y] * len(at_floor),
                linestyle=line.linestyle if len(at_floor) > 1 else "none",
                linewidth=1.0,
                marker=line.marker,
                markersize=6,
                color=line.colour,
                markerfacecolor="white",
                zorder=4,
                clip_on=False,
            )
            floor_marks.set_gid(f"floor|{column}|{line.gid}")
    if zero_mse is not None:
        ref = ax.axhline(zero_mse, color="0.25", linestyle=ZERO_MSE_STYLE, linewidth=1.1, zorder=2.5)
        ref.set_gid("zero-mse")
    alpha = BAND_ALPHA[0] if len(lines) <= 6 else BAND_ALPHA[1]
    for line, x, lo, hi in bands:
        if metric == "bias" or line.zero_variance or any(math.isnan(v) for v in lo + hi):
            continue  # no bands on the bias panel: its noise floors and hollow markers say what is noise
        if log:
            lo = [max(v, bottom) for v in lo]
        band = ax.fill_between(
            x, lo, hi, color=line.colour, alpha=alpha if line.has_tau else alpha / 2, linewidth=0, zorder=1
        )
        band.set_gid(f"band|{metric}|{line.gid}")
    if axis.log:
        ax.set_xscale("log")
    ax.set_xlim(x_lo, x_hi)
    if axis.log:
        ticks = tau_ticks(x_lo, x_hi, [x for line, x, _, _ in bands if line.has_tau])
        ax.set_xticks(ticks, labels=[f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
    name, meaning = LABELS[metric]
    if at:
        meaning = "bias² + variance·cost / budget"
    ax.set_title(f"{name}{at}: {meaning}", fontsize=9.5)
    ax.set_xlabel(axis.label)
    ax.set_ylabel(f"{name}{at}{' (log scale)' if log else ''}")
    ax.grid(True, which="major", color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)


def figure_names(keys: list[dict]) -> list[str]:
    """File stems: the task name, plus whatever tells apart several figures of the same task."""
    names = []
    for key in keys:
        same = [k for k in keys if k["task"] == key["task"]]
        stem = key["task"]
        if len(same) > 1:
            for column in ("task_params", "dtype", "device"):
                if len({k[column] for k in same}) > 1:
                    stem += "-" + key[column]
        names.append(re.sub(r"[^A-Za-z0-9_.=-]+", "_", stem.replace(";", "_")))
    return names


def save_figure(fig, path: Path, fmt: str) -> None:
    """Write the figure to ``path`` atomically, without dates or versions (byte-identical for the same figure)."""
    write_atomic(path, save_figure_bytes(fig, fmt))


def check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise GradbenchError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GradbenchError(f"--out {out}: cannot create folder: {exc.strerror}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise GradbenchError(f"--out {out}: not writable")


def iter_figures(
    df: pd.DataFrame, metrics: list[str], per: str = "evals", budget: float | None = None, axis: XAxis = TAU
) -> tuple[list[tuple[tuple, object]], pd.DataFrame]:
    """((figure key, Figure) per task, aggregate) of ``df`` (a loaded CSV), the equal-cost columns at the budget;
    ``axis``: the x axis (τ, or an option a sweep varied: :mod:`gradbench.xaxis`)."""
    from gradbench.cost import with_budgets
    from gradbench.summary import DEFAULT_BUDGET
    from gradbench.xaxis import move_to_x

    df = move_to_x(df, axis)

    budgets = {"evals": DEFAULT_BUDGET["evals"], "time": DEFAULT_BUDGET["time"]}
    if per in budgets and budget is not None:
        budgets[per] = budget
    agg = aggregate(with_budgets(df, budgets["evals"], budgets["time"]))
    styles = assign_styles(df["estimator"].unique(), families())  # one look per estimator in every figure
    out = []
    for k in agg[FIGURE_KEYS].drop_duplicates().itertuples(index=False):
        key = dict(zip(FIGURE_KEYS, k, strict=True))
        select = (agg[FIGURE_KEYS] == pd.Series(key)).all(axis=1)
        rows = df[(df[FIGURE_KEYS] == pd.Series(key)).all(axis=1)]
        fig = build_figure(
            key, agg[select], rows, metrics, per=per, budget=budgets.get(per, 1.0), styles=styles, axis=axis
        )
        fig.draw_without_rendering()  # lay out once, then keep that layout for every format (saves a layout per file)
        fig.set_layout_engine("none")
        out.append((tuple(k), fig))
    return out, agg


def save_figure_bytes(fig, fmt: str) -> bytes:
    """The figure as ``fmt`` bytes, without dates or versions (byte-identical for the same figure)."""
    from matplotlib import rc_context

    buffer = io.BytesIO()
    with rc_context({"svg.hashsalt": "gradbench", "svg.fonttype": "path", "pdf.fonttype": 42}):
        fig.savefig(buffer, format=fmt, dpi=DPI, metadata=METADATA[fmt])
    return buffer.getvalue()


def plot_results(
    df: pd.DataFrame,
    out: Path,
    formats: list[str],
    metrics: list[str],
    per: str = "evals",
    budget: float | None = None,
    axis: XAxis = TAU,
) -> tuple[list[Path], pd.DataFrame]:
    """Draw and save every figure of ``df`` (a loaded CSV) into ``out``; returns (files, aggregate).

    ``per``/``budget``: the equal-cost columns of the aggregate are computed at that budget (``gradbench.cost``), and
    the MSE panel shows the MSE at that budget."""
    figures, agg = iter_figures(df, metrics, per, budget, axis)
    keys = [dict(zip(FIGURE_KEYS, k, strict=True)) for k, _ in figures]
    files = []
    for (_, fig), stem in zip(figures, figure_names(keys), strict=True):
        for fmt in formats:
            path = out / f"{stem}.{fmt}"
            save_figure(fig, path, fmt)
            files.append(path)
    return files, agg
