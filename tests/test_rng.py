"""BlockRng: uniforms on the right grid with the right distribution, and identical whatever the chunking."""

from __future__ import annotations

import math

import pytest
import torch

from gradbench.rng import BlockRng


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniforms_are_uniform_on_zero_one(dtype):
    u = BlockRng(0, 0, [16384, 16384]).uniform(8, 4, dtype=dtype)  # 1,048,576 values
    assert u.dtype == dtype and u.shape == (32768, 8, 4)
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    if dtype == torch.float32:  # the grid k·2^-24 of Tensor.uniform_
        k = u.double() * 2.0**24
        assert torch.equal(k, k.round())
    n = u.numel()
    assert abs(float(u.double().mean()) - 0.5) < 4 * math.sqrt(1 / 12 / n)
    assert abs(float(u.double().var()) - 1 / 12) < 4 * math.sqrt(1 / 180 / n)
    counts = torch.bincount((u.double() * 256).long().view(-1), minlength=256).double()
    expected = n / 256
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 255 + 5 * math.sqrt(2 * 255)  # χ²(255): mean 255, sd ≈ 22.6
    low_bits = (u.double() * 2.0**24).long() % 256 if dtype == torch.float32 else None
    if low_bits is not None:  # the low bits of k are uniform too (they come from the integer draws)
        counts = torch.bincount(low_bits.view(-1), minlength=256).double()
        assert float(((counts - expected) ** 2 / expected).sum()) < 255 + 5 * math.sqrt(2 * 255)


def test_neighbouring_uniforms_are_uncorrelated():
    u = BlockRng(1, 0, [8192]).uniform(64).double().view(-1)
    r = float(torch.corrcoef(torch.stack([u[:-1], u[1:]]))[0, 1])
    assert abs(r) < 4 / math.sqrt(u.numel())


@pytest.mark.parametrize("shape", [(20, 10), (3, 3), (1,), (5, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_chunk_of_blocks_draws_what_its_blocks_draw_one_by_one(shape, dtype):
    sizes = [16, 16, 5]  # an odd last block: with shape (3, 3) an odd number of values per block
    whole = BlockRng(7, 4, sizes).uniform(*shape, dtype=dtype)
    parts = [BlockRng(7, 4 + i, [size]).uniform(*shape, dtype=dtype) for i, size in enumerate(sizes)]
    assert torch.equal(whole, torch.cat(parts))
    other_seed = BlockRng(8, 4, sizes).uniform(*shape, dtype=dtype)
    assert not torch.equal(whole, other_seed)


def test_gumbel_is_finite_and_has_the_gumbel_mean_and_variance():
    g = BlockRng(2, 0, [16384, 16384]).gumbel(16).double()
    assert torch.isfinite(g).all()
    n = g.numel()
    euler = 0.5772156649015329
    assert abs(float(g.mean()) - euler) < 4 * math.sqrt(math.pi**2 / 6 / n)
    assert abs(float(g.var()) - math.pi**2 / 6) < 0.02


def test_float32_uniforms_are_the_low_24_bits_of_each_half_of_the_blocks_sfc64_words():
    """Pins the stream: block b's k-th value is the low 24 bits of the k-th 32-bit half (low half first) of
    ``numpy.random.SFC64(block_seed(seed, b))``'s words, times 2⁻²⁴; a second request continues the stream from
    the next whole word."""
    import numpy as np

    from gradbench.rng import block_seed

    rng = BlockRng(11, 3, [5, 4])
    first = rng.uniform(3)  # 9 x 3: 15 values (8 words) from block 3, 12 values (6 words) from block 4
    second = rng.uniform(3)
    for block, rows in ((3, slice(0, 5)), (4, slice(5, 9))):
        words = np.random.SFC64(block_seed(11, block)).random_raw(16)  # uint64
        lows = (words & 0xFFFFFFFF).astype(np.int64), (words >> 32).astype(np.int64)
        values = np.stack(lows, axis=1).reshape(-1) & 0xFFFFFF  # low half first
        count = first[rows].numel()
        expected_first = torch.from_numpy(values[:count] * 2.0**-24).float()
        assert torch.equal(first[rows].reshape(-1), expected_first)
        start = 2 * ((count + 1) // 2)  # the odd value's word is spent
        expected_second = torch.from_numpy(values[start : start + count] * 2.0**-24).float()
        assert torch.equal(second[rows].reshape(-1), expected_second)


def test_blocks_and_requests_are_uncorrelated():
    rng = BlockRng(5, 0, [4096, 4096])
    u = rng.uniform(32).double()  # 8192 x 32
    v = rng.uniform(32).double()  # the next request of the same blocks
    pairs = {
        "block 0 vs block 1": (u[:4096].reshape(-1), u[4096:].reshape(-1)),
        "first vs second request": (u.reshape(-1), v.reshape(-1)),
    }
    for name, (a, b) in pairs.items():
        r = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
        assert abs(r) < 4 / math.sqrt(a.numel()), name
