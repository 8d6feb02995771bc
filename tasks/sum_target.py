"""A non-separable objective: the squared distance of an average category value to a target."""

from __future__ import annotations

import torch

from gradbench.core import Param, Task
from gradbench.registry import register_task
from gradbench.tasks import wavy_logits


@register_task
class SumTarget(Task):
    """Values v_k = k/(K − 1); s = mean_d Σ_k v_k z_dk; f(z) = (s − target)².

    D = ``dim`` (default 6), K = ``categories`` (default 4), so 4⁶ = 4,096 configurations by default; the
    exact gradient comes from enumeration (f couples all variables). Initial logits θ_dk = ½ cos(d + 2k).
    """

    name = "sum-target"
    summary = "non-separable f = (mean value − target)², exact by enumeration"
    params = (
        Param("dim", int, 6, "number of variables D", low=1),
        Param("categories", int, 4, "categories per variable K", low=2),
        Param("target", float, 0.45, "the target of the mean value"),
    )

    @classmethod
    def dims(cls, config):
        return (config["dim"], config["categories"])

    def __init__(self, **options):
        super().__init__(**options)
        self.D, self.K = self.config["dim"], self.config["categories"]

    def initial_logits(self) -> torch.Tensor:
        return wavy_logits(self.D, self.K)

    def f(self, z: torch.Tensor) -> torch.Tensor:
        values = torch.arange(self.K, dtype=z.dtype, device=z.device) / (self.K - 1)  # K
        s = (z * values).sum(-1).mean(-1)  # ...
        return (s - self.config["target"]).square()

    def f_grad(self, z: torch.Tensor) -> torch.Tensor:
        values = torch.arange(self.K, dtype=z.dtype, device=z.device) / (self.K - 1)  # K
        s = (z * values).sum(-1).mean(-1)  # ...
        coef = (s - self.config["target"]) * (2.0 / self.D)  # ...
        return (coef[..., None, None] * values).expand_as(z)  # ∂f/∂z_dk = 2 (s − t) v_k / D
