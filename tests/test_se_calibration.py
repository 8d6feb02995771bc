"""Are ``variance_se`` and ``mse_se`` honest? For every registered estimator, the spread of ``variance`` and ``mse``
over many seeds must agree with the standard error the runner reports (batch means over 16 replicate groups).

The seeds are fixed (0 … SEEDS − 1), so the test is deterministic. With 100 seeds the SD over seeds is itself known
to a relative ≈ 1/√(2·99) = 7% for normal-looking spreads. Tolerance: SD / mean SE in [0.6, 1.35]. The upper bound
is the one that matters (an understated SE makes ``gradbench check`` cry wolf): before stateful estimators got
independent streams, reinforce-baseline measured 1.88 here. Metrics that are constant up to float64 rounding (the
exact estimator; the mse of REINFORCE on the needle, where ‖g − g*‖² takes one value) are exempt.
"""

from __future__ import annotations

import math
import statistics

import pytest

from gradbench import stats
from gradbench.runner import CellSpec, build_task, run_cell
from tests.helpers import ESTIMATORS, TASKS, default_hparams

SEEDS = 100
SAMPLES = 2048
LOW, HIGH = 0.6, 1.35
ROUNDING = 1e-12
SMALL_TASKS = [("bernoulli", {"target": 0.45, "logit": 1.0}), ("sum-target", {"dim": 2, "categories": 3})]
"""Tried first, in order (the Bernoulli cell is where reinforce-baseline's SE was 1.9x too small); an estimator that
runs on none of them uses the first registered task it runs on, at its default options."""


def calibration_task(cls) -> tuple[str, dict] | None:
    estimator = cls(**default_hparams(cls))
    for name, options in SMALL_TASKS + [(name, {}) for name in TASKS]:
        if estimator.incompatibility(build_task(name, options)) is None:
            return name, options
    return None


def spread_over_seeds(
    estimator: str, task: str, options: dict, seeds: int = SEEDS, samples: int = SAMPLES, params: dict | None = None
):
    """{metric: (SD of the metric over seeds, mean reported SE, mean of the metric)} for variance and mse."""
    params = default_hparams(ESTIMATORS[estimator]) | (params or {})
    rows = [
        run_cell(CellSpec(task, estimator, options, params, seed=s, n_samples=samples, dtype="float64"))
        for s in range(seeds)
    ]
    return {
        metric: (
            statistics.stdev(r[metric] for r in rows),
            statistics.fmean(r[f"{metric}_se"] for r in rows),
            statistics.fmean(r[metric] for r in rows),
        )
        for metric in ("variance", "mse")
    }


def assert_calibrated(estimator: str, task: str, options: dict, **kwargs) -> None:
    for metric, (sd, mean_se, mean) in spread_over_seeds(estimator, task, options, **kwargs).items():
        if max(sd, mean_se) <= ROUNDING * abs(mean):  # a metric constant up to rounding (exact; a needle's mse)
            continue
        ratio = sd / mean_se if mean_se > 0 else math.inf
        assert LOW <= ratio <= HIGH, f"{estimator} on {task} {options}: SD/SE of {metric} = {ratio:.2f}"


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_reported_standard_errors_match_the_spread_over_seeds(estimator):
    where = calibration_task(ESTIMATORS[estimator])
    if where is None:
        pytest.skip(f"{estimator} runs on no registered task")
    assert_calibrated(estimator, *where)


COLD = {"warmup": 0}
"""reinforce-baseline without its warm-up: every stream starts at b_0 = 0, the hardest case for the error bars."""


@pytest.mark.parametrize("params", [{}, COLD], ids=["warm", "cold"])
def test_stateful_streams_on_the_needle(params):
    """The cell where cold-started streams make the *between*-group spread what varies from seed to seed (the
    default Bernoulli needle: ``gradbench check``'s own grid); group values centred on each group's own mean missed
    it (SD/SE 8.5)."""
    assert_calibrated("reinforce-baseline", "bernoulli", {}, samples=10_000, params=params)


def test_stateful_streams_are_what_makes_the_se_honest(monkeypatch):
    """The broken variant: reinforce-baseline (cold) run as one stream (its running mean shared by all 16 groups)
    has an SE far below the spread over seeds; its own streams bring the ratio back to ≈ 1."""
    cls = ESTIMATORS["reinforce-baseline"]
    assert cls.stateful
    task, options = SMALL_TASKS[0]
    honest = spread_over_seeds("reinforce-baseline", task, options, seeds=100, params=COLD)
    monkeypatch.setattr(cls, "stateful", False)
    shared = spread_over_seeds("reinforce-baseline", task, options, seeds=100, params=COLD)
    for metric in ("variance", "mse"):
        assert 0.8 < honest[metric][0] / honest[metric][1] < 1.25, honest
        assert shared[metric][0] / shared[metric][1] > 1.5, shared


def test_group_values_centred_on_their_own_means_miss_the_streams_cold_starts(monkeypatch):
    """The other broken variant: per-group variances about each group's own mean (the formula before streams).
    With reinforce-baseline's 16 cold streams on the needle, the spread over seeds is then far above the reported
    SE."""

    def own_means(moments, mean_dev, n):
        counts = moments.count
        full = counts >= 2
        group_var = moments.m2.sum(1) / (counts - 1).clamp(min=1)
        group_mse = moments.mean.square().sum(1) + moments.m2.sum(1) / counts.clamp(min=1)
        return group_var[full], group_mse[full]

    monkeypatch.setattr(stats, "replicate_group_values", own_means)
    sd, mean_se, _ = spread_over_seeds("reinforce-baseline", "bernoulli", {}, samples=10_000, params=COLD)["variance"]
    assert sd / mean_se > 3
