"""Throughput benchmark: ``python benchmarks/throughput.py [options]`` is ``gradbench bench [options]``.

The code lives in :mod:`gradbench.bench` (so that the installed ``gradbench bench`` command runs the very same
measurement); its docstring says exactly what is timed. Typical use, the run behind README's "Throughput" table:

    python benchmarks/throughput.py --long --markdown --out results/throughput.csv   # + a Markdown table
    python benchmarks/throughput.py --device cuda --out results/throughput-cuda.csv --markdown
"""

from __future__ import annotations

import sys

from gradbench.cli import app

if __name__ == "__main__":
    app(["bench", *sys.argv[1:]])
