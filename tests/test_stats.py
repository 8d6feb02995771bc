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


def reference_moments(x64: np.ndarray, exact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Textbook two-pass mean and M2 of the deviations, in float64 (numpy), per component."""
    dev = x64 - exact
    mean = dev.mean(0)
    return mean, ((dev - mean) ** 2).sum(0)


@pytest.mark.parametrize("case", ["large-mean-small-variance", "heavy-tailed", "constant-and-tiny"])
def test_float32_estimates_are_accumulated_to_float64_accuracy(case):
    # The runner hands GroupedMoments the float32 estimates and g* (offset); the result must match the float64
    # two-pass formulas on the same float32 numbers to ~1e-12, i.e. no float32 accumulation anywhere.
    rng = np.random.default_rng(3)
    n, P = 4096 + 37, 5
    exact = rng.normal(size=P) * 1e4
    if case == "large-mean-small-variance":
        x = exact + 1e-3 * exact + rng.normal(size=(n, P)) * 1e-2  # mean 1e4, sd 1e-2: 6 digits below the mean
    elif case == "heavy-tailed":
        x = exact + rng.standard_cauchy(size=(n, P)) * 1e2
        x[0] += 1e7  # the first row of block 0, group 0, is the shift: an extreme outlier
    else:
        x = np.tile(exact, (n, 1)) + np.array([0, 0, 0, 1e-3, 1e3]) * (rng.random((n, 1)) < 0.5)
    x32 = torch.from_numpy(x).float()
    x64 = x32.double().numpy()
    moments = GroupedMoments(P)
    exact_t = torch.from_numpy(exact)
    for start in range(0, n, 1024):
        moments.update(x32[start : start + 1024], start, offset=exact_t)
    count, mean, m2 = moments.pooled()
    ref_mean, ref_m2 = reference_moments(x64, exact)
    assert count == n
    np.testing.assert_allclose(mean.numpy(), ref_mean, rtol=1e-12, atol=1e-12 * np.abs(x64 - exact).max())
    np.testing.assert_allclose(m2.numpy(), ref_m2, rtol=1e-11, atol=0)
    if case == "constant-and-tiny":
        assert (m2[:3] == 0).all() and m2[3] > 0  # exactly zero for constant components


def test_equal_count_fast_merge_matches_the_general_merge():
    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.normal(size=(2048, 7)) * 3 + 1)
    fast, general = GroupedMoments(7), GroupedMoments(7)
    general._common_count = None  # force the per-group tensor update
    for start in range(0, 2048, 256):
        fast.update(x[start : start + 256], start)
        general.update(x[start : start + 256], start)
    assert fast._common_count == 2048 / 16 and general._common_count is None
    for a, b in ((fast.count, general.count), (fast.mean, general.mean), (fast.m2, general.m2)):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
