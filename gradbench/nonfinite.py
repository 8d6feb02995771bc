"""Non-finite estimates: what counts, when a cell is flagged, and the words used to flag it.

An estimate is *non-finite* when any of its D·K components is NaN or ±inf (e.g. a float16 softmax that overflows
at a small τ). The runner leaves such estimates out of the statistics and records their share in the column
``nonfinite_fraction``; every metric of the row describes the finite estimates only. Leaving estimates out is a
selection: when it is more than a rounding-level share (:data:`THRESHOLD`) the metrics may hide a bias, so the
cell is flagged wherever it is shown (``run``'s table, the summary of ``plot``).

No torch or pandas at import time (used by light CLI paths).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

THRESHOLD = 1e-3
"""A cell whose ``nonfinite_fraction`` exceeds this is flagged (one estimate in a thousand)."""


def is_flagged(fraction: float) -> bool:
    """Whether a cell with this non-finite fraction is flagged (NaN, from a file that lacks it, is not)."""
    return not math.isnan(fraction) and fraction > THRESHOLD


def describe(fraction: float) -> str:
    """Plain words for a flagged share, e.g. ``'2.5% of the estimates are non-finite (NaN or ±inf)'``."""
    if fraction >= 1.0:
        return "every estimate is non-finite (NaN or ±inf): no metric"
    return f"{fraction:.3g} of the estimates are non-finite (NaN or ±inf): metrics over the finite ones only"


def flagged_lines(rows: Iterable[dict[str, Any]]) -> list[str]:
    """One line per flagged row (dicts with the CSV's columns), for summaries."""
    lines = []
    for row in rows:
        fraction = float(row["nonfinite_fraction"])
        if not is_flagged(fraction):
            continue
        tau = row.get("tau", "")
        tau_text = "" if tau == "" or (isinstance(tau, float) and math.isnan(tau)) else f" τ={float(tau):g}"
        params = f" ({row['task_params']})" if row.get("task_params") else ""
        lines.append(
            f"{row['estimator']}{tau_text} on {row['task']}{params}, {row['dtype']}, seed {row['seed']}: "
            f"non-finite {fraction:.3g}"
        )
    return lines
