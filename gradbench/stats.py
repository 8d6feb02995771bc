"""Streaming moments of gradient estimates and the metrics of DESIGN.md §4.

Memory is constant in the number of estimates: the state is, for each of G = 16 *replicate groups* (estimate i
belongs to group i mod G), a count, a mean vector and a vector of summed squared deviations (P = D·K entries each,
float64). Blocks are merged with Chan et al.'s pairwise update, after shifting each block by its first row, so a
component whose estimates are all equal has exactly zero variance. The groups give batch-means standard errors
for ``variance`` and ``mse`` (the spread of the G per-group values), without keeping any estimate.

All moments are of the deviations x_i = g_i − g* (float64), which keeps the arithmetic well conditioned.

Batch means assume the groups are independent. Interleaved groups of one stream of draws are, for an estimator
without state; an estimator that carries state from draw to draw (``Estimator.stateful``, e.g. a running-mean
baseline) would couple them through that shared state, so the runner gives such an estimator G independent
streams instead — each with its own copy of the estimator and its own seed — and stream s feeds group s alone
(:meth:`GroupedMoments.update_group`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

GROUPS = 16


class GroupedMoments:
    """Count, mean and M2 per replicate group of the deviations x_i = g_i − g*, each x_i of length P."""

    def __init__(self, n_params: int, groups: int = GROUPS, device: torch.device | str = "cpu"):
        self.groups = groups
        self.count = torch.zeros(groups, dtype=torch.float64, device=device)  # G
        self.mean = torch.zeros(groups, n_params, dtype=torch.float64, device=device)  # G x P
        self.m2 = torch.zeros(groups, n_params, dtype=torch.float64, device=device)  # G x P
        self._common_count: float | None = 0.0  # every group's count while they are all equal (a fast path)
        self._work: torch.Tensor | None = None  # float64 scratch space for a block, reused (no page faults)

    def _merge(self, count: torch.Tensor, mean: torch.Tensor, m2: torch.Tensor) -> None:
        """Chan's update with per-group (count G, mean G x P, M2 G x P); groups with count 0 are untouched."""
        total = self.count + count  # G
        weight = torch.where(total > 0, count / total.clamp(min=1), torch.zeros_like(total))[:, None]  # G x 1
        delta = mean - self.mean  # G x P
        self.mean += delta * weight
        self.m2 += m2 + delta.square() * (self.count[:, None] * weight)
        self.count = total
        self._common_count = None

    def _merge_equal(self, count: float, mean: torch.Tensor, m2: torch.Tensor) -> None:
        """Chan's update when every group has the same count before and after (both blocks: ``count`` rows per
        group); ``mean`` and ``m2`` (G x P) are consumed."""
        old = self._common_count
        weight = count / (old + count)
        delta = mean.sub_(self.mean)  # G x P
        self.mean.add_(delta, alpha=weight)
        self.m2.add_(m2).add_(delta.square_(), alpha=old * weight)
        self.count.add_(count)
        self._common_count = old + count

    def update(self, x: torch.Tensor, start: int, offset: torch.Tensor | None = None) -> None:
        """Add the rows of x (L x P, any float dtype) holding estimates start .. start + L − 1.

        The moments are those of x − ``offset`` (P, float64; default 0), e.g. of the deviations g_i − g* when x
        holds the estimates and ``offset`` is g*. Within a block, group g's m rows are shifted by the group's first
        row s and summed in float64: S1 = Σ (x − s), S2 = Σ (x − s)², mean = s − offset + S1/m,
        M2 = S2 − S1²/m. The shift makes the cancellation in M2 harmless (s is a draw, so S2 is at most a few times
        M2) and gives exactly zero for a constant component.
        """
        G = self.groups
        L = x.shape[0]
        if L == 0:
            return
        if start % G:
            raise ValueError("blocks must start at a multiple of the group count")
        full = (L // G) * G
        if full:
            m = full // G
            if self._work is None or self._work.numel() < x[:full].numel() or self._work.device != x.device:
                self._work = torch.empty(x[:full].numel(), dtype=torch.float64, device=x.device)
            shifted = self._work[: x[:full].numel()].view(m, G, -1)  # m x G x P, row r of the block in group r mod G
            shifted.copy_(x[:full].reshape(m, G, -1))
            shift = shifted[0].clone()  # G x P
            shifted -= shift
            s1 = shifted.sum(0)  # G x P
            s2 = shifted.square_().sum(0)  # G x P
            mean = s1.div_(m)  # G x P, mean of x − s
            m2 = s2.addcmul_(mean, mean, value=-float(m)).clamp_(min=0.0)  # S2 − S1²/m
            if offset is not None:
                shift -= offset
            mean += shift
            if self._common_count is not None:
                self._merge_equal(float(m), mean, m2)
            else:
                self._merge(torch.full((G,), float(m), dtype=torch.float64, device=x.device), mean, m2)
        if full < L:  # a short last block: the leftover rows go one by one to groups 0 .. L − full − 1
            rest = L - full
            count = torch.zeros(G, dtype=torch.float64, device=x.device)
            count[:rest] = 1.0
            mean = torch.zeros_like(self.mean)
            mean[:rest] = x[full:].reshape(rest, -1).to(torch.float64)
            if offset is not None:
                mean[:rest] -= offset
            self._merge(count, mean, torch.zeros_like(self.m2))

    def update_group(self, x: torch.Tensor, group: int, offset: torch.Tensor | None = None) -> None:
        """Add every row of x (L x P, any float dtype) to replicate group ``group``: the moments of x − ``offset``.

        Used for the independent streams of a stateful estimator (one stream per group). As in :meth:`update`, the
        rows are shifted by the first one and summed in float64, so a constant component has exactly zero M2.
        """
        L = x.shape[0]
        if L == 0:
            return
        if self._work is None or self._work.numel() < x.numel() or self._work.device != x.device:
            self._work = torch.empty(x.numel(), dtype=torch.float64, device=x.device)
        shifted = self._work[: x.numel()].view(L, -1)  # L x P
        shifted.copy_(x.reshape(L, -1))
        shift = shifted[0].clone()  # P
        shifted -= shift
        s1 = shifted.sum(0)  # P
        mean_one = s1.div_(L)  # P, mean of x − s
        m2_one = shifted.square_().sum(0).addcmul_(mean_one, mean_one, value=-float(L)).clamp_(min=0.0)  # P
        if offset is not None:
            shift -= offset
        count = torch.zeros_like(self.count)  # G
        count[group] = float(L)
        mean = torch.zeros_like(self.mean)  # G x P
        mean[group] = mean_one + shift
        m2 = torch.zeros_like(self.m2)  # G x P
        m2[group] = m2_one
        self._merge(count, mean, m2)

    def pooled(self) -> tuple[float, torch.Tensor, torch.Tensor]:
        """(n, mean P, M2 P) of all estimates: the groups merged in order."""
        n = 0.0
        mean = torch.zeros_like(self.mean[0])
        m2 = torch.zeros_like(self.m2[0])
        for g in range(self.groups):
            c = float(self.count[g])
            if c == 0:
                continue
            total = n + c
            delta = self.mean[g] - mean
            mean = mean + delta * (c / total)
            m2 = m2 + self.m2[g] + delta.square() * (n * c / total)
            n = total
        return n, mean, m2


@dataclass(frozen=True)
class Metrics:
    bias: float
    bias_sq: float
    bias_pvalue: float
    variance: float
    mse: float
    cosine: float
    snr: float
    grad_norm: float
    variance_se: float
    mse_se: float


def _norm_sf2(z: torch.Tensor) -> torch.Tensor:
    """Two-sided normal tail probability P(|N(0,1)| ≥ z), float64."""
    return torch.special.erfc(z / math.sqrt(2.0))


def rounding_tolerance(
    exact: torch.Tensor, mean_dev: torch.Tensor, m2: torch.Tensor, n: float, eps: float, value_scale: float = 0.0
) -> torch.Tensor:
    """Differences no larger than this are arithmetic, not bias: 16 · eps(dtype) · max(|g*_j|, rms_j, |E f|).

    ``value_scale`` = |E f| accounts for the rounding of f's own values: an estimate built from differences of f
    values (antithetic pairs, baselines) carries errors of size eps·|f| even when the gradient is much smaller
    (the Bernoulli toy: f ≈ 0.25, g* = 5·10⁻⁴), and so does g* itself."""
    rms = (exact + mean_dev).square().add(m2 / n).sqrt()
    return 16.0 * eps * torch.maximum(exact.abs(), rms).clamp(min=value_scale)


def replicate_group_values(
    moments: GroupedMoments, mean_dev: torch.Tensor, n: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per replicate group, the values whose batch means give ``variance_se`` and ``mse_se`` (groups with ≥ 2
    estimates; all 16 once n ≥ 32).

    variance: u_g = n/(n − 1) · (1/n_g) Σ_{i∈g} ‖x_i − x̄‖², the mean squared deviation from the *pooled* mean x̄
    (= ĝ − g*), so that Σ_g (n_g/n) u_g is exactly the pooled ``variance``; mse: (1/n_g) Σ_{i∈g} ‖x_i‖², likewise
    averaging to ``mse``. Centring on the pooled mean rather than on each group's own mean keeps the between-group
    part of the pooled variance (the spread of the group means) in the group values: it is what varies from seed to
    seed when each group is a stream with a cold start (a stateful estimator's first draws), and it keeps the SE
    honest for two-point estimates with probability near ½, whose within-group variances hardly move (measured in
    docs/validation.md).
    """
    counts = moments.count  # G
    full = counts >= 2
    spread = (moments.mean - mean_dev).square().sum(1)  # G, ‖group mean − pooled mean‖²
    group_var = (moments.m2.sum(1) + counts * spread) / counts.clamp(min=1) * (n / (n - 1))  # G
    group_mse = moments.mean.square().sum(1) + moments.m2.sum(1) / counts.clamp(min=1)  # G
    return group_var[full], group_mse[full]


def compute_metrics(moments: GroupedMoments, exact: torch.Tensor, eps: float, value_scale: float = 0.0) -> Metrics:
    """The metrics of DESIGN.md §4 from the streamed moments; ``exact`` is g* flattened (P, float64);
    ``eps`` the machine epsilon of the dtype the estimates were computed in; ``value_scale`` |E f| (see
    :func:`rounding_tolerance`)."""
    n, mean_dev, m2 = moments.pooled()  # mean_dev = ĝ − g*
    exact = exact.to(mean_dev)
    P = exact.numel()
    s2 = m2 / (n - 1)  # P, unbiased per-component variance
    variance = float(s2.sum())
    bias_vec_sq = float(mean_dev.square().sum())
    g_hat = exact + mean_dev

    # Holm/Bonferroni-combined two-sided z-tests; |difference| within the rounding tolerance counts as zero.
    excess = (mean_dev.abs() - rounding_tolerance(exact, mean_dev, m2, n, eps, value_scale)).clamp(min=0)  # P
    se = (s2 / n).sqrt()
    z = torch.where(se > 0, excess / se.clamp(min=1e-300), torch.where(excess > 0, math.inf, 0.0))
    pvalue = min(1.0, P * float(_norm_sf2(z).min()))

    grad_norm = float(exact.norm())
    g_hat_norm = float(g_hat.norm())
    cosine = float(g_hat @ exact) / (g_hat_norm * grad_norm) if g_hat_norm > 0 and grad_norm > 0 else math.nan
    snr = g_hat_norm / math.sqrt(variance) if variance > 0 else math.inf

    group_var, group_mse = replicate_group_values(moments, mean_dev, n)
    k = group_var.numel()
    variance_se = float(group_var.std() / math.sqrt(k)) if k >= 2 else math.nan
    mse_se = float(group_mse.std() / math.sqrt(k)) if k >= 2 else math.nan

    return Metrics(
        bias=math.sqrt(bias_vec_sq),
        bias_sq=bias_vec_sq - variance / n,
        bias_pvalue=pvalue,
        variance=variance,
        mse=bias_vec_sq + float(m2.sum()) / n,
        cosine=cosine,
        snr=snr,
        grad_norm=grad_norm,
        variance_se=variance_se,
        mse_se=mse_se,
    )
