"""Peak memory of a cell, measured in a fresh process so that nothing else the benchmark did is counted."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import torch

from gradbench.errors import GradbenchError
from gradbench.registry import load_plugin
from gradbench.runner import CellSpec, run_cell


def child_main() -> None:
    """Run one cell in this (fresh) process and print its peak memory as JSON (see :func:`peak_memory`)."""
    import resource

    from gradbench.allocator import tune_allocator

    args = json.loads(sys.argv[1])
    tune_allocator()  # as the CLI does
    torch.set_num_threads(args["threads"])
    for plugin in args["plugins"]:
        load_plugin(plugin)
    spec = CellSpec(**args["spec"])
    t0 = time.perf_counter()
    run_cell(spec)
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    cuda = torch.cuda.max_memory_allocated(torch.device(spec.device)) if spec.device.startswith("cuda") else None
    print(json.dumps({"rss_bytes": rss, "cuda_bytes": cuda, "per_sec": spec.n_samples / seconds}))


def peak_memory(spec: CellSpec, threads: int, plugins: tuple[str, ...]) -> tuple[float, str]:
    """(peak MiB, kind) of a fresh process that runs ``spec``: max RSS on CPU, max allocated CUDA memory on GPU."""
    payload = json.dumps(
        {"spec": {k: getattr(spec, k) for k in spec.__dataclass_fields__}, "threads": threads, "plugins": plugins}
    )
    from gradbench.isolation import child_env, python_command  # nothing imported from the current directory

    command = [*python_command("from gradbench.bench.memory import child_main; child_main()"), payload]
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=child_env())
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise GradbenchError(f"memory measurement of {spec.estimator} (n = {spec.n_samples}) failed: {last}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if report["cuda_bytes"] is not None:
        return report["cuda_bytes"] / 2**20, "cuda max_memory_allocated"
    return report["rss_bytes"] / 2**20, "process max RSS"
