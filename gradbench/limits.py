"""The limits of legal input, checked up front so that an extreme value is one line, never a traceback or a hang.

Each limit is a named constant (documented in docs/hardening.md) and each check raises a
:class:`~gradbench.errors.GradbenchError` naming the value, the limit and the fix:

- seeds: 0 ≤ seed < :data:`SEED_LIMIT` = 2⁶³. Seeds are written to the CSV and read back as int64, and the
  block generators mix them as 64-bit words: outside this range two different numbers would alias one stream
  (−1 ≡ 2⁶⁴ − 1, 2⁶⁴ ≡ 0), so they are refused instead;
- estimates per cell: 2 ≤ n ≤ :data:`MAX_SAMPLES` = 2⁵³ (counts stay exact in float64); below that, a cell
  whose time, estimated from a pilot block, exceeds :data:`MAX_SECONDS` is refused unless ``--force``
  (:func:`check_eta`);
- memory: a cell needs about P·(2·16·8 + 8) bytes of float64 moments plus P·chunk·(8 + 8·itemsize) bytes per
  chunk (P = D·K); more than the memory available (MemAvailable, or what ``ulimit -v`` leaves) is refused;
- temperatures: (θ + G)/τ must be finite in the cell's dtype: τ ≥ 2¹⁰·(max|θ| + 40)/finfo(dtype).max;
- threads and worker processes: at most :data:`CPU_FACTOR` × the CPUs this process may use;
- grids: at most :data:`MAX_CELLS` cells, :data:`MAX_SEEDS` seeds and :data:`MAX_TAUS` temperatures.
"""

from __future__ import annotations

import math
import os
import resource
from typing import Any

from gradbench.errors import GradbenchError

SEED_LIMIT = 1 << 63
"""Seeds are integers 0 ≤ seed < 2⁶³."""
MAX_SAMPLES = 1 << 53
"""Largest number of estimates per cell (float64 counts are exact up to 2⁵³)."""
MAX_SECONDS = 24 * 3600.0
"""Longest estimated run accepted without ``--force``."""
PILOT_FREE = 1 << 20
"""Cells with at most this many estimates are not piloted (they cannot plausibly run for a day)."""
CPU_FACTOR = 4
"""At most this many threads (or worker processes) per CPU available: more only slows torch down."""
MAX_CELLS = 1_000_000
MAX_SEEDS = 100_000
MAX_TAUS = 1_000
GUMBEL_BOUND = 40.0
"""|G| of a Gumbel draw is below 40 in float32 and float64 (U is kept inside [tiny, 1 − eps])."""


def check_seed(seed: Any, flag: str = "--seed") -> int:
    """``seed`` if it is an integer in [0, 2⁶³), else one line naming it and the range."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise GradbenchError(f"{flag} {seed!r}: a seed is an integer 0 ≤ seed < 2^63")
    if not 0 <= seed < SEED_LIMIT:
        raise GradbenchError(
            f"{flag} {seed}: seeds must satisfy 0 ≤ seed < 2^63 = {SEED_LIMIT} (larger or negative seeds would "
            "repeat the random numbers of another seed); give a seed in that range"
        )
    return seed


def check_samples(n: int, flag: str = "--samples") -> int:
    if n < 2:
        raise GradbenchError(f"{flag} must be at least 2 (variance needs two estimates), got {n}")
    if n > MAX_SAMPLES:
        raise GradbenchError(f"{flag} {n}: at most 2^53 = {MAX_SAMPLES:,} estimates per cell; give fewer")
    return n


def cpus_available() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def check_count(value: int, flag: str, what: str) -> int:
    """Threads or worker processes: 1 ≤ value ≤ CPU_FACTOR × CPUs available."""
    if value < 1:
        raise GradbenchError(f"{flag} must be at least 1, got {value}")
    limit = CPU_FACTOR * cpus_available()
    if value > limit:
        raise GradbenchError(
            f"{flag} {value}: at most {limit} {what} ({CPU_FACTOR} per CPU; this process may use "
            f"{cpus_available()}); give a smaller {flag}"
        )
    return value


def available_memory() -> int | None:
    """Bytes this process can still allocate: MemAvailable (Linux), capped by what ``ulimit -v`` leaves; None if
    unknown."""
    free: int | None = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        used = _virtual_size()
        left = max(0, soft - used) if used is not None else soft
        free = left if free is None else min(free, left)
    return free


def _virtual_size() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def cell_memory(n_params: int, chunk: int, itemsize: int, groups: int = 16) -> int:
    """Bytes a cell needs, roughly: float64 moments (mean, M2 per group), g*, θ and a chunk's tensors (the
    estimates, their float64 copy and a few same-sized temporaries)."""
    return n_params * (2 * groups * 8 + 8 + 8) + n_params * chunk * (8 + 6 * itemsize)


def check_memory(what: str, n_params: int, chunk: int, itemsize: int) -> None:
    """Refuse a cell whose tensors cannot fit in the memory available."""
    need = cell_memory(n_params, chunk, itemsize)
    free = available_memory()
    if free is not None and need > free:
        raise GradbenchError(
            f"{what}: D·K = {n_params:,} gradient entries need about {_gib(need)} of memory (chunks of {chunk:,} "
            f"estimates), more than the {_gib(free)} available; choose a smaller task size or --chunk-size"
        )


def tau_floor(dtype_max: float, theta_absmax: float) -> float:
    """Smallest τ for which (θ + G)/τ stays finite in a dtype whose largest number is ``dtype_max``."""
    return 2.0**10 * (theta_absmax + GUMBEL_BOUND) / dtype_max


def check_tau(owner: str, tau: float, dtype: str, dtype_max: float, theta_absmax: float) -> None:
    floor = tau_floor(dtype_max, theta_absmax)
    if not math.isfinite(theta_absmax):
        return
    if tau < floor:
        raise GradbenchError(
            f"{owner}: tau {tau:g} is too small for {dtype}: (θ + G)/τ overflows below τ = {floor:.2g}; "
            f"give τ ≥ {floor:.2g}" + (" or --dtype float64" if dtype == "float32" else "")
        )


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    if seconds < 2 * 365 * 86400:
        return f"{seconds / 86400:.0f} days"
    return f"{seconds / (365.25 * 86400):.3g} years"


def check_eta(seconds: float, what: str, force: bool) -> None:
    """Refuse work estimated to take longer than :data:`MAX_SECONDS`, unless ``force``."""
    if seconds > MAX_SECONDS and not force:
        raise GradbenchError(
            f"{what} would take about {format_duration(seconds)} (estimated from a pilot block), more than the "
            f"{format_duration(MAX_SECONDS)} allowed without --force; lower --samples or add --force"
        )
