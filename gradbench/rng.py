"""Reproducible randomness that does not depend on how a cell is split into chunks.

The n estimates of a cell are cut into fixed *blocks* of ``block_size`` consecutive estimates (the block size
depends only on the task's size, never on chunking, workers or executor). Block b owns generators seeded with
``block_seed(seed, b)``: numpy's SFC64 bit generator for float32 uniforms on the CPU (the bulk of all draws) and a
``torch.Generator`` for everything else (normals, other dtypes, CUDA). A chunk is a run of whole blocks; every
random tensor an estimator asks for is filled block by block from the blocks' own generators. Whatever the chunk
size, block b's generators therefore see the same sequence of requests and produce the same numbers, so a cell
gives bit-identical estimates.

Why SFC64 (Doty-Humphrey's "Small Fast Chaotic" generator, as shipped in numpy ≥ 1.17) and not torch's CPU Mersenne
Twister: float32 uniforms cost 1.8 against 2.6 ns per value (one process, 1 thread, this project's 2-core machine;
docs/performance.md), and uniforms are the largest single cost of every relaxation estimator. SFC64 passes TestU01's
BigCrush and PractRand (as numpy's documentation of it reports). Its stream for a given seed is plain integer
arithmetic (numpy seeds it through ``SeedSequence``); the halves are taken low half first as laid out on
little-endian machines. numpy promises the same stream only for the same numpy build, which is why ``gradbench
check``'s exact tier matches numpy's version along with torch's (``gradbench.baseline.MATCH_KEYS``).
"""

from __future__ import annotations

import numpy as np
import torch

_MASK64 = (1 << 64) - 1
LOW_PRECISION = (torch.float16, torch.bfloat16)
"""Dtypes whose uniforms are float32 draws rounded to the dtype (see :meth:`BlockRng.uniform`)."""


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def block_seed(seed: int, block: int) -> int:
    """Seed of block ``block`` of a cell seeded with ``seed`` (63 bits, well mixed)."""
    return _splitmix64(_splitmix64(seed & _MASK64) ^ block) >> 1


def stream_seed(seed: int, stream: int) -> int:
    """Seed of independent stream ``stream`` of a cell seeded with ``seed`` (stateful estimators draw one stream per
    replicate group; each stream is then cut into blocks seeded by :func:`block_seed` as usual)."""
    return _splitmix64(_splitmix64(seed & _MASK64) ^ _splitmix64(0x5354524541 + stream)) >> 1


def block_size_for(n_params: int, target_elements: int = 1 << 18, cap: int = 1 << 14, floor: int = 16) -> int:
    """Estimates per block: a power of two with about ``target_elements`` gradient entries, in [floor, cap]."""
    size = cap
    while size > floor and size * n_params > target_elements:
        size //= 2
    return size


class BlockRng:
    """Random numbers for one chunk: ``n`` estimates made of whole blocks (the last one may be short)."""

    def __init__(self, seed: int, first_block: int, sizes: list[int], device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.sizes = sizes  # estimates in each block of this chunk
        self.n = sum(sizes)
        self.first_block = first_block
        self._seeds = [block_seed(seed, first_block + i) for i in range(len(sizes))]
        self._torch_generators: list[torch.Generator] | None = None  # made on first use
        self._bit_generators: list[np.random.SFC64] | None = None  # made on first use

    @property
    def _generators(self) -> list[torch.Generator]:
        """One ``torch.Generator`` per block (normals, uniforms other than CPU float32)."""
        if self._torch_generators is None:
            self._torch_generators = []
            for block_seed_ in self._seeds:
                gen = torch.Generator(device=self.device)
                gen.manual_seed(block_seed_)
                self._torch_generators.append(gen)
        return self._torch_generators

    def uniform(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """U ~ Uniform[0, 1), shape n x *shape.

        float32 on CPU: U = k·2⁻²⁴ with k the low 24 bits of each 32-bit half of the block's SFC64 words (the grid
        of ``Tensor.uniform_``, at about 2x its rate). Otherwise ``Tensor.uniform_`` from the block's
        ``torch.Generator``. Either way block by block, each block from its own generator.
        float16 and bfloat16 (:data:`LOW_PRECISION`): the float32 numbers of the same seed, rounded to the dtype, so
        a low-precision cell sees the same draws as its float32 twin, only rounded (a paired comparison); a draw
        rounded up to 1 is set to the largest number below 1 so that U < 1 holds (a categorical draw stays in
        range), and one rounded to 0 is clamped away by :meth:`open_uniform`.
        """
        if dtype in LOW_PRECISION:
            below_one = 1.0 - torch.finfo(dtype).eps / 2  # the largest number below 1 in the dtype
            return self.uniform(*shape, dtype=torch.float32).to(dtype).clamp_(max=below_one)
        out = torch.empty((self.n, *shape), dtype=dtype, device=self.device)
        if self.device.type == "cpu" and dtype == torch.float32 and out.numel():
            self._fill_float32(out.view(self.n, -1))
            return out
        start = 0
        for gen, size in zip(self._generators, self.sizes, strict=True):
            out[start : start + size].uniform_(generator=gen)
            start += size
        return out

    def normal(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """ε ~ N(0, 1), shape n x *shape: ``Tensor.normal_`` block by block, each block from its own generator."""
        out = torch.empty((self.n, *shape), dtype=dtype, device=self.device)
        start = 0
        for gen, size in zip(self._generators, self.sizes, strict=True):
            out[start : start + size].normal_(generator=gen)
            start += size
        return out

    def _fill_float32(self, out: torch.Tensor) -> None:
        """out (n x m, float32, contiguous) <- k·2⁻²⁴, k from ⌈size·m/2⌉ SFC64 words per block (the low 24 bits of
        each 32-bit half, low half first)."""
        if self._bit_generators is None:
            self._bit_generators = [np.random.SFC64(block_seed_) for block_seed_ in self._seeds]
        m = out.shape[1]
        row = 0
        for bit_generator, size in zip(self._bit_generators, self.sizes, strict=True):
            count = size * m
            words = bit_generator.random_raw((count + 1) // 2)  # uint64, ⌈count/2⌉
            halves = torch.from_numpy(words.view(np.int32))[:count].bitwise_and_(0xFFFFFF)  # count, in [0, 2^24)
            torch.mul(halves, 2.0**-24, out=out[row : row + size].view(-1))  # exact: k < 2^24
            row += size

    def open_uniform(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """U ~ Uniform(0, 1) kept inside [tiny, 1 − eps] of ``dtype``, so that log U and log(1 − U) are finite and
        G = −log(−log U) is finite at every dtype (float16: G ∈ [−2.27, 6.93]; bfloat16: G ∈ [−4.5, 4.85])."""
        info = torch.finfo(dtype)
        return self.uniform(*shape, dtype=dtype).clamp_(info.tiny, 1.0 - info.eps)

    def gumbel(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """G = −log(−log U), shape n x *shape; never ±inf or NaN (DESIGN.md §3)."""
        return self.open_uniform(*shape, dtype=dtype).log_().neg_().log_().neg_()

    def categorical(self, probs: torch.Tensor) -> torch.Tensor:
        """Indices z ~ Categorical(probs) by inverse CDF, one uniform per variable: probs D x K -> n x D (int64).

        z = #{k : u ≥ c_k} with c = cdf / cdf[-1] (so c_{K−1} = 1 exactly and z ≤ K − 1);
        :func:`gradbench.fast.categorical_one_hot` draws the same z as one-hot rows.
        """
        cdf = probs.cumsum(-1)  # D x K
        upper = cdf / cdf[:, -1:]  # D x K
        u = self.uniform(probs.shape[0], 1, dtype=probs.dtype)  # n x D x 1
        return (u >= upper).sum(-1)  # n x D
