"""Fast building blocks for estimators: sampling and per-draw gradients without a per-draw autograd graph.

Every function is vectorized over the n draws of a chunk, device-agnostic (no host round trips except where
noted), and keeps tensors n x D x K contiguous, the layout a task's ``f`` is written for. Why these and not the
obvious torch calls (measured with ``benchmarks/throughput.py``'s problem, D = 20, K = 10, float32, 1 thread):

- ``Tensor.softmax(-1)`` over a short last axis (K = 10) costs about 5x the time of drawing the uniforms itself on
  CPU, and its backward about 2x; the same softmax written as max, subtract, exp, sum, divide (in place) is ~8x
  faster, and the Jacobian-vector product of the softmax has the closed form s ⊙ (v − ⟨s, v⟩).
- ``Tensor.argmax(-1)`` and comparisons over a short last axis are slow too: the hard Gumbel-max sample is
  ``floor(exp(y − max y))``, with a fallback to argmax in the (rare) chunk that holds a tie; and the row maximum
  itself is a 1-d max pooling with window K over the flattened tensor (:func:`row_max`), about 2x ``amax(-1)``.
- ∂f/∂θ of a relaxed sample only needs ∂f/∂z: from the task's closed form :meth:`Task.f_grad` when it has one,
  else from one autograd call through ``f`` alone (not through the noise and the softmax).
- The categorical draw is an inverse-CDF lookup of one uniform per variable (D per estimate, not D·K), turned
  into a one-hot by comparisons, without an index tensor or a scatter.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from gradbench.core import Task
    from gradbench.rng import BlockRng


def row_sum(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Σ over the last axis, keepdim: x n x D x K -> n x D x 1.

    On CPU a matrix-vector product with a ones vector (about 2x faster than ``sum(-1)`` for K = 10), done block by
    block (``sizes``: the chunk's blocks, ``rng.sizes``), so that every block is one BLAS call of the same shape
    and alignment whatever the chunking: results do not depend on the chunk size even where a BLAS's summation
    order depends on the matrix's shape.
    """
    if x.device.type != "cpu" or not x.is_contiguous() or sum(sizes) != x.shape[0]:
        return x.sum(-1, keepdim=True)
    K = x.shape[-1]
    ones = _ones(K, x.dtype)  # K x 1
    if len(sizes) == 1:
        return torch.mm(x.view(-1, K), ones).view(*x.shape[:-1], 1)
    out = torch.empty(*x.shape[:-1], 1, dtype=x.dtype)  # n x D x 1
    start = 0
    for size in sizes:
        torch.mm(x[start : start + size].view(-1, K), ones, out=out[start : start + size].view(-1, 1))
        start += size
    return out


@functools.cache
def _ones(K: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.ones(K, 1, dtype=dtype)


def row_max(x: torch.Tensor) -> torch.Tensor:
    """max over the last axis, keepdim: x n x D x K -> n x D x 1 (NaN propagates, as with ``amax``).

    On CPU a max pooling with window and stride K over x seen as one long row ([1, 1, n·D·K]): about 2x faster
    than ``amax(-1)`` for K = 10 (0.66 against 1.3 ns per entry on [2048, 20, 10] float32, this project's 2-core
    machine, 1 thread; 0.66 against 1.07 with 2). A maximum is exact, so both give the same numbers (tested);
    elsewhere ``amax``.
    """
    K = x.shape[-1]
    if x.device.type != "cpu" or not x.is_contiguous() or not x.dtype.is_floating_point or x.numel() == 0:
        return x.amax(-1, keepdim=True)
    return torch.nn.functional.max_pool1d(x.view(1, 1, -1), K, K).view(*x.shape[:-1], 1)


def grad_f(task: Task, z: torch.Tensor) -> torch.Tensor:
    """∂f(z_i)/∂z_i for every row of z (n x D x K): a new contiguous tensor the caller may overwrite.

    Uses the task's closed form :meth:`Task.f_grad` when it has one, else one autograd call through ``f``.
    """
    g = task.f_grad(z)
    if g is None:
        leaf = z.detach().requires_grad_(True)  # n x D x K
        with torch.enable_grad():
            (g,) = torch.autograd.grad(task.f(leaf).sum(), leaf)
    if not g.is_contiguous() or g.data_ptr() == z.data_ptr():  # e.g. an expanded constant for a linear f
        g = g.clone(memory_format=torch.contiguous_format)
    return g


def perturbed_logits(theta: torch.Tensor, rng: BlockRng, tau: float) -> torch.Tensor:
    """y = (θ + G)/τ with G_dk i.i.d. Gumbel(0, 1) from ``rng``: θ D x K -> n x D x K (a new tensor).

    G = −log(−log U) from the same uniforms as ``rng.gumbel``; the sign is folded into the scaling.
    """
    w = rng.open_uniform(*theta.shape, dtype=theta.dtype).log_().neg_().log_()  # n x D x K, w = −G
    return torch.add(theta / tau, w, alpha=-1.0 / tau, out=w)  # (θ − w)/τ, in place


def gumbel_range(dtype: torch.dtype) -> tuple[float, float]:
    """Bounds (lowest, highest) of G = −log(−log U) for U clamped as by ``BlockRng.open_uniform`` (with a margin
    for the rounding of the logs)."""
    info = torch.finfo(dtype)
    return -math.log(-math.log(info.tiny)) - 0.01, -math.log(-math.log1p(-info.eps)) + 0.01


def gumbel_softmax_sample(theta: torch.Tensor, rng: BlockRng, tau: float) -> torch.Tensor:
    """z̃ = softmax((θ + G)/τ) over the last axis with G_dk i.i.d. Gumbel(0, 1) from ``rng``: θ D x K ->
    n x D x K (a new tensor).

    softmax needs a shift per row against overflow; the usual one is the row's maximum (a reduction and a
    broadcast subtraction per draw). Since G is bounded (:func:`gumbel_range`), a shift that depends on θ only,
    c_d = (max_k θ_dk + G_max)/τ, keeps every exponent in [−R, 0] with R = (range of θ + range of G)/τ; when R is
    small enough that no term can leave the normal range of the dtype (R ≤ −log(tiny) − 7: τ ≳ 0.28 on the
    benchmark's problem in float32) this constant shift is used and folded into the scaling of the noise, else
    the row maximum.
    """
    g_lo, g_hi = gumbel_range(theta.dtype)
    w = rng.open_uniform(*theta.shape, dtype=theta.dtype).log_().neg_().log_()  # n x D x K, w = −G
    theta_max = theta.amax(-1, keepdim=True)  # D x 1
    spread = (float((theta_max - theta.amin(-1, keepdim=True)).max()) + g_hi - g_lo) / tau
    if spread <= -math.log(torch.finfo(theta.dtype).tiny) - 7.0:
        base = (theta - theta_max - g_hi) / tau  # D x K
        y = torch.add(base, w, alpha=-1.0 / tau, out=w)  # (θ + G)/τ − c_d, in [−R, 0]
    else:
        y = torch.add(theta / tau, w, alpha=-1.0 / tau, out=w)  # (θ + G)/τ
        y.sub_(row_max(y))
    y.exp_()
    return y.div_(row_sum(y, rng.sizes))


def softmax_vjp_(soft: torch.Tensor, v: torch.Tensor, tau: float, sizes: list[int]) -> torch.Tensor:
    """The gradient w.r.t. the logits a of f(softmax(a/τ)), given s = softmax(a/τ) and v = ∂f/∂s (both
    n x D x K): (s ⊙ (v − ⟨s, v⟩))/τ, computed in place in v (which is returned). ``sizes``: ``rng.sizes``."""
    t = torch.addcmul(soft.new_zeros(()), v, soft, value=1.0 / tau, out=v)  # s ⊙ v / τ, in place
    return t.addcmul_(soft, row_sum(t, sizes), value=-1.0)  # (s ⊙ v − s ⟨s, v⟩)/τ


def shifted_exp_and_hard_(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From y (n x D x K, overwritten): e = exp(y − max y) in place, and onehot(argmax(y)) over the last axis.

    The row maximum becomes exp(0) = 1 exactly and every other entry is below 1, so floor(e) is the one-hot of the
    argmax: one cheap pass instead of a comparison and a slow short-axis ``argmax``. A row whose runner-up is within
    rounding of the maximum (e == 1 twice) would get two ones; one sum over the chunk detects that (a host sync on
    GPU) and only then ``argmax`` (first index on ties) is used.
    """
    y.sub_(row_max(y)).exp_()  # n x D x K, e ∈ (0, 1], 1 at the maximum
    hard = torch.floor(y)  # n x D x K
    rows = hard.numel() // hard.shape[-1]
    total = hard.sum() if hard.numel() < 1 << 24 else torch.count_nonzero(hard)  # exact in either case
    if float(total) != rows:  # also when NaN (an overflow upstream): argmax decides
        hard = torch.nn.functional.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)
    return y, hard


def categorical_one_hot(probs: torch.Tensor, rng: BlockRng) -> torch.Tensor:
    """z ~ Categorical(probs) per variable as one-hot rows: probs D x K -> n x D x K in probs' dtype.

    Inverse CDF with one uniform u per variable (the same numbers and rule as ``rng.categorical``): with
    c_k = cdf_k / cdf_{K−1} (so c_{K−1} = 1 exactly), z_k = [u < c_k] − [u < c_{k−1}].
    """
    cdf = probs.cumsum(-1)  # D x K
    upper = cdf / cdf[:, -1:]  # D x K
    u = rng.uniform(probs.shape[0], 1, dtype=probs.dtype)  # n x D x 1
    below = (u < upper).to(probs.dtype)  # n x D x K: 1 where the category is ≥ the drawn one
    z = below.clone()
    z[..., 1:] -= below[..., :-1]
    return z
