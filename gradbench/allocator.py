"""Let large temporary tensors be reused from the C heap instead of mapping fresh pages for each one (glibc).

glibc's malloc serves large requests (above 128 KiB, a threshold it raises on its own up to 32 MiB) with ``mmap``
and gives them back to the kernel when they are freed, and it trims the top of the heap past a similar threshold.
A cell allocates a few n x D x K tensors of some MiB per chunk, so without tuning each chunk's tensors arrive as
fresh, zero-filled pages: page faults that cost about 5% of a Gumbel-Softmax cell on the benchmark problem
(benchmarks/throughput.py). :func:`tune_allocator` raises both thresholds once per process; freed chunks are then
reused, and memory stays bounded by what one chunk needs (it does not grow with the number of estimates).

The CLI calls it; library users may call it in their own process. Anywhere else than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
"""glibc's largest accepted mmap threshold on 64-bit systems (requests above it are still mapped)."""


def tune_allocator() -> bool:
    """Raise glibc malloc's mmap threshold to 32 MiB and its trim threshold to 64 MiB; True when applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD) == 1
