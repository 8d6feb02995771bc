"""The Bernoulli toy of REBAR (Tucker et al. 2017) and RELAX (Grathwohl et al. 2018)."""

from __future__ import annotations

import torch

from gradbench.core import Param, Task
from gradbench.registry import register_task


@register_task
class Bernoulli(Task):
    """``dim`` independent binary variables (K = 2, b_d = z[d, 1]); f(z) = mean_d |b_d − target|^p (default p = 2).

    D = ``dim``, K = 2; initial logits θ_d = (0, ``logit``) for every d, so p(b_d = 1) = sigmoid(logit).
    With target 0.499 and logit 0 the exact gradient is ±¼(1 − 2·target)/D = ±5·10⁻⁴ (D = 1): a tiny signal
    under REINFORCE's per-draw variance of about 0.0156 per component. Separable: exact gradient in closed form.
    On the simplex, b_d is the relaxed z[d, 1].

    The exponent ``p`` gives the polynomial programming problem of Liu et al. (2023), "Bridging Discrete and
    Backpropagation: Straight-Through and Beyond" (ReinMax), §6: 128 variables, target 0.45, p ∈ {1.5, 2, 3}
    (``--task-opt dim=128 --task-opt target=0.45 --task-opt p=3``). p = 2 is computed as a square, so the numbers
    of the original toy are unchanged.
    """

    name = "bernoulli"
    summary = "REBAR/RELAX toy: f = mean_d |b_d − target|^p (p = 2), binary variables"
    params = (
        Param("dim", int, 1, "number of binary variables D", low=1),
        Param("target", float, 0.499, "the target t in (b − t)²"),
        Param("logit", float, 0.0, "θ = (0, logit) for every variable"),
        Param("p", float, 2.0, "exponent p in |b − t|^p", low=1.0),
    )

    @classmethod
    def dims(cls, config):
        return (config["dim"], 2)

    def __init__(self, **options):
        super().__init__(**options)
        self.D, self.K = self.config["dim"], 2

    def initial_logits(self) -> torch.Tensor:
        theta = torch.zeros(self.D, 2, dtype=torch.float64)
        theta[:, 1] = self.config["logit"]
        return theta

    def f(self, z: torch.Tensor) -> torch.Tensor:
        b = z[..., 1]  # ... x D
        p = self.config["p"]
        if p == 2.0:
            return (b - self.config["target"]).square().mean(-1)
        return (b - self.config["target"]).abs().pow(p).mean(-1)

    def f_grad(self, z: torch.Tensor) -> torch.Tensor:
        g = torch.zeros_like(z)  # ∂f/∂z_d0 = 0
        diff = z[..., 1] - self.config["target"]  # ... x D
        p = self.config["p"]
        if p == 2.0:
            g[..., 1] = diff * (2.0 / self.D)  # ∂f/∂z_d1 = 2 (b_d − t) / D
        else:
            g[..., 1] = diff.sign() * diff.abs().pow(p - 1.0) * (p / self.D)  # p |b_d − t|^(p−1) sign(b_d − t) / D
        return g

    def separable_values(self) -> torch.Tensor:
        t, p = self.config["target"], self.config["p"]
        if p == 2.0:
            h = torch.tensor([t**2, (1 - t) ** 2], dtype=torch.float64) / self.D  # f_d(b = 0), f_d(b = 1)
        else:
            h = torch.tensor([abs(t) ** p, abs(1 - t) ** p], dtype=torch.float64) / self.D
        return h.expand(self.D, 2).clone()
