"""The plug-in contract: hyper-parameters, tasks, estimators, and the problem an estimator is handed.

Shared estimator signature (written once, as in DeepMind's mc_gradients)::

    estimator.estimate(problem, rng) -> Tensor  # n x D x P

- ``problem.theta`` is the parameter tensor (D x P) on the cell's device and dtype, ``problem.task`` the task;
- ``rng`` is a :class:`gradbench.rng.BlockRng` for a chunk of ``rng.n`` estimates; every random number must come
  from it (that is what makes a cell reproducible whatever the chunk size);
- the result holds one gradient estimate w.r.t. all of θ per row, in the problem's dtype, vectorized over the n
  estimates (no Python loop over draws).

Distribution families (``Task.family``; an estimator lists the ones it supports in ``Estimator.families``):

- ``categorical`` (the default): D variables with K categories; θ are logits, P = K, p = softmax(θ) per variable;
  z is one-hot over the last axis (n x D x K); a binary variable is K = 2 with b = z[..., 1] (DESIGN.md §3).
- ``gaussian``: D independent x_d ~ N(μ_d, σ_d²); θ holds P ∈ {1, 2} parameters per variable chosen by the task's
  ``wrt`` option (default (μ, σ); or (μ, log σ), μ, σ, log σ alone); x is real, shape n x D. See
  :mod:`gradbench.families`.

The ``D`` and ``K`` of a task (and of the CSV) are the two axes of θ: for a Gaussian task K is P.

This module imports no torch at import time, so ``gradbench --help`` stays fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from gradbench.errors import GradbenchError

if TYPE_CHECKING:
    import torch

    from gradbench.rng import BlockRng

REQUIRED: Any = object()
"""Sentinel default of a hyper-parameter the user must give."""


@dataclass(frozen=True)
class Param:
    """A declared hyper-parameter (estimators) or option (tasks), validated before any work is done.

    ``low``/``high`` bound the value; ``low_open``/``high_open`` make the bound strict.
    """

    name: str
    kind: type  # int, float or str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe_range(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '≥'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '≤'} {self.high:g}")
        if self.choices:
            parts.append("one of " + ", ".join(self.choices))
        return " and ".join(parts)

    def convert(self, owner: str, raw: Any) -> Any:
        """Convert ``raw`` (a string from the command line or a Python value) and check the declared range."""
        where = f"{owner}: {self.name}"
        try:
            if self.kind is int:
                if isinstance(raw, float) and not raw.is_integer():
                    raise ValueError
                value: Any = int(raw) if not isinstance(raw, str) else int(raw.strip())
            elif self.kind is float:
                value = float(raw)
            else:
                value = str(raw)
        except (TypeError, ValueError):
            raise GradbenchError(f"{where} must be {self.kind.__name__}, got {raw!r}") from None
        if self.kind is float and not math.isfinite(value):
            raise GradbenchError(f"{where} must be a finite number, got {raw!r}")
        bad = (
            (self.low is not None and (value < self.low or (self.low_open and value == self.low)))
            or (self.high is not None and (value > self.high or (self.high_open and value == self.high)))
            or (self.choices is not None and value not in self.choices)
        )
        if bad:
            raise GradbenchError(f"{where} must be {self.describe_range()}, got {raw!r}")
        return value


def resolve_params(owner: str, specs: tuple[Param, ...], given: dict[str, Any]) -> dict[str, Any]:
    """Validate ``given`` against ``specs`` and fill in defaults; names are matched exactly."""
    known = {p.name: p for p in specs}
    unknown = sorted(set(given) - set(known))
    if unknown:
        accepted = ", ".join(known) if known else "none"
        raise GradbenchError(f"{owner}: unknown option {unknown[0]!r} (accepted: {accepted})")
    values = {}
    for p in specs:
        if p.name in given and given[p.name] is not None:
            values[p.name] = p.convert(owner, given[p.name])
        elif p.required:
            raise GradbenchError(f"{owner}: {p.name} is required ({p.help})")
        else:
            values[p.name] = p.default
    return values


def format_params(values: dict[str, Any]) -> str:
    """Canonical text of a parameter set, as stored in the CSV: ``key=value`` pairs sorted, joined by ``;``."""
    return ";".join(
        f"{k}={values[k]!r}" if isinstance(values[k], float) else f"{k}={values[k]}" for k in sorted(values)
    )


def parse_params(text: str) -> dict[str, str]:
    """Inverse of :func:`format_params` (values stay strings; :func:`resolve_params` converts them)."""
    if not text:
        return {}
    out = {}
    for item in text.split(";"):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise GradbenchError(f"malformed parameter text {text!r}: expected key=value;key=value")
        out[key] = value
    return out


class Task:
    """A toy objective f over D random variables of one family, with a known exact gradient.

    Subclasses set the class attributes, build ``self.D``/``self.K`` from ``self.config`` in ``__init__`` (after
    calling ``super().__init__``), and implement :meth:`initial_logits` and :meth:`f`. The exact gradient comes
    from :meth:`exact_expectation` when it returns one; else, for a categorical task, a separable objective
    (f(z) = Σ_d h_d(z_d) on one-hot z) implements :meth:`separable_values` for a closed form, and any other is
    computed by enumerating the K^D configurations.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    family: ClassVar[str] = "categorical"  # the distribution family of the latents: categorical or gaussian
    relaxable: ClassVar[bool] = True  # f accepts points of the simplex, not only one-hot z
    default_sweep: ClassVar[bool] = True
    """False: left out of ``gradbench sweep --tasks all`` (and the default sweep: too slow for it); still runs by
    name."""
    D: int
    K: int  # the second axis of θ: categories (categorical), parameters per variable P (gaussian)

    def __init__(self, **options: Any) -> None:
        self.config = resolve_params(f"task {self.name!r}", self.params, options)

    @classmethod
    def dims(cls, config: dict[str, Any]) -> tuple[int, int] | None:
        """(D, K) a task built from the resolved options ``config`` will have, computed without building it, so
        that a size too large for memory is refused before any tensor exists. None (the default): unknown until
        the task is built."""
        return None

    def initial_logits(self) -> torch.Tensor:
        """θ at which gradients are measured, float64, D x K (logits; Gaussian: the ``wrt`` parameters)."""
        raise NotImplementedError

    def f(self, z: torch.Tensor) -> torch.Tensor:
        """Objective for z of shape ... x D x K (one-hot, or on the simplex when relaxable) -> shape ...
        (Gaussian family: x of shape ... x D, real)."""
        raise NotImplementedError

    @property
    def distribution(self):
        """The family object (sample, score, …) of this task's latents: see :mod:`gradbench.families`."""
        from gradbench.families import CATEGORICAL

        return CATEGORICAL

    def f_grad(self, z: torch.Tensor) -> torch.Tensor | None:
        """Optional closed form of ∂f(z)/∂z for each row of z (... x D x K, one-hot or on the simplex): a new
        tensor shaped like z. The default, None, lets estimators use autograd; a closed form only makes relaxation
        estimators faster (it is tested against autograd for every task that has one)."""
        return None

    def exact_expectation(self, theta: torch.Tensor) -> tuple[float, torch.Tensor] | None:
        """Optional exact (E_{z~p_θ} f, ∇_θ E f) at ``theta`` (float64 CPU, D x K), returned in float64 with the
        gradient shaped like ``theta``: a task's own closed form or structured enumeration (e.g. a model task whose
        f sums per-image terms enumerates each image's K^L configurations, not K^D). :func:`gradbench.exact.
        exact_gradient` asks this first, then :meth:`separable_values`, then enumerates. Default: None."""
        return None

    def separable_values(self) -> torch.Tensor | None:
        """For separable f: h[d, k] = h_d(e_k), float64 D x K, so that f(z) = Σ_d Σ_k h[d, k] z[d, k]."""
        return None

    @property
    def n_configurations(self) -> int:
        return self.K**self.D

    def describe(self) -> str:
        return f"{self.name} ({format_params(self.config)})" if self.config else self.name


@dataclass
class Problem:
    """What an estimator is handed: the task, θ on the cell's device/dtype, and the ground truth."""

    task: Task
    theta: torch.Tensor  # D x K, cell dtype and device
    exact_grad: torch.Tensor  # D x K, float64, same device
    exact_value: float

    @property
    def probs(self) -> torch.Tensor:
        return self.theta.softmax(-1)

    @property
    def family(self):
        """The task's distribution-family object (:mod:`gradbench.families`)."""
        return self.task.distribution


class Estimator:
    """A gradient estimator for ∇_θ E_{z~p_θ}[f(z)]. One subclass per module in ``estimators/``.

    Flags (class attributes, like ``has_rsample`` in torch.distributions):
    ``unbiased`` — E[estimate] = exact gradient (tested against enumeration for every task);
    ``needs_relaxation`` — evaluates f off the vertices of the simplex; ``binary_only`` — K = 2 tasks only;
    ``families`` — the distribution families (``Task.family``) it can estimate gradients for;
    ``stateful`` — carries state from one :meth:`estimate` call to the next (e.g. a running-mean baseline). The
    runner then draws a stateful estimator's estimates as G independent *streams* (one per replicate group, each
    from its own copy of the set-up estimator and its own seed), so that state never crosses replicate groups and
    the batch-means standard errors stay honest (see :mod:`gradbench.stats`). State prepared once in :meth:`setup`
    and frozen afterwards (RELAX's trained control variate) is not what this flag is about.
    ``params`` declares the hyper-parameters; a temperature is always called ``tau``. (``family`` is the
    estimator's own kind — score-function, relaxation, … — shown by ``gradbench list``.)
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    family: ClassVar[str]
    reference: ClassVar[str] = ""
    unbiased: ClassVar[bool]
    needs_relaxation: ClassVar[bool] = False
    binary_only: ClassVar[bool] = False
    families: ClassVar[tuple[str, ...]] = ("categorical",)
    stateful: ClassVar[bool] = False
    uses_exact_gradient: ClassVar[bool] = False  # reads problem.exact_grad (the reference estimator ``exact``)
    params: ClassVar[tuple[Param, ...]] = ()
    cost_formula: ClassVar[str | None] = None
    """f evaluations per estimate as a formula, for the estimator table, when not a constant (e.g. "m", "D·K")."""
    default_sweep: ClassVar[bool] = True
    """False: left out of ``gradbench sweep --estimators all`` (too slow for the default grid); still runs by name."""

    def __init__(self, **hparams: Any) -> None:
        self.config = resolve_params(f"estimator {self.name!r}", self.params, hparams)

    @classmethod
    def has_tau(cls) -> bool:
        return any(p.name == "tau" for p in cls.params)

    @property
    def draws_per_estimate(self) -> int:
        """Evaluations of f (draws of z) that one estimate costs."""
        return 1

    @property
    def evals_per_estimate(self) -> int:
        """Evaluations of f that one estimate costs, the unit of the equal-cost comparisons (``mse_at_equal_evals``).

        Counting rule: every evaluation of f at one point counts once, whether the point is a hard sample or a
        relaxed one, and whether or not the estimator also back-propagates through it (∂f/∂z at that point is part
        of the same evaluation, as in a model's forward-backward pass). Work that is not an evaluation of f (extra
        Gumbel draws, softmaxes, a beam search) is not counted here; it shows in ``seconds_per_estimate``. One-off
        set-up (RELAX's training of its control variate) is not per-estimate work and is not counted either.
        Defaults to ``draws_per_estimate``; an estimator whose f evaluations differ from its draws overrides it."""
        return self.draws_per_estimate

    @property
    def relative_cost(self) -> float:
        """Work of one estimate in units of one single-draw relaxed estimate (Gumbel-Softmax): a hint for sizing
        cells (``gradbench sweep --samples auto``). Defaults to ``draws_per_estimate``; estimators whose cost is not
        in f evaluations (e.g. k conditional draws per estimate) override it."""
        return float(self.draws_per_estimate)

    def evals_on(self, task: Task) -> int:
        """Evaluations of f one estimate costs on ``task`` (the CSV's ``draws_per_estimate``): ``draws_per_estimate``
        unless the cost depends on the task's size (IndeCateR: D·K evaluations)."""
        return self.draws_per_estimate

    def incompatibility(self, task: Task) -> str | None:
        """Why this estimator cannot run on ``task``, or None when it can."""
        if task.family not in self.families:
            return (
                f"estimator {self.name!r} supports {' and '.join(self.families)} latents only, "
                f"and task {task.name!r} has {task.family} latents"
            )
        if self.needs_relaxation and not task.relaxable:
            return f"estimator {self.name!r} needs f on the simplex, and task {task.name!r} has no relaxation"
        if self.binary_only and task.K != 2:
            return f"estimator {self.name!r} works on binary variables only, and task {task.name!r} has K = {task.K}"
        return None

    def setup(self, problem: Problem, seed: int) -> None:
        """Called once per cell, before the first :meth:`estimate`, on a fresh instance.

        Estimators with state prepare here (e.g. train a control variate with a generator of their own). State
        carried between :meth:`estimate` calls (declare ``stateful = True``) must be updated block by block
        (``rng.sizes``, ``rng.first_block``) so that results stay identical whatever the chunk size, and must start
        afresh when ``rng.first_block`` is 0: each stream of a stateful estimator starts at block 0.
        """

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        """Return rng.n gradient estimates, n x D x K (K = P for a Gaussian task), in the problem's dtype."""
        raise NotImplementedError


def temperature_param(default: Any = REQUIRED) -> Param:
    """The shared declaration of the temperature τ > 0 of a relaxation."""
    return Param("tau", float, default, "temperature τ of the relaxation", low=0.0, low_open=True)


def per_draw_autograd(theta: torch.Tensor, n: int, objective) -> torch.Tensor:
    """Per-draw gradients through autograd in one backward pass.

    θ (D x K) is expanded to an n x D x K leaf; ``objective(leaf)`` must return n values, the i-th depending only
    on row i; the gradient of their sum is then the n per-draw gradients.
    """
    import torch

    leaf = theta.detach().expand(n, *theta.shape).clone().requires_grad_(True)  # n x D x K
    with torch.enable_grad():
        values = objective(leaf)  # n
        (grad,) = torch.autograd.grad(values.sum(), leaf)
    return grad
