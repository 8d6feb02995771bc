"""NVIL: REINFORCE with a learned input-independent baseline and variance normalisation."""

from __future__ import annotations

import math

import torch

from gradbench.core import Estimator, Param, Problem, format_params
from gradbench.errors import GradbenchError
from gradbench.fast import categorical_one_hot
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng, block_seed

TRAIN_BATCH = 64
"""Draws per training step of the baseline and the variance estimate."""
DECAY = 0.8
"""The paper's α of the exponential moving averages."""
TRAIN_STREAM = 1 << 61
"""Block index seeding the training draws (far from the measurement blocks, and from RELAX's stream)."""
_TRAINED: dict[tuple, tuple[float, float]] = {}
"""(c, scale) learned in this process, keyed by what the training depends on (task, options, θ, hyper-parameters)."""
_TRAINED_MAX = 256


@register_estimator
class Nvil(Estimator):
    """NVIL's score-function estimator with an input-independent baseline c and variance normalisation:

        g = (f(z) − c) / max(1, √v) · (onehot(z) − p),   z ~ p_θ,

    c and v being exponential moving averages (α = 0.8) of the mean and of the variance of the learning signal,
    learned in :meth:`setup` over ``steps`` mini-batches of 64 draws from a generator seeded by ``train_seed``
    (c_t = α c_{t−1} + (1 − α) mean(f), v_t = α v_{t−1} + (1 − α) mean((f − c_t)²), from c_0 = v_0 = 0), then frozen:
    like RELAX, NVIL with given (steps, train_seed) is one fixed function, whatever the cell's seed. The paper also
    learns an input-dependent baseline C_ψ(x); with no input here it is a constant, merged into c.
    E[g] = ∇_θ E f / max(1, √v): the baseline adds no bias (c does not depend on z), the normalisation rescales the
    gradient, so NVIL is unbiased exactly when √v ≤ 1 (declared biased, as it is not in general; see the tests).
    One evaluation of f per estimate, plus the training. Mnih & Gregor (2014), "Neural Variational Inference and
    Learning in Belief Networks", ICML, §3.3.
    """

    name = "nvil"
    summary = "REINFORCE − learned constant baseline, divided by max(1, running std); exact up to that scale"
    family = "control-variate"
    reference = "Mnih & Gregor 2014"
    unbiased = False
    cost_formula = "1 + training"
    params = (
        Param("steps", int, 100, "mini-batches of 64 draws that learn the baseline and the variance", low=1),
        Param("train_seed", int, 0, "seed of the training draws (not the cell's seed)", low=0),
    )

    def __init__(self, **hparams):
        super().__init__(**hparams)
        self.baseline: float | None = None  # c
        self.scale: float | None = None  # max(1, √v)

    def setup(self, problem: Problem, seed: int) -> None:
        theta = problem.theta
        key = (
            type(problem.task),
            format_params(problem.task.config),
            theta.detach().cpu().to(torch.float64).numpy().tobytes(),
            format_params(self.config),
        )
        if key not in _TRAINED:  # deterministic given the key: cells that differ only in their seed train once
            if len(_TRAINED) >= _TRAINED_MAX:
                _TRAINED.pop(next(iter(_TRAINED)))
            _TRAINED[key] = self._train(problem)
        self.baseline, self.scale = _TRAINED[key]

    def _train(self, problem: Problem) -> tuple[float, float]:
        """(c, max(1, √v)) from ``steps`` mini-batches drawn from ``train_seed``'s stream, in float64."""
        p = problem.probs.to(torch.float64)  # D x K
        stream = block_seed(self.config["train_seed"], TRAIN_STREAM)
        c = v = 0.0
        for step in range(self.config["steps"]):
            rng = BlockRng(stream, step, [TRAIN_BATCH], p.device)
            f = problem.task.f(categorical_one_hot(p, rng))  # 64, float64
            c = DECAY * c + (1 - DECAY) * float(f.mean())
            v = DECAY * v + (1 - DECAY) * float((f - c).square().mean())
        return c, max(1.0, math.sqrt(v))

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        if self.baseline is None:
            raise GradbenchError(f"estimator {self.name!r}: setup(problem, seed) must run before estimate")
        p = problem.probs  # D x K
        z = categorical_one_hot(p, rng)  # n x D x K
        signal = (problem.task.f(z) - self.baseline) / self.scale  # n
        return z.sub_(p).mul_(signal[:, None, None])  # n x D x K
