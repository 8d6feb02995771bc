"""Plain-language judgements computed from a cell's numbers: the flags of the summary and the verdict under ``run``.

Every judgement is a rule on the columns, stated here and in docs/columns.md, and tested on rows where it must and
must not fire (tests/test_judge.py).

- **along** ρ = ⟨ĝ, g*⟩/‖g*‖²: how much of g* the mean estimate ĝ carries along g* (1 for a perfect mean; ≤ 0 when
  it points away). From the columns: ‖ĝ‖ = snr · √variance, ⟨ĝ, g*⟩ = cosine · ‖ĝ‖ · ‖g*‖ (for a zero-variance
  estimator, ‖ĝ‖ comes from bias and cosine: ‖ĝ‖² − 2c‖g*‖‖ĝ‖ + ‖g*‖² − bias² = 0).
- **noise floor** √(variance / n): the size of ‖ĝ − E ĝ‖ at the measured n; ρ is resolved when the floor is at most
  ‖g*‖/4 (:data:`RESOLVED`).
- **collapsed**: ρ ≤ 0.1 (:data:`COLLAPSE`) and resolved: the mean estimate is, measurably, (almost) zero along g*:
  it shrank to a fraction of g*, points across it (cosine ≈ 0), or points against it (cosine < 0). A descent step
  with it does (almost) nothing, or harm.
- **noise-dominated** at a budget that averages m estimates: variance/m ≥ ‖g*‖² and variance/m ≥ 10 · max(bias_sq,
  0) (:data:`DOMINANCE`): one averaged estimate's noise is larger than the gradient itself and than its bias, so its
  MSE ranks noise, and a larger budget (not another estimator) is what helps.
"""

from __future__ import annotations

import math

RESOLVED = 0.25
"""ρ is judged only where the noise floor √(variance/n) ≤ RESOLVED · ‖g*‖."""
COLLAPSE = 0.1
"""Collapsed when ρ ≤ COLLAPSE."""
DOMINANCE = 10.0
"""Noise-dominated when variance/m ≥ DOMINANCE · bias² (and ≥ ‖g*‖²)."""


def mean_norm(snr: float, variance: float, bias: float, cosine: float, grad_norm: float) -> float:
    """‖ĝ‖ from the columns (module docstring)."""
    if variance > 0 and math.isfinite(snr):
        return snr * math.sqrt(variance)
    disc = (cosine * grad_norm) ** 2 - grad_norm**2 + bias**2
    return cosine * grad_norm + math.sqrt(max(disc, 0.0)) if math.isfinite(cosine) else bias


def along(snr: float, variance: float, bias: float, cosine: float, grad_norm: float) -> float:
    """ρ = ⟨ĝ, g*⟩/‖g*‖² (NaN when g* = 0)."""
    if not grad_norm > 0:
        return math.nan
    if not math.isfinite(cosine):
        return 0.0 if mean_norm(snr, variance, bias, 0.0, grad_norm) == 0 else math.nan
    return cosine * mean_norm(snr, variance, bias, cosine, grad_norm) / grad_norm


def noise_floor(variance: float, n: float) -> float:
    return math.sqrt(max(variance, 0.0) / n) if n > 0 else math.nan


def collapsed(rho: float, floor: float, grad_norm: float) -> bool:
    return grad_norm > 0 and floor <= RESOLVED * grad_norm and rho <= COLLAPSE


def noise_dominated(variance: float, bias_sq: float, grad_norm: float, averaged: float) -> bool:
    """``averaged``: the number of estimates the budget averages (1 per estimate, B/c at a budget B)."""
    if not averaged > 0:
        return False
    noise = variance / averaged
    return noise >= grad_norm**2 and noise >= DOMINANCE * max(bias_sq, 0.0) and noise > 0


def flags(row, averaged: float) -> list[str]:
    """The flags of one (aggregated) row with ``bias``, ``bias_sq``, ``variance``, ``cosine``, ``snr``,
    ``grad_norm``, ``n_samples``, at a budget averaging ``averaged`` estimates."""
    out = []
    rho = along(row["snr"], row["variance"], row["bias"], row["cosine"], row["grad_norm"])
    if collapsed(rho, noise_floor(row["variance"], row["n_samples"]), row["grad_norm"]):
        out.append("collapsed")
    if noise_dominated(row["variance"], row["bias_sq"], row["grad_norm"], averaged):
        out.append("noise-dominated")
    return out


def verdict(row: dict) -> str:
    """One plain-language line under ``run``'s table, computed from the row's numbers."""
    g, variance, n = float(row["grad_norm"]), float(row["variance"]), int(row["n_samples"])
    floor = noise_floor(variance, n)
    rho = along(float(row["snr"]), variance, float(row["bias"]), float(row["cosine"]), g)
    detected = float(row["bias_pvalue"]) < 0.01
    if not g > 0:
        return "verdict: the exact gradient is 0 here: only the variance is informative."
    size = math.sqrt(max(float(row["bias_sq"]), 0.0)) / g
    if detected:
        text = f"verdict: biased: ‖bias‖ ≈ {_pct(size)} of ‖g*‖ (p = {float(row['bias_pvalue']):.2g})"
        if collapsed(rho, floor, g):
            text += f"; collapsed: its mean carries {rho:.2g} × g* along g* (a step with it does almost nothing)"
        elif float(row["cosine"]) < 0:
            text += f"; its mean points away from g* (cosine {float(row['cosine']):.2f})"
        return text + "."
    if floor > RESOLVED * g:
        needed = math.ceil(variance / (RESOLVED * g) ** 2)
        return (
            f"verdict: gradient below the noise at this n (noise floor √(variance/n) = {floor / g:.3g} × ‖g*‖): "
            f"bias not measurable, cosine and bias are noise; use --samples ≥ {needed:,} to resolve it."
        )
    if variance == 0:
        return "verdict: zero variance (every estimate is the same) and no bias beyond rounding: exact here."
    return (
        f"verdict: no bias detected at this n (noise floor {_pct(floor / g)} of ‖g*‖: only a bias well above it "
        f"would show); cosine {float(row['cosine']):.3f}."
    )


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%" if x < 10 else f"{x:.3g} ×"
