"""The x axis of ``gradbench plot``: the temperature τ, or any numeric option a sweep varied (``--vary k=…``).

:func:`move_to_x` rewrites a loaded CSV so that the plotting code, written for τ, draws another axis: the chosen
option's value goes into the ``tau`` column and out of ``task_params``/``estimator_params`` (so the values of the
option become points of one line and one figure, not separate lines or figures), and a real τ, if any, goes into
``estimator_params`` (each temperature its own line). Rows without the option (e.g. ``exact``) become horizontal
lines, as estimators without a temperature are on a τ axis.

Scale: log when every value is > 0 and they span a factor ≥ 10 (how ``--vary LOW:HIGH:COUNT:log`` ranges are
usually chosen); otherwise linear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from gradbench.core import format_params, parse_params
from gradbench.errors import GradbenchError

PARAM_COLUMNS = ("task_params", "estimator_params")


@dataclass(frozen=True)
class XAxis:
    name: str  # "tau" or the option's name
    log: bool

    @property
    def symbol(self) -> str:
        return "τ" if self.name == "tau" else self.name

    @property
    def label(self) -> str:
        what = "temperature τ" if self.name == "tau" else self.name
        return f"{what} (log scale)" if self.log else what


TAU = XAxis("tau", True)


def varied_options(df: pd.DataFrame) -> list[str]:
    """Numeric options that take more than one value for one task and estimator in ``df``'s parameters (options
    that merely differ between estimators, such as RLOO's m and another estimator's m, are no sweep axis)."""
    found = []
    for _, group in df.groupby(["task", "estimator"], sort=False):
        for column in PARAM_COLUMNS:
            values: dict[str, set[str]] = {}
            for text in group[column].unique():
                for key, value in parse_params(text).items():
                    values.setdefault(key, set()).add(value)
            for key, seen in values.items():
                if len(seen) > 1 and all(_number(v) is not None for v in seen) and key not in found:
                    found.append(key)
    return found


def choose_axis(df: pd.DataFrame, name: str = "auto") -> XAxis:
    """The axis: ``name`` ('tau', an option, or 'auto': τ when the CSV has temperatures, else the one varied option)."""
    if name == "auto":
        if df["tau"].notna().any():
            return TAU
        varied = varied_options(df)
        if len(varied) > 1:
            raise GradbenchError(f"several options vary in this CSV ({', '.join(varied)}): choose one with --x")
        name = varied[0] if varied else "tau"
    if name == "tau":
        return TAU
    values = [v for text in _texts(df) for k, v in parse_params(text).items() if k == name]
    numbers = [_number(v) for v in values]
    if not values:
        raise GradbenchError(
            f"--x {name}: no row has the option {name!r} (varied here: {varied_options(df) or 'none'})"
        )
    if any(x is None for x in numbers):
        raise GradbenchError(f"--x {name}: the option {name!r} is not numeric")
    low, high = min(numbers), max(numbers)
    return XAxis(name, low > 0 and high / low >= 10)


def move_to_x(df: pd.DataFrame, axis: XAxis) -> pd.DataFrame:
    """``df`` with the axis' values in ``tau`` (NaN where a row lacks the option) and out of the parameter texts."""
    if axis.name == "tau":
        return df
    out = df.copy()
    x = []
    for i, row in out.iterrows():
        value = math.nan
        for column in PARAM_COLUMNS:
            params = parse_params(row[column])
            if axis.name in params:
                value = float(params.pop(axis.name))
                if column == "estimator_params" and not math.isnan(row["tau"]):
                    params["tau"] = row["tau"]  # τ becomes part of the line's identity
                out.at[i, column] = format_params(params)
            elif column == "estimator_params" and not math.isnan(row["tau"]):
                out.at[i, column] = format_params({**params, "tau": row["tau"]})
        x.append(value)
    out["tau"] = x
    return out


def _texts(df: pd.DataFrame) -> list[str]:
    return [t for column in PARAM_COLUMNS for t in df[column].unique()]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
