"""A separable quadratic over categorical variables."""

from __future__ import annotations

import torch

from gradbench.core import Param, Task
from gradbench.registry import register_task
from gradbench.tasks import wavy_logits


@register_task
class Quadratic(Task):
    """f(z) = Σ_{d,k} (z_dk − c_dk)² over D = ``dim`` variables with K = ``categories`` categories.

    Target c_dk = (1 + cos(3d + k))/2 ∈ [0, 1]; initial logits θ_dk = ½ cos(d + 2k) (d, k from 0).
    Separable: h_d(e_j) = (1 − c_dj)² + Σ_{k≠j} c_dk², so the exact gradient has a closed form at any size.
    The defaults (D = 20, K = 10) are the throughput benchmark's problem.
    """

    name = "quadratic"
    summary = "separable f = Σ (z_dk − c_dk)², any size (closed form)"
    params = (
        Param("dim", int, 20, "number of variables D", low=1),
        Param("categories", int, 10, "categories per variable K", low=2),
    )

    @classmethod
    def dims(cls, config):
        return (config["dim"], config["categories"])

    def __init__(self, **options):
        super().__init__(**options)
        self.D, self.K = self.config["dim"], self.config["categories"]
        d = torch.arange(self.D, dtype=torch.float64)[:, None]
        k = torch.arange(self.K, dtype=torch.float64)[None, :]
        self.target = (1 + torch.cos(3 * d + k)) / 2  # D x K
        self._minus_two_target = -2.0 * self.target  # D x K, for f_grad

    def initial_logits(self) -> torch.Tensor:
        return wavy_logits(self.D, self.K)

    def f(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.target.to(z)).square().sum((-1, -2))

    def f_grad(self, z: torch.Tensor) -> torch.Tensor:
        return torch.add(self._minus_two_target.to(z), z, alpha=2.0)  # ∂f/∂z_dk = 2 (z_dk − c_dk), one pass

    def separable_values(self) -> torch.Tensor:
        c = self.target
        return c.square().sum(-1, keepdim=True) - c.square() + (1 - c).square()
