"""Peer cross-check: our ReinMax against the authors' package (skipped when ``reinmax`` is not installed).

The comparison itself lives in benchmarks/peers/reinmax_peer.py (run it for the full table at 10⁶ estimates).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("reinmax")

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "peers" / "reinmax_peer.py"
spec = importlib.util.spec_from_file_location("reinmax_peer", SCRIPT)
reinmax_peer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reinmax_peer)


@pytest.mark.parametrize(
    ("task", "params", "tau"), [("bernoulli", {"target": 0.3, "logit": -1.0}, 1.0), ("sum-target", {}, 2.0)]
)
def test_our_reinmax_matches_the_authors_package_and_the_exact_moments(task, params, tau):
    r = reinmax_peer.compare(task, params, tau, n=100_000, seed=3)
    for side in ("ours", "peer"):
        row = r[side]
        assert abs(row.variance - r["exact_variance"]) < 5 * row.variance_se, (side, row.variance)
        assert r[f"{side}_z"] < 5, side  # mean within noise of ReinMax's exact mean, every component
    assert r["ours_vs_peer_z"] < 5
