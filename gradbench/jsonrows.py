"""Result rows as JSON: one object per row (``gradbench run --format json``) and JSON Lines files (``--out x.jsonl``).

JSON has no NaN or infinity: a non-finite number is written as ``null`` (e.g. ``snr`` of a zero-variance
estimator, ``tau`` of an estimator without a temperature is the empty string as in the CSV). Appending follows the
CSV's rule (:mod:`gradbench.results`): one ``write`` of a whole line on a file opened with O_APPEND, then fsync, so
a killed process leaves whole lines only.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from gradbench.errors import GradbenchError


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _plain(value.item())
    return value


def row_json(row: dict[str, Any]) -> str:
    """One row as a one-line JSON object, columns in the row's order."""
    return json.dumps({k: _plain(v) for k, v in row.items()}, allow_nan=False, ensure_ascii=False)


def is_jsonl(path: Path) -> bool:
    return Path(path).suffix.lower() in (".jsonl", ".ndjson")


def check_jsonl_writable(path: Path) -> None:
    """Fail early (before any work) when a line could not be appended to the JSON Lines file ``path``."""
    path = Path(path)
    if path.is_dir():
        raise GradbenchError(f"--out {path} is a directory, not a JSON Lines file")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GradbenchError(f"--out {path}: cannot create folder {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise GradbenchError(f"--out {path}: not writable")
    if path.exists() and path.stat().st_size:
        with path.open("rb") as fh:
            first = fh.readline()
            fh.seek(-1, os.SEEK_END)
            last = fh.read(1)
        try:
            ok = isinstance(json.loads(first), dict)
        except ValueError:
            ok = False
        if not ok:
            raise GradbenchError(f"--out {path} exists and is not a JSON Lines file of result rows; choose another")
        if last != b"\n":
            raise GradbenchError(f"{path} ends with a partial line; repair or move it before appending")


def append_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append rows to ``path`` as JSON Lines (the file is created when missing)."""
    path = Path(path)
    check_jsonl_writable(path)
    data = "".join(row_json(r) + "\n" for r in rows).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        written = os.write(fd, data)
        if written != len(data):  # pragma: no cover - only on a full disk
            raise GradbenchError(f"{path}: short write ({written} of {len(data)} bytes)")
        os.fsync(fd)
    finally:
        os.close(fd)
