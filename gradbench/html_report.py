"""``gradbench report``: one self-contained HTML page of a results CSV — the summary tables at equal cost and per
estimate, the figures, the environment and the command lines — in the spirit of benchopt's and asv's published
results.

Self-contained: the figures are embedded as ``data:`` URIs (PNG), the style sheet is inline, there is no script and
no reference to any other file or host, so the page opens offline and can be mailed or archived as one file. The
same CSV and arguments give the same bytes (no dates other than the CSV's own timestamps).
"""

from __future__ import annotations

import base64
import html
import math
import platform
import shlex
import sys

import pandas as pd

from gradbench.aggregate import FIGURE_KEYS
from gradbench.errors import GradbenchError
from gradbench.summary import budget_text, headers, summary_rows

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1.5em; color: #1a1a1a; background: #ffffff; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
h3 { margin-bottom: 0.3em; } .lead { color: #444; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top; }
th { background: #f3f5f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.flagged td:nth-child(2) { color: #9a3412; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.88em; }
pre { background: #f6f8fa; padding: 0.7em 1em; overflow-x: auto; }
.note { color: #555; font-size: 0.85em; max-width: 80em; }
nav a { margin-right: 1em; }
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    right = {"τ", "MSE", "margin"}
    out = ["<table>", "<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in head) + "</tr>"]
    for values in rows:
        cells = "".join(
            f'<td class="num">{_esc(v)}</td>' if h in right else f"<td>{_esc(v)}</td>"
            for h, v in zip(head, values, strict=True)
        )
        flagged = ' class="flagged"' if values[1].endswith(("(collapsed)", "noise-dominated)")) else ""
        out.append(f"<tr{flagged}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _png_data_uri(fig) -> str:
    from gradbench.plots import save_figure_bytes

    return "data:image/png;base64," + base64.b64encode(save_figure_bytes(fig, "png")).decode("ascii")


def sweep_command(df: pd.DataFrame, source: str) -> str:
    """A ``gradbench sweep`` command that re-runs the CSV's grid (its tasks, estimators, temperatures, seeds, n)."""
    parts = ["gradbench", "sweep"]
    parts += ["--tasks", ",".join(sorted(df["task"].unique()))]
    parts += ["--estimators", ",".join(sorted(df["estimator"].unique()))]
    taus = sorted(df["tau"].dropna().unique())
    if taus:
        parts += ["--taus", ",".join(f"{t:g}" for t in taus)]
    parts += ["--seeds", ",".join(str(s) for s in sorted(df["seed"].unique()))]
    sizes = sorted(df["n_samples"].unique())
    parts += ["--samples", str(sizes[0]) if len(sizes) == 1 else "auto"]
    for column, option in (("dtype", "--dtype"), ("device", "--device")):
        values = sorted(df[column].unique())
        if len(values) == 1 and values[0] not in ("float32", "cpu"):
            parts += [option, values[0]]
    parts += ["--out", source]
    return shlex.join(parts)


def environment(df: pd.DataFrame) -> list[tuple[str, str]]:
    """What the CSV records about where it was measured, then the machine that made the report."""

    def values(column: str) -> str:
        return ", ".join(str(v) for v in sorted(df[column].astype(str).unique()))

    stamps = sorted(df["timestamp"].astype(str))
    return [
        ("gradbench (measured with)", values("gradbench_version")),
        ("torch", values("torch_version")),
        ("device · dtype · torch threads", f"{values('device')} · {values('dtype')} · {values('threads')}"),
        ("measured between", f"{stamps[0]} and {stamps[-1]}" if stamps else "—"),
        ("cells (rows)", f"{len(df):,}"),
        ("report made with", f"gradbench {_version()}, Python {platform.python_version()}, {platform.platform()}"),
    ]


def _version() -> str:
    import gradbench

    return gradbench.__version__


def build_report(
    df: pd.DataFrame, source: str, per: str, budget: float, argv: list[str] | None = None, metrics=None
) -> str:
    """The HTML text of the report of ``df`` (a loaded results CSV)."""
    from gradbench.plots import iter_figures

    metrics = list(metrics or ("bias", "variance", "mse"))
    argv = list(sys.argv[1:] if argv is None else argv)
    figures, agg = iter_figures(df, metrics, per=per, budget=budget)
    at = "per estimate" if per == "estimate" else f"at equal cost: {budget_text(per, budget)}"
    body = [
        "<h1>gradbench report</h1>",
        f'<p class="lead">Source: <code>{_esc(source)}</code> · {len(df):,} cells · tasks: '
        f"{_esc(', '.join(sorted(df['task'].unique())))} · {df['estimator'].nunique()} estimators. "
        f"Which estimator has the lowest MSE {at}, and from which budget an unbiased one wins.</p>",
        '<nav><a href="#summary">Summary</a><a href="#per-estimate">Per estimate</a><a href="#figures">Figures</a>'
        '<a href="#environment">Environment</a><a href="#commands">Commands</a></nav>',
        f'<h2 id="summary">Lowest MSE per task and temperature, {_esc(at)}</h2>',
    ]
    main_rows, main_note = summary_rows(agg, per, budget)
    for title, rows in main_rows:
        body += [f"<h3>{_esc(title)}</h3>", _table(headers(per, budget), rows)]
    body.append(f'<p class="note">{_esc(main_note)}</p>')
    if per != "estimate":
        body.append('<h2 id="per-estimate">Lowest MSE per estimate (for comparison: ignores cost)</h2>')
        other_rows, other_note = summary_rows(agg, "estimate", 1.0)
        for title, rows in other_rows:
            body += [f"<h3>{_esc(title)}</h3>", _table(headers("estimate", 1.0), rows)]
        body.append(f'<p class="note">{_esc(other_note)}</p>')
    body.append('<h2 id="figures">Figures</h2>')
    for key, fig in figures:
        name = dict(zip(FIGURE_KEYS, key, strict=True))["task"]
        body.append(f'<h3>{_esc(name)}</h3><img alt="bias, variance and MSE against τ on {_esc(name)}" '
                    f'src="{_png_data_uri(fig)}">')  # fmt: skip
    body.append('<h2 id="environment">Environment</h2>')
    body.append(_table(("", ""), environment(df)).replace("<th></th><th></th>", "<th>item</th><th>value</th>"))
    plot = ["gradbench", "plot", source, "--per", per, *_budget_args(per, budget)]
    commands = [
        ("re-run the grid (equivalent sweep)", sweep_command(df, source)),
        ("the figures and summary.md", shlex.join(plot)),
        ("this report", shlex.join(["gradbench", *argv]) if argv else "gradbench report " + shlex.quote(source)),
    ]
    body.append('<h2 id="commands">Commands</h2>')
    for what, command in commands:
        body.append(f"<p>{_esc(what)}:</p><pre>{_esc(command)}</pre>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>gradbench report: {_esc(source)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _budget_args(per: str, budget: float) -> list[str]:
    from gradbench.summary import DEFAULT_BUDGET

    return [] if per == "estimate" or math.isclose(budget, DEFAULT_BUDGET[per]) else ["--budget", f"{budget:g}"]


def check_out_file(path) -> None:
    """Fail before any work when the report could not be written to ``path``."""
    import os
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise GradbenchError(f"--out {path} is a directory; name the HTML file to write")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise GradbenchError(f"--out {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise GradbenchError(f"--out {path}: not writable")


def write_report(path, text: str) -> None:
    """Write the page atomically (a temporary file renamed into place: never half a page)."""
    from gradbench.results import write_atomic

    write_atomic(path, text)
