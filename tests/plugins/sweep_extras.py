"""A plug-in for the sweep tests: a τ ≥ 1 estimator, one with a required hyper-parameter, and a slow one."""

import time

import gradbench
from gradbench.core import REQUIRED, temperature_param
from gradbench.estimators.reinforce import Reinforce


@gradbench.register_estimator
class Warm(Reinforce):
    """REINFORCE that declares a temperature τ ≥ 1 (like ReinMax): cells with τ < 1 must be skipped."""

    name = "warm"
    summary = "REINFORCE with a τ ≥ 1"
    params = (gradbench.Param("tau", float, REQUIRED, "temperature", low=1.0), gradbench.Param("m", int, 2, "m"))


@gradbench.register_estimator
class NeedsK(Reinforce):
    """REINFORCE with a required hyper-parameter k and no temperature."""

    name = "needs-k"
    summary = "REINFORCE with a required k"
    params = (gradbench.Param("k", int, REQUIRED, "a required option", low=1),)


@gradbench.register_estimator
class Slow(Reinforce):
    """REINFORCE with a temperature that does nothing, sleeping 0.1 s per cell: sweeps that can be interrupted."""

    name = "slow"
    summary = "REINFORCE, 0.1 s per cell"
    params = (temperature_param(),)

    def setup(self, problem, seed):
        time.sleep(0.1)


@gradbench.register_estimator
class NanWhenCold(Reinforce):
    """REINFORCE that returns NaN estimates for τ < 1: cells whose every estimate is non-finite (counted, not fatal)."""

    name = "nan-cold"
    summary = "NaN below τ = 1"
    params = (temperature_param(),)

    def estimate(self, problem, rng):
        g = super().estimate(problem, rng)
        return g * float("nan") if self.config["tau"] < 1 else g


@gradbench.register_estimator
class CrashWhenCold(Reinforce):
    """REINFORCE that raises for τ < 1: a cell that fails at run time."""

    name = "crash-cold"
    summary = "raises below τ = 1"
    params = (temperature_param(),)

    def estimate(self, problem, rng):
        if self.config["tau"] < 1:
            raise RuntimeError("too cold to estimate")
        return super().estimate(problem, rng)
