"""The streamed metrics equal the textbook formulas of DESIGN.md §4 computed on the materialised estimates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradbench.stats import GroupedMoments, compute_metrics


def stream(x: np.ndarray, exact: np.ndarray, block: int) -> GroupedMoments:
    moments = GroupedMoments(x.shape[1])
    dev = torch.from_numpy(x - exact)
    for start in range(0, len(x), block):
        moments.update(dev[start : start + block], start)
    return moments


@pytest.mark.parametrize(("n", "block"), [(1000, 64), (1037, 128), (50, 16), (20, 1024)])
def test_metrics_match_direct_formulas(n, block):
    rng = np.random.default_rng(0)
    P = 6
    exact = rng.normal(size=P)
    x = exact + 0.3 + rng.normal(size=(n, P)) * np.linspace(0.5, 2, P)
    m = compute_metrics(stream(x, exact, block), torch.from_numpy(exact), eps=2.2e-16)
    g_hat = x.mean(0)
    s2 = x.var(0, ddof=1)
    assert m.bias == pytest.approx(np.linalg.norm(g_hat - exact), rel=1e-10)
    assert m.bias_sq == pytest.approx(np.sum((g_hat - exact) ** 2) - s2.sum() / n, rel=1e-9)
    assert m.variance == pytest.approx(s2.sum(), rel=1e-10)
    assert m.mse == pytest.approx(np.mean(np.sum((x - exact) ** 2, 1)), rel=1e-10)
    assert m.cosine == pytest.approx(g_hat @ exact / np.linalg.norm(g_hat) / np.linalg.norm(exact), rel=1e-10)
    assert m.snr == pytest.approx(np.linalg.norm(g_hat) / math.sqrt(s2.sum()), rel=1e-10)
    assert m.grad_norm == pytest.approx(np.linalg.norm(exact))
    z = np.abs(g_hat - exact) / np.sqrt(s2 / n)
    p_components = np.array([math.erfc(v / math.sqrt(2)) for v in z])
    assert m.bias_pvalue == pytest.approx(min(1.0, P * p_components.min()), rel=1e-6, abs=1e-300)


def test_pvalue_is_uniformish_for_unbiased_data_and_tiny_for_biased():
    rng = np.random.default_rng(1)
    exact = np.zeros(4)
    pvalues = [
        compute_metrics(stream(rng.normal(size=(400, 4)), exact, 64), torch.zeros(4), 2.2e-16).bias_pvalue
        for _ in range(200)
    ]
    # Bonferroni is conservative: the rejection rate at 5% must not exceed it (binomial 200, p = .05: ≤ 19 at 99.9%)
    assert sum(p < 0.05 for p in pvalues) <= 19
    biased = compute_metrics(stream(rng.normal(size=(400, 4)) + 0.5, exact, 64), torch.zeros(4), 2.2e-16)
    assert biased.bias_pvalue < 1e-10


def test_zero_variance_component_is_exact_match_or_certain_bias():
    exact = np.array([0.1, -0.2, 0.3])
    same = np.tile(exact.astype(np.float32).astype(np.float64), (100, 1))  # float32 rounding only
    m = compute_metrics(stream(same, exact, 16), torch.from_numpy(exact), eps=float(np.finfo(np.float32).eps))
    assert m.variance == 0.0 and m.bias_pvalue == 1.0
    off = same.copy()
    off[:, 1] += 1e-3
    m = compute_metrics(stream(off, exact, 16), torch.from_numpy(exact), eps=float(np.finfo(np.float32).eps))
    assert m.variance == 0.0 and m.bias_pvalue == 0.0


def test_batch_means_standard_errors_are_honest():
    # Over many repetitions, the spread of `variance` matches its reported standard error (within 25%).
    rng = np.random.default_rng(2)
    values, ses = [], []
    for _ in range(300):
        x = rng.standard_t(df=6, size=(2048, 3))
        m = compute_metrics(stream(x, np.zeros(3), 256), torch.zeros(3), 2.2e-16)
        values.append(m.variance)
        ses.append(m.variance_se)
    assert np.std(values) == pytest.approx(np.mean(ses), rel=0.25)


def test_state_does_not_grow_with_the_number_of_estimates():
    moments = GroupedMoments(10)
    sizes = [t.numel() for t in (moments.count, moments.mean, moments.m2)]
    for start in range(0, 64 * 100, 64):
        moments.update(torch.randn(64, 10, dtype=torch.float64), start)
    assert [t.numel() for t in (moments.count, moments.mean, moments.m2)] == sizes
