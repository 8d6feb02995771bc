"""The benchmark's CSV (one row per estimator, rewritten atomically as each row completes) and its tables."""

from __future__ import annotations

import csv
import io
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from gradbench.errors import GradbenchError

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
    "load_average",
    "n_samples",
    "marginal_from",
    "repeats",
    "chunk_size",
    "ours_per_sec",
    "ours_cell_per_sec",
    "ours_estimate_per_sec",
    "naive_per_sec",
    "naive_kind",
    "naive_gs_per_sec",
    "stock_per_sec",
    "stock_kind",
    "limit_per_sec",
    "ours_vs_naive",
    "ours_vs_naive_gs",
    "ours_vs_stock",
    "ours_vs_limit",
    "mem_samples_small",
    "peak_mem_mib_small",
    "mem_samples_large",
    "peak_mem_mib_large",
    "mem_kind",
    "nonfinite_fraction",
    "seconds",
    "gradbench_version",
    "torch_version",
    "timestamp",
)
"""Columns of the throughput CSV, one row per estimator. ``ours_per_sec`` is the marginal rate of whole cells
between ``marginal_from`` and ``n_samples`` estimates, and every ``ours_vs_*`` ratio uses it."""
LEGACY_HEADERS = (
    (
        "estimator", "task", "D", "K", "dtype", "tau", "device", "device_name", "cores", "threads", "n_samples",
        "repeats", "chunk_size", "ours_per_sec", "ours_estimate_per_sec", "naive_per_sec", "naive_kind",
        "stock_per_sec", "stock_kind", "limit_per_sec", "ours_vs_naive", "ours_vs_stock", "ours_vs_limit",
        "mem_samples_small", "peak_mem_mib_small", "mem_samples_large", "peak_mem_mib_large", "mem_kind",
        "gradbench_version", "torch_version", "timestamp",
    ),
)  # fmt: skip
"""Headers of throughput CSVs written by earlier versions: files that --out may replace too."""


def check_out(path: Path) -> None:
    """Refuse, before anything is measured or written, an ``--out`` that cannot or must not be replaced: a folder, a
    device, FIFO or other non-regular file, an unwritable place, or an existing file that is not a throughput CSV
    (a foreign file is never overwritten). Nothing is created here."""
    try:
        info = path.stat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise GradbenchError(f"--out {path}: {exc.strerror}") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise GradbenchError(f"--out {path} is a directory, not a CSV file")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise GradbenchError(f"--out {path} is not a regular file (a device, FIFO or socket); choose a file")
    if len(path.name.encode()) > 255 - 16:  # room for the temporary file's prefix and suffix
        raise GradbenchError(f"--out {path}: file name longer than {255 - 16} bytes")
    folder = _existing_ancestor(path.parent if str(path.parent) else Path("."))
    if not folder.is_dir():
        raise GradbenchError(f"--out {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK) or (info is not None and not os.access(path, os.W_OK)):
        raise GradbenchError(f"--out {path}: not writable")
    try:  # what the atomic write will need (root passes os.access everywhere, /proc included): nothing stays
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".gradbench-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise GradbenchError(f"--out {path}: cannot write in {folder}: {exc.strerror or exc}") from None
    if info is not None and info.st_size > 0:
        try:
            with path.open(newline="", encoding="utf-8") as fh:
                header = tuple(next(csv.reader([fh.readline()]), []))
        except (UnicodeDecodeError, csv.Error):
            header = ()
        except OSError as exc:
            raise GradbenchError(f"--out {path}: cannot read it: {exc.strerror}") from None
        if header != COLUMNS and header not in LEGACY_HEADERS:
            raise GradbenchError(
                f"--out {path} exists and is not a gradbench throughput CSV; refusing to overwrite it (choose another "
                "--out or move the file)"
            )


def _existing_ancestor(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def default_out(folder: Path = Path("results")) -> Path:
    """A new file ``results/bench-YYYYMMDD-HHMMSS.csv`` (never an existing, let alone a committed, file)."""
    from datetime import datetime, timezone

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = folder / f"bench-{stamp}.csv"
    i = 1
    while path.exists():
        i += 1
        path = folder / f"bench-{stamp}-{i}.csv"
    return path


def csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["nan" if isinstance(row[c], float) and math.isnan(row[c]) else row[c] for c in COLUMNS])
    return buffer.getvalue()


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace ``path`` with the rows so far (atomically; the folder is created on the first write)."""
    from gradbench.results import write_atomic

    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, csv_text(rows))
    except OSError as exc:
        raise GradbenchError(f"--out {path}: cannot write: {exc.strerror or exc}") from None


def _rate(value: float) -> str:
    if isinstance(value, str) or math.isnan(value):
        return "—"
    if value >= 1e6:
        return f"{value / 1e6:.3g} M"
    if value >= 1e3:
        return f"{value / 1e3:.3g} k"
    return f"{value:.3g}"


def _ratio(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.3g}×"


def _memory(row: dict[str, Any], label: str) -> str:
    value = row[f"peak_mem_mib_{label}"]
    return "—" if value == "" else f"{value:.0f}"


def table_cells(row: dict[str, Any]) -> list[str]:
    return [
        f"`{row['estimator']}`",
        _rate(row["ours_per_sec"]),
        _rate(row["naive_per_sec"]),
        _rate(row["naive_gs_per_sec"]),
        _rate(row["stock_per_sec"]),
        _rate(row["limit_per_sec"]),
        _ratio(row["ours_vs_limit"]),
        _ratio(row["ours_vs_naive"]),
        _ratio(row["ours_vs_naive_gs"]),
        _ratio(row["ours_vs_stock"]),
        _memory(row, "small"),
        _memory(row, "large"),
    ]


def headers(rows: list[dict[str, Any]]) -> list[str]:
    row = rows[0]
    small, large = row["mem_samples_small"], row["mem_samples_large"]
    return [
        "estimator",
        "ours",
        "naive loop",
        "naive F.gumbel_softmax loop",
        "stock batched",
        "fill limit",
        "ours / limit",
        "ours / naive",
        "ours / naive g-s",
        "ours / stock",
        f"MiB at n={small:.0e}" if small != "" else "MiB (small n)",
        f"MiB at n={large:.0e}" if large != "" else "MiB (large n)",
    ]


SHORT_HEADERS = ["estimator", "ours", "naive", "naive g-s", "stock", "limit", "/limit", "/naive", "/naive g-s",
                 "/stock", "MiB small", "MiB large"]  # fmt: skip


def describe(rows: list[dict[str, Any]]) -> str:
    row = rows[0]
    mem = ""
    if row["mem_samples_small"] != "":
        mem = f"; memory: {row['mem_kind']} at n = {row['mem_samples_small']:,} and {row['mem_samples_large']:,}"
    taus = sorted({r["tau"] for r in rows if r["tau"] != ""})
    tau = f", τ = {taus[0]}" if taus else ""
    loads = [r["load_average"] for r in rows]
    return (
        f"{row['task']} D = {row['D']}, K = {row['K']}, {row['dtype']}{tau}; {row['device']} ({row['device_name']}, "
        f"{row['cores']} cores, load average {min(loads):.1f}–{max(loads):.1f}), {row['threads']} torch thread(s), "
        f"torch {row['torch_version']}; estimates per second, median of {row['repeats']} interleaved repeats; "
        f"ours = marginal rate of whole cells from n = {row['marginal_from']:,} to {row['n_samples']:,}; "
        f"ratios are medians of per-repeat ratios{mem}"
    )


def markdown_table(rows: list[dict[str, Any]]) -> str:
    names = headers(rows)
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
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
