"""Throughput benchmark (``gradbench bench``, ``python benchmarks/throughput.py``).

For each estimator, on one fixed problem (task ``quadratic``: D = 20, K = 10; float32; τ = 0.5 where an estimator
has a temperature; 1 torch thread unless told otherwise; ``--task-opt dim=100 --task-opt categories=2`` gives a
binary problem of the same size for binary-only estimators), in one process and one run, it measures estimates per
second of:

- **ours**: gradbench's runner for a whole cell (``run_cell``): drawing, estimating, folding every estimate into the
  float64 streaming statistics, and the final metrics; that is what a user waits for. ``ours_estimate_per_sec`` is
  the runner's own ``estimates_per_sec`` column (drawing + estimating only).
- **naive**: a Python loop of single-draw autograd calls, as a user would write it: ``F.gumbel_softmax`` (with
  ``hard=True`` for st-gumbel) or ``Categorical.sample`` + ``log_prob`` (reinforce), then ``.backward()``, then
  running sums of g and g² (the cheapest statistics). For estimators without a hand-written loop (``exact`` and
  plug-ins), naive is gradbench's own estimator called with n = 1 in a Python loop, with the same running sums.
- **stock**: the best batched code with stock torch, estimates only (no statistics): one autograd call over a batch
  of B independent copies of θ, through ``RelaxedOneHotCategorical(...).rsample()`` or ``F.gumbel_softmax``
  (gumbel), ``F.gumbel_softmax(hard=True)`` (st-gumbel), ``Categorical`` ``sample`` + ``log_prob`` (reinforce); the
  fastest variant and batch size in a calibration round is used. Empty for other estimators.
- **limit**: ``Tensor.uniform_()`` into a preallocated [chunk, D, K] tensor, repeated for n estimates: the rate at
  which the D·K uniforms per estimate can merely be generated and written.

Wall-clock time (``torch.cuda.synchronize`` around each timed region on a GPU). Each repeat measures limit, ours,
stock and naive for one estimator back to back, then the next estimator; the reported rates are medians over the
repeats and each ratio is the median of the ratios taken within a repeat, so that a machine shared with other work
distorts them less. Peak memory: a fresh subprocess per (estimator, n) runs the cell and reports its peak resident
set size (CPU; it includes the Python interpreter and torch, about 300 MiB) or ``torch.cuda.max_memory_allocated``
(GPU), to show that memory does not grow with ``--samples``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import gradbench
from gradbench.errors import GradbenchError
from gradbench.registry import all_estimators, load_plugin
from gradbench.rng import BlockRng
from gradbench.runner import DTYPES, CellSpec, build_estimator, build_task, prepare, resolve_device, run_cell

TASK = "quadratic"
TASK_PARAMS = {"dim": 20, "categories": 10}
STOCK_BATCHES = (1024, 8192)

COLUMNS = (
    "estimator",
    "task",
    "D",
    "K",
    "dtype",
    "tau",
    "device",
    "device_name",
    "cores",
    "threads",
    "n_samples",
    "repeats",
    "chunk_size",
    "ours_per_sec",
    "ours_estimate_per_sec",
    "naive_per_sec",
    "naive_kind",
    "stock_per_sec",
    "stock_kind",
    "limit_per_sec",
    "ours_vs_naive",
    "ours_vs_stock",
    "ours_vs_limit",
    "mem_samples_small",
    "peak_mem_mib_small",
    "mem_samples_large",
    "peak_mem_mib_large",
    "mem_kind",
    "gradbench_version",
    "torch_version",
    "timestamp",
)
"""Columns of the throughput CSV (results/throughput.csv), one row per estimator."""


@dataclass(frozen=True)
class BenchConfig:
    samples: int = 1_000_000  # estimates per timed cell (ours, limit)
    repeats: int = 3
    threads: int = 1
    device: str = "cpu"
    dtype: str = "float32"
    tau: float = 0.5
    estimators: tuple[str, ...] = ()  # empty: every registered estimator that runs on the problem
    task_params: dict[str, Any] = field(default_factory=dict)  # e.g. {"dim": 100, "categories": 2} for binary-only
    memory_samples: tuple[int, int] | None = (100_000, 10_000_000)
    naive_seconds: float = 0.5  # time spent in the naive loop per repeat (its draw count is fixed in calibration)
    stock_samples: int | None = None  # estimates per stock measurement; default samples / 10
    plugins: tuple[str, ...] = ()
    seed: int = 0
    log: Callable[[str], None] = field(default=lambda text: None, compare=False)


def validate(config: BenchConfig) -> None:
    """Every input error before any work."""
    if config.samples < 2:
        raise GradbenchError(f"--samples must be at least 2, got {config.samples}")
    if config.repeats < 1:
        raise GradbenchError(f"--repeats must be at least 1, got {config.repeats}")
    if config.threads < 1:
        raise GradbenchError(f"--threads must be at least 1, got {config.threads}")
    if config.dtype not in DTYPES:
        raise GradbenchError(f"unknown dtype {config.dtype!r} (use {' or '.join(DTYPES)})")
    if not (math.isfinite(config.tau) and config.tau > 0):
        raise GradbenchError(f"--tau must be a finite number > 0, got {config.tau!r}")
    if not (math.isfinite(config.naive_seconds) and config.naive_seconds > 0):
        raise GradbenchError(f"--naive-seconds must be a finite number > 0, got {config.naive_seconds!r}")
    if config.memory_samples is not None and min(config.memory_samples) < 2:
        raise GradbenchError(f"--memory-samples must be at least 2, got {config.memory_samples}")
    resolve_device(config.device)
    build_task(TASK, {**TASK_PARAMS, **config.task_params})  # a bad --task-opt is an error, not a skipped estimator


def estimator_params(name: str, tau: float) -> dict[str, Any]:
    """The benchmark's τ, raised to the estimator's lower bound where it declares one (ReinMax: τ ≥ 1)."""
    spec = next((p for p in all_estimators()[name].params if p.name == "tau"), None)
    if spec is None:
        return {}
    return {"tau": max(tau, spec.low) if spec.low is not None else tau}


def select_estimators(config: BenchConfig) -> tuple[list[str], list[str]]:
    """(estimators to measure, notes on the ones skipped). Named estimators that cannot run are errors."""
    for plugin in config.plugins:
        load_plugin(plugin)
    known = all_estimators()
    names = list(config.estimators) or list(known)
    chosen, notes = [], []
    for name in names:
        spec = CellSpec(
            task=TASK,
            estimator=name,
            task_params={**TASK_PARAMS, **config.task_params},
            estimator_params=estimator_params(name, config.tau) if name in known else {},
            n_samples=2,
            device=config.device,
            dtype=config.dtype,
        )
        try:
            prepare(spec)
        except GradbenchError as exc:
            if config.estimators:
                raise
            notes.append(f"{name}: skipped ({exc})")
            continue
        chosen.append(name)
    return chosen, notes


# --- timing ------------------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, fn: Callable[[], Any]) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def limit_rate(n: int, chunk: int, D: int, K: int, device: torch.device, dtype: torch.dtype, seed: int) -> float:
    """Estimates per second at which n x D x K uniforms are generated into a preallocated [chunk, D, K] tensor."""
    buffer = torch.empty(chunk, D, K, device=device, dtype=dtype)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    rounds = max(1, math.ceil(n / chunk))

    def fill() -> None:
        for _ in range(rounds):
            buffer.uniform_(generator=gen)

    return rounds * chunk / _timed(device, fill)


class RunningSums:
    """The naive user's statistics: Σ g and Σ g² in float64."""

    def __init__(self, shape: tuple[int, ...], device: torch.device):
        self.s1 = torch.zeros(shape, dtype=torch.float64, device=device)
        self.s2 = torch.zeros(shape, dtype=torch.float64, device=device)

    def add(self, g: torch.Tensor) -> None:
        g = g.to(torch.float64)
        self.s1 += g
        self.s2 += g * g


def naive_step(name: str, estimator, problem, tau: float, sums: RunningSums) -> tuple[Callable[[int], None], str]:
    """One draw of the naive loop (argument: the draw's index) and a label of what it is."""
    F = torch.nn.functional
    theta, task = problem.theta, problem.task
    K = theta.shape[-1]

    def leaf() -> torch.Tensor:
        return theta.detach().clone().requires_grad_(True)

    if name in ("gumbel", "st-gumbel"):
        hard = name == "st-gumbel"

        def relaxed(_: int) -> None:
            th = leaf()
            task.f(F.gumbel_softmax(th, tau=tau, hard=hard)).backward()
            sums.add(th.grad)

        return relaxed, f"F.gumbel_softmax({'hard=True' if hard else 'hard=False'}) + backward per draw"
    if name == "reinforce":

        def score(_: int) -> None:
            th = leaf()
            dist = torch.distributions.Categorical(logits=th)
            z = dist.sample()  # D
            f = task.f(F.one_hot(z, K).to(th))
            (f.detach() * dist.log_prob(z).sum()).backward()
            sums.add(th.grad)

        return score, "Categorical sample + log_prob backward per draw"

    estimator.setup(problem, 0)

    def generic(i: int) -> None:
        sums.add(estimator.estimate(problem, BlockRng(0, i, [1], theta.device))[0])

    return generic, "gradbench estimator with n = 1 per draw"


def stock_variants(name: str, problem, tau: float) -> list[tuple[str, Callable[[int], torch.Tensor]]]:
    """Batched stock-torch ways of computing B estimates (argument B), each returning B x D x K."""
    F = torch.nn.functional
    dist = torch.distributions
    theta, task = problem.theta, problem.task
    K = theta.shape[-1]

    def leaf(B: int) -> torch.Tensor:
        return theta.detach().expand(B, *theta.shape).clone().requires_grad_(True)  # B x D x K

    def through(sample: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[int], torch.Tensor]:
        def run(B: int) -> torch.Tensor:
            th = leaf(B)
            task.f(sample(th)).sum().backward()
            return th.grad

        return run

    temperature = torch.tensor(tau, dtype=theta.dtype, device=theta.device)
    if name == "gumbel":
        return [
            (
                "RelaxedOneHotCategorical.rsample",
                through(lambda th: dist.RelaxedOneHotCategorical(temperature, logits=th).rsample()),
            ),
            ("F.gumbel_softmax", through(lambda th: F.gumbel_softmax(th, tau=tau))),
        ]
    if name == "st-gumbel":
        return [("F.gumbel_softmax(hard=True)", through(lambda th: F.gumbel_softmax(th, tau=tau, hard=True)))]
    if name == "reinforce":

        def score(B: int) -> torch.Tensor:
            th = leaf(B)
            d = dist.Categorical(logits=th)  # batch B x D
            z = d.sample()  # B x D
            f = task.f(F.one_hot(z, K).to(th))  # B
            (f.detach() * d.log_prob(z).sum(-1)).sum().backward()
            return th.grad

        return [("Categorical sample + log_prob", score)]
    return []


def _batched_rate(run: Callable[[int], torch.Tensor], B: int, n: int, device: torch.device) -> float:
    rounds = max(1, math.ceil(n / B))

    def go() -> None:
        for _ in range(rounds):
            run(B)

    return rounds * B / _timed(device, go)


# --- peak memory -------------------------------------------------------------------------------------------------


def _child_main() -> None:
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

    command = [*python_command("from gradbench.bench import _child_main; _child_main()"), payload]
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=child_env())
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise GradbenchError(f"memory measurement of {spec.estimator} (n = {spec.n_samples}) failed: {last}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if report["cuda_bytes"] is not None:
        return report["cuda_bytes"] / 2**20, "cuda max_memory_allocated"
    return report["rss_bytes"] / 2**20, "process max RSS"


# --- the benchmark -----------------------------------------------------------------------------------------------


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def run_benchmark(config: BenchConfig) -> tuple[list[dict[str, Any]], list[str]]:
    """Measure every selected estimator; return (rows with :data:`COLUMNS`, notes)."""
    validate(config)
    torch.set_num_threads(config.threads)
    names, notes = select_estimators(config)
    if not names:
        raise GradbenchError("no estimator can run on the benchmark problem")
    device = resolve_device(config.device)
    log = config.log
    stock_n = config.stock_samples or max(2, config.samples // 10)

    specs, cells, steps, stocks = {}, {}, {}, {}
    for name in names:
        specs[name] = CellSpec(
            task=TASK,
            estimator=name,
            task_params={**TASK_PARAMS, **config.task_params},
            estimator_params=estimator_params(name, config.tau),
            seed=config.seed,
            n_samples=config.samples,
            device=config.device,
            dtype=config.dtype,
        )
        cells[name] = prepare(specs[name])
    first = cells[names[0]]
    D, K = first.task.D, first.task.K
    chunk = first.block_size * first.chunk_blocks
    dtype = DTYPES[config.dtype]

    # Calibration (also the warm-up): the naive loop's draw count, the stock variant and batch size.
    torch.manual_seed(config.seed)
    for name in names:
        log(f"calibrating {name}")
        cell = cells[name]
        run_cell(replace(specs[name], n_samples=2 * chunk))
        sums = RunningSums((D, K), device)
        step, kind = naive_step(
            name, build_estimator(name, dict(specs[name].estimator_params)), cell.problem, config.tau, sums
        )
        step(0)
        per_draw = _timed(device, lambda step=step: [step(i) for i in range(5)]) / 5
        draws = int(min(max(config.naive_seconds / max(per_draw, 1e-9), 10), 1_000_000))
        steps[name] = (step, kind, draws)
        best = None
        for label, run in stock_variants(name, cell.problem, config.tau):
            for B in STOCK_BATCHES:
                run(min(B, 64))
                rate = _batched_rate(run, B, min(stock_n, 2 * B), device)
                if best is None or rate > best[0]:
                    best = (rate, label, run, B)
        stocks[name] = best

    samples: dict[str, dict[str, list[float]]] = {n: {} for n in names}

    def record(name: str, key: str, value: float) -> None:
        samples[name].setdefault(key, []).append(value)

    for r in range(config.repeats):
        for name in names:
            log(f"repeat {r + 1}/{config.repeats}: {name}")
            limit = limit_rate(config.samples, chunk, D, K, device, dtype, config.seed + r)
            t0 = time.perf_counter()
            _sync(device)
            row = run_cell(specs[name])
            _sync(device)
            ours = config.samples / (time.perf_counter() - t0)
            stock = math.nan
            if stocks[name] is not None:
                _, _, run, B = stocks[name]
                stock = _batched_rate(run, B, stock_n, device)
            step, _, draws = steps[name]
            naive = draws / _timed(device, lambda step=step, draws=draws: [step(i) for i in range(draws)])
            record(name, "ours", ours)
            record(name, "ours_estimate", row["estimates_per_sec"])
            record(name, "limit", limit)
            record(name, "naive", naive)
            record(name, "stock", stock)
            record(name, "vs_naive", ours / naive)
            record(name, "vs_stock", ours / stock)
            record(name, "vs_limit", ours / limit)

    rows = []
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for name in names:
        m = {key: _median(values) for key, values in samples[name].items()}
        mem: dict[str, Any] = {
            "mem_samples_small": "",
            "peak_mem_mib_small": "",
            "mem_samples_large": "",
            "peak_mem_mib_large": "",
            "mem_kind": "",
        }
        if config.memory_samples is not None:
            small, large = config.memory_samples
            for label, n in (("small", small), ("large", large)):
                log(f"peak memory: {name}, n = {n:,}")
                mib, kind = peak_memory(replace(specs[name], n_samples=n), config.threads, config.plugins)
                mem[f"mem_samples_{label}"] = n
                mem[f"peak_mem_mib_{label}"] = round(mib, 1)
                mem["mem_kind"] = kind
        stock = stocks[name]
        rows.append(
            {
                "estimator": name,
                "task": TASK,
                "D": D,
                "K": K,
                "dtype": config.dtype,
                "tau": specs[name].estimator_params.get("tau", ""),
                "device": str(device),
                "device_name": device_name(device),
                "cores": os.cpu_count(),
                "threads": torch.get_num_threads(),
                "n_samples": config.samples,
                "repeats": config.repeats,
                "chunk_size": chunk,
                "ours_per_sec": m["ours"],
                "ours_estimate_per_sec": m["ours_estimate"],
                "naive_per_sec": m["naive"],
                "naive_kind": steps[name][1],
                "stock_per_sec": m["stock"],
                "stock_kind": f"{stock[1]}, B = {stock[3]}" if stock else "",
                "limit_per_sec": m["limit"],
                "ours_vs_naive": m["vs_naive"],
                "ours_vs_stock": m["vs_stock"],
                "ours_vs_limit": m["vs_limit"],
                **mem,
                "gradbench_version": gradbench.__version__,
                "torch_version": torch.__version__,
                "timestamp": stamp,
            }
        )
    return rows, notes


# --- output ------------------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace ``path`` with the rows (atomically)."""
    import csv
    import io

    from gradbench.results import write_atomic

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["nan" if isinstance(row[c], float) and math.isnan(row[c]) else row[c] for c in COLUMNS])
    write_atomic(path, buffer.getvalue())


def _rate(value: float) -> str:
    if math.isnan(value):
        return "—"
    if value >= 1e6:
        return f"{value / 1e6:.3g} M"
    if value >= 1e3:
        return f"{value / 1e3:.3g} k"
    return f"{value:.3g}"


def _ratio(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.3g}×"


def _memory(row: dict[str, Any]) -> str:
    if row["peak_mem_mib_small"] == "":
        return "—"
    return f"{row['peak_mem_mib_small']:.0f} → {row['peak_mem_mib_large']:.0f}"


def table_cells(row: dict[str, Any]) -> list[str]:
    return [
        f"`{row['estimator']}`",
        _rate(row["ours_per_sec"]),
        _rate(row["ours_estimate_per_sec"]),
        _rate(row["naive_per_sec"]),
        _rate(row["stock_per_sec"]),
        _rate(row["limit_per_sec"]),
        _ratio(row["ours_vs_naive"]),
        _ratio(row["ours_vs_stock"]),
        _ratio(row["ours_vs_limit"]),
        _memory(row),
    ]


HEADERS = [
    "estimator",
    "ours (cell)",
    "ours (estimate only)",
    "naive loop",
    "stock batched",
    "random-fill limit",
    "ours / naive",
    "ours / stock",
    "ours / limit",
    "peak MiB, small → large n",
]


SHORT_HEADERS = ["estimator", "ours", "est. only", "naive", "stock", "limit", "/naive", "/stock", "/limit", "MiB"]


def describe(rows: list[dict[str, Any]]) -> str:
    row = rows[0]
    mem = ""
    if row["mem_samples_small"] != "":
        mem = f"; memory: {row['mem_kind']} at n = {row['mem_samples_small']:,} → {row['mem_samples_large']:,}"
    taus = sorted({r["tau"] for r in rows if r["tau"] != ""})
    tau = f", τ = {taus[0]}" if taus else ""
    return (
        f"{row['task']} D = {row['D']}, K = {row['K']}, {row['dtype']}{tau}; {row['device']} ({row['device_name']}, "
        f"{row['cores']} cores), {row['threads']} torch thread(s), torch {row['torch_version']}; "
        f"estimates per second, median of {row['repeats']} interleaved repeats of n = {row['n_samples']:,}{mem}"
    )


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(table_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def rich_table(rows: list[dict[str, Any]]):
    from rich.table import Table

    table = Table(title="gradbench throughput (estimates/s)", caption=describe(rows))
    for header in SHORT_HEADERS:
        table.add_column(header, justify="left" if header == "estimator" else "right")
    for row in rows:
        table.add_row(*(cell.strip("`") for cell in table_cells(row)))
    return table


# --- command line (``gradbench bench``) ---------------------------------------------------------------------------


def parse_memory_samples(text: str) -> tuple[int, int]:
    try:
        small, large = (int(float(part)) for part in text.split(","))
    except ValueError:
        raise GradbenchError(f"--memory-samples {text!r}: expected SMALL,LARGE, e.g. 100000,10000000") from None
    return small, large


def check_out(path: Path) -> None:
    """The benchmark replaces its CSV at the end: the path must not be a folder and its folder must be writable."""
    if path.is_dir():
        raise GradbenchError(f"--out {path} is a directory, not a CSV file")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GradbenchError(f"--out {path}: cannot create folder {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise GradbenchError(f"--out {path}: not writable")


def sweep_scaling(
    workers: tuple[int, ...] = (1, 2),
    plugins: tuple[str, ...] = (),
    estimators: str = "all",
    tasks: str = "all",
    taus: str | None = None,
    seeds: str | None = None,
) -> list[dict[str, Any]]:
    """Wall time of the default sweep (``gradbench sweep`` with no arguments) for each worker count, in one process.

    Each run writes to its own temporary CSV; the rows must agree (timing columns aside), which is checked here so
    a faster run is never a run that did less. Returns one dict per worker count: workers, cells, seconds, speed-up.
    """
    import tempfile

    from gradbench import sweep as sw
    from gradbench.registry import all_estimators, all_tasks, get_estimator, get_task

    grid = sw.expand_grid(
        tasks=sw.parse_names(tasks, "task", all_tasks(), get_task),
        estimators=sw.parse_names(estimators, "estimator", all_estimators(), get_estimator),
        taus=sw.parse_taus(taus or sw.DEFAULT_TAUS),
        seeds=sw.parse_seeds(seeds or sw.DEFAULT_SEEDS),
    )
    out, contents = [], []
    with tempfile.TemporaryDirectory() as folder:
        for count in workers:
            path = Path(folder) / f"sweep-{count}.csv"
            todo, _ = sw.prepare_output(path, grid, resume=False, overwrite=False)
            outcome = sw.run_sweep(grid, path, todo, workers=count, threads=1, plugins=plugins)
            if outcome.interrupted or outcome.failed:
                raise GradbenchError(f"default sweep with {count} workers did not complete")
            rows = sw.read_rows(path)
            contents.append([{k: v for k, v in r.items() if k not in sw.TIMING_COLUMNS} for r in rows])
            out.append({"workers": count, "cells": len(rows), "seconds": outcome.seconds})
    if any(c != contents[0] for c in contents[1:]):
        raise GradbenchError("the default sweep's rows differ between worker counts")
    for row in out:
        row["speedup"] = out[0]["seconds"] / row["seconds"]
    return out


def sweep_scaling_table(rows: list[dict[str, Any]]):
    from rich.table import Table

    table = Table(title=f"Default sweep wall time ({rows[0]['cells']} cells, 1 torch thread per worker)")
    for col in ("workers", "seconds", "speed-up vs 1 worker"):
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(str(row["workers"]), f"{row['seconds']:.1f}", f"×{row['speedup']:.2f}")
    return table


def cli_main(
    *, memory_samples: str | None, out: Path, markdown: bool, console, scaling: bool = False, **options: Any
) -> None:
    """What ``gradbench bench`` does: check the inputs, measure, write the CSV, print the table."""
    from rich.console import Console

    sizes = parse_memory_samples(memory_samples) if memory_samples is not None else None
    check_out(out)
    err = Console(stderr=True)
    config = BenchConfig(memory_samples=sizes, log=lambda text: err.print(f"[dim]{text}[/dim]"), **options)
    rows, notes = run_benchmark(config)
    write_csv(out, rows)
    console.print(rich_table(rows))
    for note in notes:
        console.print(f"[yellow]{note}[/yellow]")
    if markdown:
        print(describe(rows))
        print()
        print(markdown_table(rows))
    console.print(f"[dim]written to[/dim] {out}")
    if scaling:
        err.print("[dim]timing the default sweep with 1 and then 2 workers …[/dim]")
        console.print(sweep_scaling_table(sweep_scaling(plugins=tuple(str(p) for p in config.plugins))))
