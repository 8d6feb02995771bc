"""Surrogate-loss estimators: the form training code is written in, measured as a gradbench estimator.

Training code rarely computes a gradient estimate g directly; it builds a *surrogate loss* L whose autograd
gradient is the estimate (Schulman, Heess, Weber & Abbeel 2015, "Gradient estimation using stochastic computation
graphs", NeurIPS; pyro's TraceGraph_ELBO; storchastic's ``storch.backward()``; DiCE, Foerster et al. 2018):

    REINFORCE:  L = f(z).detach() · log p_θ(z)            ∇_θ L = f(z) ∇_θ log p_θ(z)

**The signature** a user writes (one function, no class)::

    def my_surrogate(logits, f, rng) -> Tensor:
        # logits: n x D x K, requires grad: row i is a private copy of θ for estimate i
        # f:      the task's objective, ... x D x K -> ... (one-hot or, for relaxable tasks, on the simplex)
        # rng:    gradbench.rng.BlockRng for these n estimates: rng.uniform/open_uniform/gumbel(D, K) -> n x D x K,
        #         rng.categorical(probs D x K) -> n x D indices. ALL randomness must come from it.
        # return: n surrogate losses, L_i depending on row i only (or their sum, a scalar; never their mean)

The adapter (:func:`surrogate_estimator`) returns an :class:`~gradbench.core.Estimator` whose estimates are the
per-row gradients ∂L_i/∂logits_i, from **one backward pass** over the n rows: each row has its own copy of θ
(an n x D x K leaf), so ∂(Σ_j L_j)/∂logits_i = ∂L_i/∂logits_i exactly when rows do not interact.

**Independence of rows is checked, not assumed.** At setup, a probe batch of 4 rows is evaluated at once and
row by row (row i draws from its own generator in both cases, see :mod:`gradbench.rng`); if the per-row gradients
differ (a baseline averaged over the batch, a running average updated inside the call, cross-row terms), the
rows are not independent estimates, and the adapter warns and falls back to one call per estimate (a Python loop,
slow but correct), each estimate drawing from a generator of its own that depends only on its position in the
cell, so the numbers stay independent of the chunk size.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from gradbench.core import Estimator, Param, Problem
from gradbench.errors import GradbenchError
from gradbench.rng import BlockRng

Surrogate = Callable[[torch.Tensor, Callable[[torch.Tensor], torch.Tensor], BlockRng], torch.Tensor]

PROBE_ROWS = 4
PROBE_BLOCK = 1 << 40
"""Block ids of the independence probe: far from any block of a real cell (a cell has < 2^40 blocks)."""
ROW_STRIDE = 1 << 24
"""Loop mode: estimate j of block b draws from block id (b + 1) · ROW_STRIDE + j (blocks hold < 2^24 estimates)."""


class RowMixingWarning(UserWarning):
    """A surrogate's rows are not independent estimates; the adapter loops over estimates instead."""


def _losses(surrogate: Surrogate, leaf: torch.Tensor, f: Callable, rng: BlockRng, name: str) -> torch.Tensor:
    """Call the surrogate and normalise its output to n losses (a scalar counts as their sum)."""
    value = surrogate(leaf, f, rng)
    if not isinstance(value, torch.Tensor):
        raise GradbenchError(f"surrogate {name!r} returned {type(value).__name__}, expected a tensor of losses")
    n = leaf.shape[0]
    if value.shape not in ((n,), (), (1,)) or (value.numel() == 1 and n > 1 and value.dim() == 1):
        raise GradbenchError(
            f"surrogate {name!r} returned shape {tuple(value.shape)}, expected ({n},) (one loss per row) or () "
            "(their sum)"
        )
    if not value.requires_grad:
        raise GradbenchError(f"surrogate {name!r} returned losses that do not depend on the logits (no gradient)")
    return value


def surrogate_gradients(surrogate: Surrogate, problem: Problem, rng: BlockRng, name: str) -> torch.Tensor:
    """Per-row gradients of the surrogate, one backward pass: n x D x K in θ's dtype."""
    theta = problem.theta  # D x K
    leaf = theta.detach().expand(rng.n, *theta.shape).clone().requires_grad_(True)  # n x D x K
    with torch.enable_grad():
        losses = _losses(surrogate, leaf, problem.task.f, rng, name)
        (grad,) = torch.autograd.grad(losses.sum(), leaf, allow_unused=True)
    if grad is None:
        return torch.zeros_like(leaf)
    return grad.detach().to(theta.dtype)


class SurrogateEstimator(Estimator):
    """An estimator made from a surrogate loss (see the module docstring); subclasses are built by
    :func:`surrogate_estimator`."""

    surrogate: Surrogate
    family = "surrogate"

    independent_rows: bool | None = None
    """None: probe at setup; True: trusted (no probe; e.g. a peer library that draws from the global RNG, where the
    probe cannot replay a row's randomness); False: always one call per estimate."""

    def setup(self, problem: Problem, seed: int) -> None:
        self._seed = seed
        if self.independent_rows is not None:
            self.loop = not self.independent_rows
            return
        self.loop = not self._rows_independent(problem, seed)
        if self.loop:
            warnings.warn(
                f"surrogate {self.name!r}: its rows are not independent estimates (row i's gradient changes when "
                "other rows are in the same call); falling back to one call per estimate (slow)",
                RowMixingWarning,
                stacklevel=2,
            )

    def _rows_independent(self, problem: Problem, seed: int) -> bool:
        rows = [PROBE_BLOCK + i for i in range(PROBE_ROWS)]
        together = surrogate_gradients(self.surrogate, problem, BlockRng(seed, rows[0], [1] * PROBE_ROWS), self.name)
        alone = torch.cat(
            [surrogate_gradients(self.surrogate, problem, BlockRng(seed, b, [1]), self.name) for b in rows]
        )
        scale = float(alone.abs().max()) or 1.0
        eps = torch.finfo(problem.theta.dtype).eps
        return bool(((together - alone).abs() <= 64 * eps * scale).all())

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        if not getattr(self, "loop", False):
            return surrogate_gradients(self.surrogate, problem, rng, self.name)  # n x D x K
        out = []
        for b, size in enumerate(rng.sizes):
            block = rng.first_block + b
            for j in range(size):  # one call per estimate: its own generator, fixed by its position in the cell
                one = BlockRng(self._seed, (block + 1) * ROW_STRIDE + j, [1], problem.theta.device)
                out.append(surrogate_gradients(self.surrogate, problem, one, self.name))
        return torch.cat(out)  # n x D x K


def surrogate_estimator(
    name: str,
    surrogate: Surrogate,
    *,
    unbiased: bool,
    needs_relaxation: bool = False,
    binary_only: bool = False,
    summary: str | None = None,
    params: tuple[Param, ...] = (),
    draws_per_estimate: int = 1,
    independent_rows: bool | None = None,
) -> type[SurrogateEstimator]:
    """An :class:`Estimator` class named ``name`` whose estimates are ∂L_i/∂θ of ``surrogate`` (not registered;
    see :func:`gradbench.api.register_surrogate`). Declared hyper-parameters arrive as keyword arguments of the
    surrogate: ``surrogate(logits, f, rng, **config)``."""
    if not callable(surrogate):
        raise GradbenchError(f"surrogate {name!r} is not callable")
    doc = (surrogate.__doc__ or "").strip() or f"surrogate loss {getattr(surrogate, '__qualname__', name)}"

    def call(self: SurrogateEstimator, logits: torch.Tensor, f: Callable, rng: BlockRng) -> torch.Tensor:
        return surrogate(logits, f, rng, **self.config)

    attrs: dict[str, Any] = {
        "name": name,
        "summary": summary or doc.splitlines()[0],
        "unbiased": unbiased,
        "needs_relaxation": needs_relaxation,
        "binary_only": binary_only,
        "params": tuple(params),
        "surrogate": call,
        "draws_per_estimate": property(lambda self: draws_per_estimate),
        "independent_rows": independent_rows,
        "__doc__": doc,
        "__module__": getattr(surrogate, "__module__", __name__),
    }
    return type(f"Surrogate_{name.replace('-', '_')}", (SurrogateEstimator,), attrs)


def register_cli_surrogate(spec: str) -> str:
    """``--surrogate pkg.mod:fn`` or ``file.py:fn`` (optionally ``=NAME``): register the function as an estimator.

    Declarations come from attributes of the function when present (``fn.unbiased``, ``fn.needs_relaxation``,
    ``fn.binary_only``, ``fn.draws_per_estimate``, ``fn.independent_rows``); without ``fn.unbiased`` the estimator
    is declared biased (nothing is claimed). Returns the estimator's name (NAME, else the function's name with
    ``_`` as ``-``).
    """
    from gradbench.registry import ESTIMATORS, load_plugin, register_estimator, resolve_object

    target, _, alias = spec.partition("=")
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise GradbenchError(f"--surrogate {spec!r}: expected pkg.mod:function or file.py:function")
    if where.endswith(".py"):
        fn = getattr(load_plugin(where), attr, None)
        if fn is None:
            raise GradbenchError(f"--surrogate {spec!r}: {where} defines no {attr!r}")
    else:
        fn = resolve_object(target, "--surrogate")
    if not callable(fn):
        raise GradbenchError(f"--surrogate {spec!r} is not a function")
    name = alias or attr.rsplit(".", 1)[-1].replace("_", "-")
    old = ESTIMATORS.get(name)
    if old is not None and getattr(old, "surrogate_function", None) is fn:
        return name
    cls = surrogate_estimator(
        name,
        fn,
        unbiased=bool(getattr(fn, "unbiased", False)),
        needs_relaxation=bool(getattr(fn, "needs_relaxation", False)),
        binary_only=bool(getattr(fn, "binary_only", False)),
        draws_per_estimate=int(getattr(fn, "draws_per_estimate", 1)),
        independent_rows=getattr(fn, "independent_rows", None),
    )
    cls.surrogate_function = fn  # type: ignore[attr-defined]
    if old is not None:
        raise GradbenchError(f"--surrogate {spec!r}: estimator name {name!r} is taken; name it: {target}=NEW-NAME")
    register_estimator(cls)
    return name
