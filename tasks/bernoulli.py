"""The Bernoulli toy of REBAR (Tucker et al. 2017) and RELAX (Grathwohl et al. 2018)."""

from __future__ import annotations

import torch

from gradbench.core import Param, Task
from gradbench.registry import register_task


@register_task
class Bernoulli(Task):
    """``dim`` independent binary variables (K = 2, b_d = z[d, 1]); f(z) = mean_d (b_d − target)².

    D = ``dim``, K = 2; initial logits θ_d = (0, ``logit``) for every d, so p(b_d = 1) = sigmoid(logit).
    With target 0.499 and logit 0 the exact gradient is ±¼(1 − 2·target)/D = ±5·10⁻⁴ (D = 1): a tiny signal
    under REINFORCE's per-draw variance of about 0.0156 per component. Separable: exact gradient in closed form.
    On the simplex, b_d is the relaxed z[d, 1].
    """

    name = "bernoulli"
    summary = "REBAR/RELAX toy: f = mean_d (b_d − target)², binary variables"
    params = (
        Param("dim", int, 1, "number of binary variables D", low=1),
        Param("target", float, 0.499, "the target t in (b − t)²"),
        Param("logit", float, 0.0, "θ = (0, logit) for every variable"),
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
        return (b - self.config["target"]).square().mean(-1)

    def f_grad(self, z: torch.Tensor) -> torch.Tensor:
        g = torch.zeros_like(z)  # ∂f/∂z_d0 = 0
        g[..., 1] = (z[..., 1] - self.config["target"]) * (2.0 / self.D)  # ∂f/∂z_d1 = 2 (b_d − t) / D
        return g

    def separable_values(self) -> torch.Tensor:
        t = self.config["target"]
        h = torch.tensor([t**2, (1 - t) ** 2], dtype=torch.float64) / self.D  # f_d(b = 0), f_d(b = 1)
        return h.expand(self.D, 2).clone()
