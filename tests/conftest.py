"""Fixtures shared by the tests."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def tmp_csv(tmp_path):
    return tmp_path / "out.csv"
