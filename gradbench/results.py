"""The tidy CSV: one row per cell, columns fixed and documented in docs/columns.md ("Result columns").

Writes never leave a half-written file:
- a new file is written to a temporary file in the same folder and renamed into place (atomic on POSIX);
- a row is appended to an existing file with one ``write`` of the whole line on a file opened with O_APPEND, then
  flushed to disk: a process killed at any moment leaves either the whole line or none of it.
Before anything is appended the existing header is checked, so rows never land under the wrong columns.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import math
import os
import stat
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
COST_COLUMNS = (
    "evals_per_estimate",
    "seconds_per_estimate",
    "mse_at_equal_evals",
    "mse_at_equal_time",
)
"""Cost and equal-cost columns (:mod:`gradbench.cost`), appended after the first format's columns."""
LEGACY_COLUMNS = CONTEXT_COLUMNS + METRIC_COLUMNS + RUN_COLUMNS
"""The columns of results files written before the cost columns existed; ``plot`` and ``report`` read them and fill
in the cost columns (evaluations per estimate = ``draws_per_estimate``, which was then equal for every built-in)."""
PRECISION_COLUMNS = ("nonfinite_fraction",)
"""Added with low-precision dtypes (issue 15): the fraction of estimates that were not finite (metrics are over the
finite ones). Before it existed a non-finite estimate aborted its cell, so files without it imply 0."""
PROVENANCE_COLUMNS = ("code_fingerprint",)
"""Added with issue 16: a hash of the gradbench version and the estimator's and task's source
(:mod:`gradbench.fingerprint`). Files without it are read with an empty fingerprint (the code is unknown)."""
COLUMNS = LEGACY_COLUMNS + COST_COLUMNS + PRECISION_COLUMNS + PROVENANCE_COLUMNS
"""Column order of every gradbench CSV. Never reorder or rename without a migration."""
OLDER_FORMATS = (
    LEGACY_COLUMNS,
    LEGACY_COLUMNS + COST_COLUMNS,
    LEGACY_COLUMNS + COST_COLUMNS + PRECISION_COLUMNS,
)
"""Headers of files written by earlier gradbench versions: ``plot``, ``report`` and ``check`` read them
(:func:`gradbench.aggregate.load_results` fills in the missing columns); appending to them (``run --out``,
``sweep --resume``) is refused with one line (:func:`older_format`): their rows carry no code fingerprint."""
TIMING_COLUMNS = ("seconds", "estimates_per_sec", "timestamp", "seconds_per_estimate", "mse_at_equal_time")
"""Columns that depend on the wall clock: everything else in a row is reproducible bit for bit."""
IDENTITY_COLUMNS = (
    "task", "task_params", "estimator", "estimator_params", "tau", "seed", "n_samples", "dtype", "device",
)  # fmt: skip
"""What identifies a cell: two rows with equal identity measured the same thing (resume, check, aggregation)."""
INT_COLUMNS = ("seed", "n_samples", "draws_per_estimate", "D", "K", "threads", "evals_per_estimate")
FLOAT_COLUMNS = (
    "tau", "exact_value", *METRIC_COLUMNS, "seconds", "estimates_per_sec",
    "seconds_per_estimate", "mse_at_equal_evals", "mse_at_equal_time", *PRECISION_COLUMNS,
)  # fmt: skip
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


def file_kind(mode: int) -> str:
    """'a folder', 'a FIFO', 'a character device' … for a stat mode that is not a regular file."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def check_regular(path: Path, what: str) -> bool:
    """True when ``path`` (symlinks followed) is a regular file, False when nothing is there; anything else (a
    FIFO, a device, a folder, a dangling link's loop …) is refused with one line, before it is opened — opening a
    FIFO blocks, and writing to a device is never what a results path means."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise GradbenchError(f"{what} {path}: {_os_error(exc)}") from None
    if not stat.S_ISREG(mode):
        raise GradbenchError(f"{what} {path} is {file_kind(mode)}, not a regular file; give a file path")
    return True


def _os_error(exc: OSError) -> str:
    code = errno.errorcode.get(exc.errno or 0, "")
    text = exc.strerror or str(exc)
    return f"{text} ({code})" if code else text


def read_header(path: Path) -> list[str] | None:
    """The header of an existing CSV (None for a missing or empty file)."""
    if not check_regular(path, "results file"):
        return None
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            first = fh.readline()
    except UnicodeDecodeError:
        raise GradbenchError(f"{path} is not a text CSV file") from None
    except OSError as exc:
        raise GradbenchError(f"cannot read {path}: {_os_error(exc)}") from None
    if "\0" in first:
        raise GradbenchError(f"{path} is not a text CSV file (it holds NUL bytes)")
    if not first.strip():
        return None
    return next(csv.reader([first]))


NAME_MAX = 255
TEMP_PREFIX = 32
"""Characters of the file's name kept in the name of its temporary file (which stays within NAME_MAX)."""


def target(path: Path) -> Path:
    """Where writes to ``path`` land: a symlink is followed to its target (the link itself is kept)."""
    return Path(os.path.realpath(path)) if os.path.islink(path) else path


def check_path_length(path: Path, flag: str) -> None:
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            raise GradbenchError(
                f"{flag} {str(path)[:40]}…: a file or folder name of {size} bytes; file systems allow at most "
                f"{NAME_MAX}; give a shorter name"
            )
    if len(os.fsencode(str(path))) >= os.pathconf("/", "PC_PATH_MAX"):
        raise GradbenchError(f"{flag} {str(path)[:40]}…: the path is longer than the system allows")


def check_writable(path: Path, columns: tuple[str, ...] = COLUMNS, flag: str = "--out", results: bool = True) -> None:
    """Fail early (before any work) when rows could not be added to ``path``: a folder, FIFO or device, a name too
    long, a folder that cannot be created or written (e.g. under /proc, a read-only file system), another header.
    A symlink is followed to its target. Nothing is left behind by the checks."""
    check_path_length(path, flag)
    path = target(path)
    exists = check_regular(path, flag)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GradbenchError(f"{flag} {path}: cannot create folder {folder}: {_os_error(exc)}") from None
    if not folder.is_dir():
        raise GradbenchError(f"{flag} {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK) or (exists and not os.access(path, os.W_OK)):
        raise GradbenchError(f"{flag} {path}: not writable")
    try:  # what write_atomic will do: a temporary file in the same folder (root passes os.access everywhere)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name[:TEMP_PREFIX]}.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise GradbenchError(f"{flag} {path}: cannot write in {folder}: {_os_error(exc)}") from None
    if exists and results:
        header = read_header(path)
        if columns == COLUMNS and older_format(header):
            raise GradbenchError(older_file_message(path, header, flag))
        if header is not None and tuple(header) != columns:
            raise GradbenchError(
                f"{flag} {path} exists with a different header (not a gradbench {len(columns)}-column results file); "
                "choose another --out"
            )


def older_format(header: list[str] | tuple[str, ...] | None) -> bool:
    """True for the header of a results file written by an earlier gradbench (:data:`OLDER_FORMATS`)."""
    return header is not None and tuple(header) in OLDER_FORMATS


def older_file_message(path: Path, header: list[str], flag: str = "--out") -> str:
    """Why rows are not appended to a file of an earlier gradbench (one line)."""
    return (
        f"{flag} {path} was written by an earlier gradbench ({len(header)} columns, without code_fingerprint): "
        "plot, report and check read it, but rows made now are not added to rows of unknown code; "
        "choose another --out"
    )


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (text as UTF-8, or bytes) all at once: temporary file in the same folder,
    fsync, rename. A symlink is followed (its target is replaced). Any OS error (a full disk, EIO) is one
    :class:`GradbenchError` and leaves ``path`` as it was."""
    path = target(path)
    folder = path.parent if str(path.parent) else Path(".")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name[:TEMP_PREFIX]}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; a results file gets the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise GradbenchError(f"cannot write {path}: {_os_error(exc)}; the file is unchanged") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


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
    path = target(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        if size and not _ends_with_newline(path):
            raise GradbenchError(f"{path} ends with a partial line; repair or move it before appending")
        try:
            written = os.write(fd, data)
            if written != len(data):  # a full disk can accept part of the line
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)  # nothing half-written: the file ends with its last whole line
            raise GradbenchError(f"cannot append to {path}: {_os_error(exc)}; the file keeps its whole rows") from None
    finally:
        os.close(fd)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"
