"""Built-in toy objectives (installed as ``gradbench.tasks``); every module here registers one task."""

from __future__ import annotations

import torch


def wavy_logits(D: int, K: int) -> torch.Tensor:
    """A fixed, non-uniform starting point: θ_dk = ½ cos(d + 2k), float64 D x K (d, k counted from 0)."""
    d = torch.arange(D, dtype=torch.float64)[:, None]
    k = torch.arange(K, dtype=torch.float64)[None, :]
    return 0.5 * torch.cos(d + 2 * k)
