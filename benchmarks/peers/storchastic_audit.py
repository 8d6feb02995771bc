"""storchastic's estimators as gradbench surrogates, for `gradbench audit` (a plug-in file; not a test dependency).

Install storchastic away from the project's environment (it declares pyro-ppl and entmax; --no-deps keeps torch):

    pip install --no-deps --target /tmp/peerlib storchastic entmax pyro-ppl pyro-api opt_einsum tqdm
    PYTHONPATH=/tmp/peerlib gradbench audit storch-disarm --plugin benchmarks/peers/storchastic_audit.py \\
        --tasks bernoulli-peer --samples 40000

storchastic's call convention (storchastic 0.3.7, ``storch/inference.py``): parameters are tagged with an
independent plate (``storch.denote_independent(logits, 0, "R")``), a *method* samples from a torch distribution
(``storch.method.DisARM("z")(Bernoulli(logits=…))``), costs are registered with ``storch.add_cost(cost, name)``,
and ``storch.surrogate_loss()`` returns the surrogate loss, which ``storch.backward()`` differentiates. The loss
averages over the plate R, so its gradient w.r.t. row i is (1/R) × row i's estimate: the surrogate below returns
R × the loss, the sum convention of :mod:`gradbench.surrogate`. Each row of the plate is an independent estimate,
except where the method itself averages over the plate (the moving-average baseline: one row per call).

storchastic draws through ``torch.distributions`` from torch's global generator, so the audit's reproducibility
properties name it; the bias tests do not depend on where the randomness comes from.
"""

from __future__ import annotations

import dataclasses
import itertools

import torch

import gradbench
from gradbench.registry import get_task


def _loss(n: int):
    import storch

    loss = storch.inference.surrogate_loss()
    storch.reset()  # forget the cost nodes; the gradient is taken by gradbench
    return loss._tensor * n  # mean over the plate -> sum


def _one_hot_binary(b):
    import storch

    return storch.deterministic(lambda t: torch.stack([1 - t.to(torch.float64), t.to(torch.float64)], -1))(b)


def disarm(logits, f, rng):
    """storchastic's DisARM (Dong, Mnih & Tucker 2020) on Bernoulli(logits = θ₁ − θ₀), as a surrogate loss."""
    import storch
    from torch.distributions import Bernoulli

    alpha = storch.denote_independent(logits, 0, "R")
    b = storch.method.DisARM("z")(Bernoulli(logits=alpha[..., 1] - alpha[..., 0]))
    storch.add_cost(f(_one_hot_binary(b)), "cost")
    return _loss(logits.shape[0])


disarm.unbiased = True
disarm.binary_only = True
disarm.draws_per_estimate = 2
disarm.independent_rows = True  # a plate of independent rows; the probe cannot replay global-RNG draws


def unordered_set(logits, f, rng, k: int = 4):
    """storchastic's UnorderedSetEstimator (Kool, van Hoof & Welling 2020, with its built-in baseline) on the joint
    categorical over the K^D configurations, log p(s) = Σ_d log p_d(s_d). Its memory grows with the square of the
    plate, so the rows go through it 50 at a time (as in storchastic_check.py); the losses are summed."""
    import storch
    from torch.distributions import OneHotCategorical

    D, K = logits.shape[-2:]
    configs = torch.tensor(list(itertools.product(range(K), repeat=D)))  # K^D x D
    onehots = torch.nn.functional.one_hot(configs, K).to(logits)  # K^D x D x K
    to_config = storch.deterministic(lambda t: torch.einsum("...c,cdk->...dk", t.to(onehots), onehots))
    total = 0.0
    for rows in logits.split(50):  # each slice: its own plate of independent rows
        joint = rows.log_softmax(-1)[:, torch.arange(D), configs].sum(-1)  # r x K^D
        plate = storch.denote_independent(joint, 0, "R")
        z = storch.method.UnorderedSetEstimator("z", k=k)(OneHotCategorical(logits=plate))
        storch.add_cost(f(to_config(z)), "cost")
        total = total + _loss(rows.shape[0])
    return total


unordered_set.unbiased = True
unordered_set.draws_per_estimate = 4
unordered_set.independent_rows = True


_MOVING = {}


def moving_average(logits, f, rng, decay: float = 0.5):
    """storchastic's ScoreFunction with its moving-average baseline (exponential_decay = decay), one estimate per
    call as in a training loop (the average lives in the method object and is carried from call to call)."""
    import storch
    from torch.distributions import OneHotCategorical

    method = _MOVING.setdefault(
        decay,
        storch.method.ScoreFunction("z", n_samples=1, baseline_factory="moving_average", exponential_decay=decay),
    )
    z = method(OneHotCategorical(logits=storch.denote_independent(logits, 0, "R")))
    storch.add_cost(f(z), "cost")
    return _loss(logits.shape[0])


moving_average.unbiased = True
moving_average.independent_rows = False  # the baseline averages over the plate and over calls


def _defaults(cls, **defaults):
    """cls.params with other defaults (a task variant registered under another name)."""
    return tuple(dataclasses.replace(p, default=defaults.get(p.name, p.default)) for p in cls.params)


class SumTargetPeer(get_task("sum-target")):
    """sum-target with dim = 2, categories = 3 (9 configurations): where storchastic's unordered-set bias shows."""

    name = "sum-target-peer"
    params = _defaults(get_task("sum-target"), dim=2, categories=3)


class BernoulliPeer(get_task("bernoulli")):
    """bernoulli with dim = 3, logit = 0.7, target = 0.3 (docs/validation.md's DisARM cell)."""

    name = "bernoulli-peer"
    params = _defaults(get_task("bernoulli"), dim=3, logit=0.7, target=0.3)


class BernoulliT02(get_task("bernoulli")):
    """bernoulli with target = 0.2 (docs/validation.md's moving-average cell)."""

    name = "bernoulli-t02"
    params = _defaults(get_task("bernoulli"), target=0.2)


gradbench.register_task(SumTargetPeer)
gradbench.register_task(BernoulliPeer)
gradbench.register_task(BernoulliT02)
gradbench.register_surrogate(
    "storch-disarm", disarm, unbiased=True, binary_only=True, draws_per_estimate=2, independent_rows=True
)
gradbench.register_surrogate(
    "storch-unordered-set", unordered_set, unbiased=True, draws_per_estimate=4, independent_rows=True
)
gradbench.register_surrogate("storch-moving-average", moving_average, unbiased=True, independent_rows=False)
