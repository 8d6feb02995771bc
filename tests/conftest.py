"""Fixtures shared by the tests."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
from typer.testing import CliRunner

from gradbench.cli import app

torch.set_num_threads(1)

# Model tasks cache their checkpoints: the tests use one fresh folder per session, never the user's cache.
os.environ["GRADBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="gradbench-test-cache-")


@pytest.fixture
def tmp_csv(tmp_path):
    return tmp_path / "out.csv"


@pytest.fixture
def cli():
    """Invoke the CLI in-process: cli("run", "-e", "reinforce") -> typer's Result (exit_code, stdout, stderr)."""
    runner = CliRunner(env={"COLUMNS": "250"})
    return lambda *args: runner.invoke(app, [str(a) for a in args])
