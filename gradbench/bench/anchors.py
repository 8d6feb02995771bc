"""The reference points ``ours`` is compared with: the random-fill limit, two naive per-draw loops, stock batched
torch. Each takes a prepared problem and returns estimates per second (see :mod:`gradbench.bench`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from gradbench.rng import BlockRng

STOCK_BATCHES = (1024, 8192)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[[], Any]) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def limit_rate(n: int, chunk: int, D: int, K: int, device: torch.device, dtype: torch.dtype, seed: int) -> float:
    """Estimates per second at which n x D x K uniforms are generated into a preallocated [chunk, D, K] tensor."""
    buffer = torch.empty(chunk, D, K, device=device, dtype=dtype)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    rounds = max(1, math.ceil(n / chunk))

    def fill() -> None:
        for _ in range(rounds):
            buffer.uniform_(generator=gen)

    return rounds * chunk / timed(device, fill)


class RunningSums:
    """The naive user's statistics: Σ g and Σ g² in float64."""

    def __init__(self, shape: tuple[int, ...], device: torch.device):
        self.s1 = torch.zeros(shape, dtype=torch.float64, device=device)
        self.s2 = torch.zeros(shape, dtype=torch.float64, device=device)

    def add(self, g: torch.Tensor) -> None:
        g = g.to(torch.float64)
        self.s1 += g
        self.s2 += g * g


def naive_step(name: str, estimator, problem, tau: float, sums: RunningSums) -> tuple[Callable[[int], None], str]:
    """One draw of the naive loop (argument: the draw's index) and a label of what it is."""
    F = torch.nn.functional
    theta, task = problem.theta, problem.task
    K = theta.shape[-1]

    def leaf() -> torch.Tensor:
        return theta.detach().clone().requires_grad_(True)

    if name in ("gumbel", "st-gumbel"):
        hard = name == "st-gumbel"

        def relaxed(_: int) -> None:
            th = leaf()
            task.f(F.gumbel_softmax(th, tau=tau, hard=hard)).backward()
            sums.add(th.grad)

        return relaxed, f"F.gumbel_softmax({'hard=True' if hard else 'hard=False'}) + backward per draw"
    if name == "reinforce":

        def score(_: int) -> None:
            th = leaf()
            dist = torch.distributions.Categorical(logits=th)
            z = dist.sample()  # D
            f = task.f(F.one_hot(z, K).to(th))
            (f.detach() * dist.log_prob(z).sum()).backward()
            sums.add(th.grad)

        return score, "Categorical sample + log_prob backward per draw"

    estimator.setup(problem, 0)

    def generic(i: int) -> None:
        sums.add(estimator.estimate(problem, BlockRng(0, i, [1], theta.device))[0])

    return generic, "gradbench estimator with n = 1 per draw"


def gumbel_softmax_loop(problem, tau: float) -> Callable[[int], None]:
    """The first loop a user writes, the same for every estimator: per draw, a fresh leaf θ, ``F.gumbel_softmax(θ,
    τ)`` (stock torch), f, ``backward()``; the gradient is read and dropped (no statistics). Its rate is the naive
    anchor that issue 15's targets are stated against (``naive_gs_per_sec``)."""
    F = torch.nn.functional
    theta, task = problem.theta, problem.task

    def step(_: int) -> None:
        th = theta.detach().clone().requires_grad_(True)  # D x K
        task.f(F.gumbel_softmax(th, tau=tau)).backward()
        th.grad  # noqa: B018 - read, as a user would

    return step


def stock_variants(name: str, problem, tau: float) -> list[tuple[str, Callable[[int], torch.Tensor]]]:
    """Batched stock-torch ways of computing B estimates (argument B), each returning B x D x K."""
    F = torch.nn.functional
    dist = torch.distributions
    theta, task = problem.theta, problem.task
    K = theta.shape[-1]

    def leaf(B: int) -> torch.Tensor:
        return theta.detach().expand(B, *theta.shape).clone().requires_grad_(True)  # B x D x K

    def through(sample: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[int], torch.Tensor]:
        def run(B: int) -> torch.Tensor:
            th = leaf(B)
            task.f(sample(th)).sum().backward()
            return th.grad

        return run

    temperature = torch.tensor(tau, dtype=theta.dtype, device=theta.device)
    if name == "gumbel":
        return [
            (
                "RelaxedOneHotCategorical.rsample",
                through(lambda th: dist.RelaxedOneHotCategorical(temperature, logits=th).rsample()),
            ),
            ("F.gumbel_softmax", through(lambda th: F.gumbel_softmax(th, tau=tau))),
        ]
    if name == "st-gumbel":
        return [("F.gumbel_softmax(hard=True)", through(lambda th: F.gumbel_softmax(th, tau=tau, hard=True)))]
    if name == "reinforce":

        def score(B: int) -> torch.Tensor:
            th = leaf(B)
            d = dist.Categorical(logits=th)  # batch B x D
            z = d.sample()  # B x D
            f = task.f(F.one_hot(z, K).to(th))  # B
            (f.detach() * d.log_prob(z).sum(-1)).sum().backward()
            return th.grad

        return [("Categorical sample + log_prob", score)]
    return []


def batched_rate(run: Callable[[int], torch.Tensor], B: int, n: int, device: torch.device) -> float:
    rounds = max(1, math.ceil(n / B))

    def go() -> None:
        for _ in range(rounds):
            run(B)

    return rounds * B / timed(device, go)
