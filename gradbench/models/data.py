"""The binarised digits of scikit-learn's ``load_digits`` (1,797 images of 8 x 8 pixels, shipped inside the wheel).

Binarisation: a pixel is 1 when its grey level (0 … 16) is at least :data:`THRESHOLD` = 8, i.e. at least half
intensity, else 0. Split: the first :data:`TRAIN_SIZE` = 1,500 images (in the order ``load_digits`` returns them)
train the model; the remaining 297 are held out for evaluation. Nothing is downloaded.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from gradbench.errors import GradbenchError

THRESHOLD = 8
"""Grey level (of 16) at and above which a pixel counts as on."""
TRAIN_SIZE = 1500
"""Images 0 … 1,499 train; 1,500 … 1,796 (297 images) are held out."""
PIXELS = 64


@lru_cache(maxsize=1)
def _binarised() -> torch.Tensor:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise GradbenchError(
            "the digits tasks need scikit-learn, which is not installed: pip install scikit-learn"
        ) from None
    data = load_digits().data  # 1797 x 64, grey levels 0 … 16
    return torch.as_tensor(data >= THRESHOLD, dtype=torch.float64)  # 1797 x 64, 0/1


def digits(split: str) -> torch.Tensor:
    """The binarised images of ``split`` ('train' or 'held-out'), float64 N x 64 (a new tensor)."""
    x = _binarised()
    if split == "train":
        return x[:TRAIN_SIZE].clone()
    if split == "held-out":
        return x[TRAIN_SIZE:].clone()
    raise ValueError(f"unknown split {split!r}")
