"""The tidy CSV: one row per cell, columns fixed and documented in docs/columns.md ("Result columns").

Writes never leave a half-written file:
- a new file is written to a temporary file in the same folder and renamed into place (atomic on POSIX);
- a row is appended to an existing file with one ``write`` of the whole line on a file opened with O_APPEND, then
  flushed to disk: a process killed at any moment leaves either the whole line or none of it.
Before anything is appended the existing header is checked, so rows never land under the wrong columns.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gradbench.errors import GradbenchError

CONTEXT_COLUMNS = (
    "task",
    "task_params",
    "estimator",
    "estimator_params",
    "tau",
    "seed",
    "n_samples",
    "draws_per_estimate",
    "D",
    "K",
    "exact_value",
)
METRIC_COLUMNS = (
    "bias",
    "bias_sq",
    "bias_pvalue",
    "variance",
    "mse",
    "cosine",
    "snr",
    "grad_norm",
    "variance_se",
    "mse_se",
)
RUN_COLUMNS = (
    "seconds",
    "estimates_per_sec",
    "device",
    "dtype",
    "threads",
    "gradbench_version",
    "torch_version",
    "timestamp",
)
COLUMNS = CONTEXT_COLUMNS + METRIC_COLUMNS + RUN_COLUMNS
"""Column order of every gradbench CSV. Never reorder or rename without a migration."""
IDENTITY_COLUMNS = (
    "task", "task_params", "estimator", "estimator_params", "tau", "seed", "n_samples", "dtype", "device",
)  # fmt: skip
"""What identifies a cell: two rows with equal identity measured the same thing (resume, check, aggregation)."""
INT_COLUMNS = ("seed", "n_samples", "draws_per_estimate", "D", "K", "threads")
FLOAT_COLUMNS = ("tau", "exact_value", *METRIC_COLUMNS, "seconds", "estimates_per_sec")
"""Numeric columns (``tau`` is empty for estimators without a temperature)."""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value)  # shortest text that round-trips exactly
    return str(value)


def format_rows(rows: Iterable[dict[str, Any]], header: bool, columns: tuple[str, ...] = COLUMNS) -> str:
    """CSV text of ``rows`` (``columns`` in order: a run/sweep file's :data:`COLUMNS` unless another file kind,
    e.g. :data:`gradbench.train.TRAIN_COLUMNS`, is written)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        missing = [c for c in columns if c not in row]
        if missing:
            raise ValueError(f"row lacks columns {missing}")
        writer.writerow([_cell(row[c]) for c in columns])
    return buffer.getvalue()


def read_header(path: Path) -> list[str] | None:
    """The header of an existing CSV (None for a missing or empty file)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            first = fh.readline()
    except UnicodeDecodeError:
        raise GradbenchError(f"{path} is not a text CSV file") from None
    except OSError as exc:
        raise GradbenchError(f"cannot read {path}: {exc.strerror}") from None
    if not first.strip():
        return None
    return next(csv.reader([first]))


def check_writable(path: Path, columns: tuple[str, ...] = COLUMNS) -> None:
    """Fail early (before any work) when rows could not be added to ``path``."""
    if path.is_dir():
        raise GradbenchError(f"--out {path} is a directory, not a CSV file")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GradbenchError(f"--out {path}: cannot create folder {folder}: {exc.strerror}") from None
    if not folder.is_dir():
        raise GradbenchError(f"--out {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise GradbenchError(f"--out {path}: not writable")
    if path.exists():
        header = read_header(path)
        if header is not None and tuple(header) != columns:
            raise GradbenchError(
                f"--out {path} exists with a different header (not a gradbench {len(columns)}-column results file); "
                "choose another --out"
            )


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (text as UTF-8, or bytes) all at once: temporary file in the same folder,
    fsync, rename."""
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; a results file gets the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def append_rows(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> None:
    """Add rows to the CSV at ``path`` (created with a header when missing or empty), all in one write."""
    check_writable(path, columns)
    if not path.exists() or read_header(path) is None:
        write_atomic(path, format_rows(rows, header=True, columns=columns))
        return
    data = format_rows(rows, header=False, columns=columns).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        if os.fstat(fd).st_size and not _ends_with_newline(path):
            raise GradbenchError(f"{path} ends with a partial line; repair or move it before appending")
        written = os.write(fd, data)
        if written != len(data):  # pragma: no cover - only on a full disk
            raise GradbenchError(f"{path}: short write ({written} of {len(data)} bytes)")
        os.fsync(fd)
    finally:
        os.close(fd)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"
